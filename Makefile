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

.PHONY: help venv test test-fast search demo bench firmware firmware-test flash data clean

help:
	@echo "make search   - run the default hardware-aware search on synth-kws (creates .venv and data)"
	@echo "make test     - run the whole test suite (creates .venv)"
	@echo "make demo     - streaming demo on a synthetic stream (MIC=1 listens to the microphone)"
	@echo "make bench    - run the benchmarks, write docs/benchmarks.md"
	@echo "make firmware BOARD=mps2-an386|nano33ble|pico  - build the firmware"
	@echo "make flash BOARD=... PORT=...                  - flash a dev board"

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
	$(VENV)/bin/audio-nas stream --demo $(if $(MIC),--mic,--synthetic 2)

bench: $(STAMP)
	$(VENV)/bin/audio-nas bench all

firmware:
	$(MAKE) -C firmware BOARD=$(BOARD)

firmware-test:
	$(MAKE) -C firmware host-test

flash:
	$(MAKE) -C firmware flash BOARD=$(BOARD) PORT=$(PORT)

clean:
	rm -rf build firmware/build* .pytest_cache
