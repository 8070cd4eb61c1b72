# The Makefile mirrors CI exactly: .ci/run calls `make test` and nothing else.
# Everything a fresh clone needs (the Python virtualenv with moto and cfn-lint) is installed here.

SHELL := /bin/bash
VENV ?= .venv
PYTHON ?= python3
MOTO_VERSION := 5.2.5
CFN_LINT_VERSION := 1.58.0
CARGO ?= cargo

.PHONY: all venv build test lint unit run deploy-check fmt clean

all: test

# The virtualenv is rebuilt only when the pinned versions change.
$(VENV)/.installed-$(MOTO_VERSION)-$(CFN_LINT_VERSION):
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check 'moto[server]==$(MOTO_VERSION)' 'cfn-lint==$(CFN_LINT_VERSION)'
	rm -f $(VENV)/.installed-*
	touch $@

venv: $(VENV)/.installed-$(MOTO_VERSION)-$(CFN_LINT_VERSION)

build:
	$(CARGO) build --workspace --bins

lint:
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

# Formatting, clippy, then every test: unit tests, and whole-system tests that spawn the built binaries against
# moto and a throwaway PostgreSQL (the tests start both themselves).
test: venv lint build
	$(CARGO) test --workspace
	@if [ -f deploy/check.sh ]; then $(MAKE) --no-print-directory deploy-check; fi

deploy-check: venv
	VENV=$(VENV) bash deploy/check.sh

# Starts moto with a demo secret and the extension, shows it serving, and runs until Ctrl-C.
run: venv build
	VENV=$(VENV) bash tests/scripts/run-local.sh

fmt:
	$(CARGO) fmt --all

clean:
	$(CARGO) clean
	rm -rf $(VENV)
