"""Great Expectations suites of a table: drafting them, running them and reporting the outcome.

- `suites`: suite files, plain JSON (`{"name": ..., "expectations": [...]}`,
  the format `great_expectations.ExpectationSuite(**suite)` accepts): read,
  written and checked;
- `draft`: `build_suite` drafts a suite from a known-good frame (`kerasflow suite init`);
- `run`: `validate_frame` runs a suite with an ephemeral GX context (from
  100,000 rows through `vectorized`: one exact pandas pass where the
  expectation allows, GX where it must judge), and
  `run_validation` runs it in a worker process of its own (`worker`: one
  process, in its own process group, that never outlives its parent);
- `report`: the `ValidationReport` that lists every violated expectation in
  plain words, and its Data Docs HTML page.

Great Expectations is imported lazily (it takes seconds), when a suite runs,
so importing any of these modules stays cheap. None of them imports
Prefect, MLflow or TensorFlow.
"""
