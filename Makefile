# Two commands do all the set-up on a fresh machine (Python >= 3.11, no accelerator needed):
#   make run    builds .venv, then runs the toolkit's central comparison in miniature: a dense, a spiking and an MoE LM
#               on the embedded corpus, one budget, bits/char and energy per token with the ratios to dense (~2 min)
#   make test   builds .venv, then runs the test suite
# torch comes in as the CPU build: `torch==2.13.0` is installed first, so snntorch finds it and pulls no CUDA wheels.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[torch,nir,dev,cluster]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/python -m experiments sweep experiments/configs/demo.toml --workdir runs/demo

test: $(STAMP)
	$(BIN)/python -m pytest tests $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) runs
