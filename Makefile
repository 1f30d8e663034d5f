# audio-nas: two commands on a fresh machine -> `make search`, `make test`.
# Everything else is optional. Targets create the virtual environment on first use.

PYTHON ?= python3.11
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
BOARD  ?= mps2-an386
PORT   ?=
CONFIG ?= audio_nas/search/configs/default.yaml
export OMP_NUM_THREADS ?= 2

.PHONY: help venv test test-fast search demo bench firmware flash data clean

help:
	@echo "make search   - run the default hardware-aware search on synth-kws (creates .venv and data)"
	@echo "make test     - run the whole test suite (creates .venv)"
	@echo "make demo     - streaming demo on a 2-minute synthetic stream (MIC=1 listens to the microphone)"
	@echo "make bench    - run the benchmarks, write docs/benchmarks.md"

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	@touch $(STAMP)

venv: $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q -n 2 --dist loadgroup tests

test-fast: $(STAMP)
	$(PY) -m pytest -q -x -m "not slow" tests

data: $(STAMP)
	$(VENV)/bin/audio-nas data make synth-kws

search: $(STAMP)
	$(VENV)/bin/audio-nas search --config $(CONFIG)

demo: $(STAMP)
	$(VENV)/bin/audio-nas stream --demo $(if $(MIC),--mic,--synthetic 2 --evaluate)

bench: $(STAMP)
	$(VENV)/bin/audio-nas bench all

firmware flash:
	@echo "The firmware image (issue 5) is not written yet: the protocol core and the front-end exist and are tested by make test (see firmware/README.md)." >&2; exit 1

clean:
	rm -rf build firmware/build* .pytest_cache
