# The Makefile mirrors CI exactly: .ci/run calls `make test` and nothing else.
# Everything a fresh clone needs (the Python virtualenv with moto and cfn-lint) is installed here.

SHELL := /bin/bash
VENV ?= .venv
PYTHON ?= python3
MOTO_VERSION := 5.2.5
CFN_LINT_VERSION := 1.58.0
CARGO ?= cargo


.PHONY: all venv pg build test lint unit run deploy-check fmt clean reliability fuzz

all: test

# The virtualenv is rebuilt only when the pinned versions change.
$(VENV)/.installed-$(MOTO_VERSION)-$(CFN_LINT_VERSION):
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check 'moto[server]==$(MOTO_VERSION)' 'cfn-lint==$(CFN_LINT_VERSION)'
	rm -f $(VENV)/.installed-*
	touch $@

venv: $(VENV)/.installed-$(MOTO_VERSION)-$(CFN_LINT_VERSION)

# The whole-system tests start a throwaway PostgreSQL 15 cluster from the server binaries; install them if absent.
PG_BIN ?= /usr/lib/postgresql/15/bin
pg:
	@if [ ! -x $(PG_BIN)/initdb ]; then \
	  echo "installing postgresql-15 (server binaries for the test cluster)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql-15 openssl >/dev/null; \
	fi

build:
	$(CARGO) build --workspace --bins

lint:
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

# Formatting, clippy, then every test: unit tests, and whole-system tests that spawn the built binaries against
# moto and a throwaway PostgreSQL (the tests start both themselves).
test: venv pg lint build
	$(CARGO) test --workspace
	@if [ -f deploy/check.sh ]; then $(MAKE) --no-print-directory deploy-check; fi

deploy-check: venv
	VENV=$(VENV) bash deploy/check.sh

# Starts moto with a demo secret and the extension, shows it serving, and runs until Ctrl-C.
run: venv pg build
	VENV=$(VENV) bash tests/scripts/run-local.sh

# The full reliability suite (load, faults, a 60 s outage, hostile input, connection exhaustion, lifecycle faults)
# against release builds; prints a table. Its fast subset runs in `make test`.
reliability: venv
	$(CARGO) build --release --workspace --bins
	$(CARGO) run --release -p secretcache-tests --bin reliability

# Fuzzes the query and config parsers for FUZZ_SECONDS each (nightly + cargo-fuzz); crashes become regression inputs.
FUZZ_SECONDS ?= 60
fuzz:
	@command -v cargo-fuzz >/dev/null 2>&1 || $(CARGO) install cargo-fuzz --locked
	@rustup toolchain list | grep -q nightly || rustup toolchain install nightly --profile minimal
	bash extension/fuzz/run.sh $(FUZZ_SECONDS)

fmt:
	$(CARGO) fmt --all

clean:
	$(CARGO) clean
	rm -rf $(VENV)
