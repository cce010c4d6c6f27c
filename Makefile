# The two commands of the README: `make run` (main job) and `make test` (test suite).
# Both create the virtual environment on first use.
VENV ?= .venv
BIN := $(abspath $(VENV))/bin
export PATH := $(BIN):$(PATH)

.PHONY: run test ui clean

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e ".[test,cpu,foundation]"
	touch $@

## run: the whole pipeline on the embedded digits data set (dvc repro), then print the metrics
run: $(VENV)/.installed
	python -m flows.server dvc repro
	dvc metrics show

## test: the test suite
test: $(VENV)/.installed
	python -m pytest -q

## ui: a local Prefect server with its web UI on http://127.0.0.1:4200
ui: $(VENV)/.installed
	prefect server start

clean:
	rm -rf artifacts/*/ plots reports .scan_cache
