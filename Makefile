# gxnor: thin wrapper over the `gxnor` CLI and pytest. `make help` lists the targets.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
GXNOR := $(VENV)/bin/gxnor
CONFIG ?= mlp-ice40
RUN ?= runs/$(CONFIG)
LANES ?= 8
EXPORT ?= build/export/$(CONFIG)
RTL ?= build/rtl/$(CONFIG)
BOARD ?= icebreaker
SIM ?= icarus
IMAGES ?= 10000
EPOCHS ?=
TRAIN_ARGS ?=
# two workers on the two cores (pytest-xdist); PYTEST_ARGS adds to them
PYTEST_WORKERS ?= -n 2 --dist worksteal --durations=15
PYTEST_ARGS ?=
STAMP := $(VENV)/.gxnor-installed

.DEFAULT_GOAL := help
.PHONY: help install train export rtl sim bitstream flash run-sim demo test lint bench docs doctor clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'
	@echo "  variables: CONFIG=$(CONFIG) LANES=$(LANES) BOARD=$(BOARD) SIM=$(SIM) IMAGES=$(IMAGES)"

install: $(STAMP) ## venv + package with dev extras + Icarus + pre-warmed YoWASP (idempotent)

$(STAMP): pyproject.toml
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# torch first, pinned: this exact version resolves to the CPU wheel (see ../shared/TOOLCHAIN.md)
	$(PY) -m pip install --quiet "torch==2.13.0"
	$(PY) -m pip install --quiet -e '.[dev]'
	# Icarus (cocotb) and openFPGALoader (gxnor flash; its test runs the real programmer)
	@if ! command -v iverilog >/dev/null || ! command -v openFPGALoader >/dev/null; then \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq iverilog openfpgaloader; \
	  else echo "missing: run 'sudo apt-get install -y iverilog openfpgaloader'"; exit 1; fi; fi
	$(GXNOR) doctor --warm
	@touch $@

train: install ## train CONFIG (default mlp-ice40 on MNIST) into runs/CONFIG
	$(GXNOR) train --config $(CONFIG) --out $(RUN) $(if $(EPOCHS),--epochs $(EPOCHS)) $(TRAIN_ARGS)

export: install ## export runs/CONFIG to integer ROM images + manifest (LANES lanes)
	$(GXNOR) export $(RUN) --out $(EXPORT) --lanes $(LANES)

rtl: install ## write Verilog for the exported net into build/rtl/CONFIG
	$(GXNOR) rtl $(EXPORT) --out $(RTL)

sim: install ## cocotb suite (SIM=icarus|verilator), then IMAGES test images on the fast Verilator path
	$(GXNOR) sim --sim $(SIM)
	$(GXNOR) sim $(EXPORT) --images $(IMAGES)

bitstream: install $(EXPORT)/manifest.json ## bitstream + report for BOARD (icebreaker, ulx3s-85f, ecpix5-85f) into build/BOARD
	$(GXNOR) build $(EXPORT) --board $(BOARD)

# a fresh clone has no export yet: `make bitstream` trains and exports first
$(EXPORT)/manifest.json: | $(STAMP)
	@test -f $(RUN)/checkpoint.pt || $(MAKE) train
	$(MAKE) export

flash: install ## program BOARD with build/BOARD's bitstream (openFPGALoader / iceprog)
	$(GXNOR) flash --board $(BOARD)

run-sim: install ## host runtime -> board core in cocotb/Verilator over its UART pins (self-test, 8 images)
	$(GXNOR) run --sim verilator --export-dir $(EXPORT) --selftest mnist:8

demo: install ## the whole chain on a fresh machine: train, export, rtl, sim, run-sim, bitstream
	$(MAKE) train export rtl sim run-sim bitstream CONFIG=$(CONFIG)

test: install ## the test suite (pytest; HDL simulation and synthesis included)
	$(VENV)/bin/pytest $(PYTEST_WORKERS) $(PYTEST_ARGS)

lint: install ## ruff
	$(VENV)/bin/ruff check .

bench: install ## the measurements behind docs/BENCHMARKS.md (long)
	$(GXNOR) bench

docs: install ## redraw the pictures in docs/ that are generated from the code
	$(PY) -m gxnor.docs

doctor: ## where the external tools are
	$(GXNOR) doctor

clean: ## remove build outputs (keeps runs/ and the venv)
	rm -rf build sim_build
