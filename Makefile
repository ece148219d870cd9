# Nexus: `make run` installs everything and answers a question; `make test` runs the tests.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
SCALE  := $(VENV)/.installed-scale
# The CPU build of torch lies on this disk; installing it first keeps pip from choosing a
# multi-gigabyte CUDA build for sentence-transformers.
TORCH  := torch==2.13.0
WHEELS := $(wildcard /opt/wheels)
PIP    := $(PY) -m pip install --disable-pip-version-check -q $(if $(WHEELS),--find-links $(WHEELS))
QUESTION ?= How do I prevent race conditions when two users update the same row?
export HF_HUB_OFFLINE = 1
export TOKENIZERS_PARALLELISM = false

.PHONY: install install-scale run serve build ask test test-all lint format clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) --upgrade pip
	$(PIP) $(TORCH)
	$(PIP) -e '.[dev,onnx]'
	touch $(STAMP)

# Milvus and Ray, for scaling out; `make test` runs their tests when they are installed.
install-scale: $(SCALE)

$(SCALE): $(STAMP)
	$(PIP) -e '.[dev,onnx,scale]'
	touch $(SCALE)

build: install
	$(VENV)/bin/nexus build --corpus corpus --index index

run: build
	$(VENV)/bin/nexus search "$(QUESTION)" -k 3

serve: install
	$(PY) app.py

test: install
	$(PY) -m pytest

test-all: install
	$(PY) -m pytest -m ''

# Build the container image with podman, run it and check it from outside, as CI does.
.PHONY: container-test
container-test:
	.ci/container-test

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

format: install
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

clean:
	rm -rf $(VENV) index .pytest_cache .mypy_cache .ruff_cache
