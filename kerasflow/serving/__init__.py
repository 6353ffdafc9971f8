"""What runs inside a logged model: raw rows in, labelled predictions out.

Only this package and what it imports (`kerasflow.features`) run inside a
served model. It imports no MLflow: `kerasflow.tracking.serving_entry`
adapts `Predictor` to MLflow's pyfunc interface.
"""
