PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint format clean bench

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/crowdet demo

test: $(STAMP)
	$(BIN)/ruff check crowdet tests bench
	$(BIN)/ruff format --check crowdet tests bench
	$(BIN)/python -m pytest -q

format: $(STAMP)
	$(BIN)/ruff check --fix crowdet tests bench
	$(BIN)/ruff format crowdet tests bench

bench: $(STAMP)
	$(BIN)/python bench/bench_read.py
	$(BIN)/python bench/bench_eval.py
	$(BIN)/python bench/bench_nms.py
	$(BIN)/python bench/bench_train.py
	$(BIN)/python bench/bench_step.py

clean:
	rm -rf $(VENV) runs build *.egg-info
