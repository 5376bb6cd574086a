# Thin aliases. Every install goes through constraints.txt (local CPU torch wheel, pynndescent<0.7).
PY ?= python3
VENV ?= .venv
BIN = $(VENV)/bin
PIP = $(BIN)/pip install -c constraints.txt

.PHONY: setup test test-deps demo bench lint clean

setup:
	$(PY) -m venv $(VENV)
	$(PIP) --upgrade pip setuptools wheel
	$(PIP) -e ".[all,test]"
	$(PIP) --no-deps scgpt==0.2.4  # oracle of the scGPT parity test; its own pins (scvi-tools<1.0, torchtext) clash with ours

# Headless Chromium for the HTML report test: installed in CI, or when missing and apt-get is usable.
test-deps:
	@if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then \
	  if [ "$$CI" = "true" ] || command -v apt-get >/dev/null; then \
	    SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	    $$SUDO apt-get update -qq && $$SUDO apt-get install -y --no-install-recommends chromium chromium-driver \
	      || [ "$$CI" != "true" ]; \
	  fi; \
	fi
	@# Slurm for the --executor slurm tests (tests/runner/test_slurm.py starts and stops its own daemons)
	@if ! command -v slurmctld >/dev/null && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  apt-get install -y --no-install-recommends slurmctld slurmd slurm-client munge >/dev/null \
	    || { apt-get update -qq && apt-get install -y --no-install-recommends slurmctld slurmd slurm-client munge; } \
	    || [ "$$CI" != "true" ]; \
	fi

test: test-deps
	$(BIN)/python -m pytest -q

demo:
	$(BIN)/scfm-bench run

bench:
	$(BIN)/python benchmarks/run_all.py

lint:
	$(BIN)/python -m ruff check scfm_bench tests benchmarks

clean:
	rm -rf results build dist *.egg-info
