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

.PHONY: help venv lint test test-fast search demo bench firmware flash data clean

help:
	@echo "make search   - run the default hardware-aware search on synth-kws (creates .venv and data)"
	@echo "make test     - lint, then run the whole test suite (creates .venv)"
	@echo "make lint     - ruff check, ruff format --check, import-linter (layers in pyproject.toml)"
	@echo "make demo     - streaming demo on a 2-minute synthetic stream; names the model and its FRR at 1 FA/h (MIC=1: microphone)"
	@echo "make bench    - run the benchmarks, write docs/benchmarks.md"
	@echo "make firmware - build the firmware (BOARD=mps2-an386|nano33ble|pico, TFLM_DIR=<TFLM tree> for inference)"
	@echo "make flash    - flash a board (BOARD=nano33ble|pico PORT=/dev/ttyACM0)"

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	@touch $(STAMP)

venv: $(STAMP)

lint: $(STAMP)
	$(VENV)/bin/ruff check audio_nas tests
	$(VENV)/bin/ruff format --check audio_nas tests
	$(VENV)/bin/lint-imports

test: lint
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

TFLM_DIR ?=

# BOARD=mps2-an386 (default; CMake + arm-none-eabi-gcc, runs in QEMU), nano33ble or pico (PlatformIO).
# TFLM_DIR=<TFLM tree> (or FETCH_TFLM=1 with internet) builds the inference engine in; see firmware/README.md.
firmware: $(STAMP)
	$(VENV)/bin/audio-nas device build --board $(BOARD) $(if $(TFLM_DIR),--tflm-dir $(TFLM_DIR)) $(if $(FETCH_TFLM),--fetch-tflm)

flash: $(STAMP)
	$(VENV)/bin/audio-nas device flash --board $(BOARD) $(if $(PORT),--port $(PORT))

clean:
	rm -rf build firmware/build* .pytest_cache
