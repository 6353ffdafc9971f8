# kerasflow: `make run` sets up and runs the main job; `make test` sets up and passes the tests.
PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
CONFIG ?= configs/digits.yaml

.PHONY: setup run test test-fast lint bench quality ui serve clean

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "need $(PYTHON) on PATH"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[test]'
	touch $(STAMP)

run: setup
	$(BIN)/kerasflow run $(CONFIG)

# Two workers (pytest-xdist), a test file per worker at a time: module fixtures train once, and the
# server-starting tests overlap the training ones on the 2-core machines CI runs on. The files are handed out
# in collection order, which tests/conftest.py makes longest first, so that both workers end together.
test: setup lint
	$(BIN)/python -m pytest -n 2 --dist loadfile --no-loadscope-reorder

# The unit tests on tiny data (under three minutes): every test but the `integration` and `slow` ones
# (tests/conftest.py lists what is integration). `make test` stays the full suite that CI runs.
test-fast: setup lint
	$(BIN)/python -m pytest -n 2 --dist loadfile -m "not integration and not slow" --durations=10

lint: setup
	$(BIN)/lint-imports --no-cache
	$(BIN)/ruff check .

bench: setup
	$(BIN)/python benchmarks/overhead.py
	$(BIN)/python benchmarks/quality.py
	$(BIN)/python benchmarks/tuning.py
	$(BIN)/python benchmarks/tuning.py --overhead
	$(BIN)/python benchmarks/scale.py
	$(BIN)/python benchmarks/scale.py --streaming
	$(BIN)/python benchmarks/serving.py
	$(BIN)/python benchmarks/retrain.py
	$(BIN)/python benchmarks/team.py

quality: setup
	$(BIN)/python benchmarks/quality.py

ui: setup
	$(BIN)/kerasflow ui

serve: setup
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/kerasflow serve

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
