"""kerasflow: Keras models from raw data to a tracked, tuned and promoted production model."""

__version__ = "0.1.0"
