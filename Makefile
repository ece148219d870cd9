# Nexus: `make run` installs everything, indexes corpus/ and serves the chat; `make test` runs
# the whole test suite.
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
# What the test suite needs from Debian: a browser for the UI tests, a real-world PDF to read.
DEBIAN_PACKAGES := chromium shared-mime-info
QUESTION ?= How do I prevent race conditions when two users update the same row?
export HF_HUB_OFFLINE = 1
export TOKENIZERS_PARALLELISM = false

.PHONY: install install-scale system-packages run serve build ask test test-quick test-all \
	lint format clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) --upgrade pip
	$(PIP) $(TORCH)
	$(PIP) -e '.[dev,onnx]'
	touch $(STAMP)

# Milvus and Ray, for scaling out; `make test` installs them to run their tests.
install-scale: $(SCALE)

$(SCALE): $(STAMP)
	$(PIP) -e '.[dev,onnx,scale]'
	touch $(SCALE)

system-packages:
	@sh scripts/system_packages.sh $(DEBIAN_PACKAGES)

# Build or update the index of corpus/, serve the chat at http://127.0.0.1:7860 and keep the
# index in step with every file saved under corpus/.
run: install
	$(PY) app.py --corpus corpus --index index --watch

serve: run

build: install
	$(VENV)/bin/nexus build --corpus corpus --index index

# One answer on the command line: make ask QUESTION="what is the GIL?"
ask: build
	$(VENV)/bin/nexus search "$(QUESTION)" -k 3

# Every test, none skipped: a test that cannot run here fails and says what is missing.
test: install-scale system-packages
	NEXUS_FULL_SUITE=1 $(PY) -m pytest

# The inner loop: stop at the first failure, leave out the browser, the real model and the
# scale extra.
test-quick: install
	$(PY) -m pytest -x -q -m 'not slow and not model and not scale and not browser'

test-all: install-scale system-packages
	NEXUS_FULL_SUITE=1 $(PY) -m pytest -m ''

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
