# Thin aliases. Every install goes through constraints.txt (local CPU torch wheel, pynndescent<0.7).
PY ?= python3
VENV ?= .venv
BIN = $(VENV)/bin
PIP = $(BIN)/pip install -c constraints.txt

.PHONY: setup test demo bench lint clean

setup:
	$(PY) -m venv $(VENV)
	$(PIP) --upgrade pip setuptools wheel
	$(PIP) -e ".[all,test]"

test:
	$(BIN)/python -m pytest -q

demo:
	$(BIN)/scfm-bench run

bench:
	$(BIN)/python benchmarks/run_all.py

lint:
	$(BIN)/python -m ruff check scfm_bench tests benchmarks

clean:
	rm -rf results build dist *.egg-info
