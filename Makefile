# The Makefile mirrors CI exactly: .ci/run calls `make test` and nothing else.
# Everything a fresh clone needs (the Python virtualenv with moto and cfn-lint) is installed here.

SHELL := /bin/bash
VENV ?= .venv
PYTHON ?= python3
MOTO_VERSION := 5.2.5
CFN_LINT_VERSION := 1.58.0
# cargo-lambda cross-builds the Lambda zips with zig (pulled in as ziglang) against glibc 2.34 (layer/build.sh).
CARGO_LAMBDA_VERSION := 1.9.2
ZIGLANG_VERSION := 0.17.1
VENV_STAMP := $(VENV)/.installed-$(MOTO_VERSION)-$(CFN_LINT_VERSION)-$(CARGO_LAMBDA_VERSION)-$(ZIGLANG_VERSION)
# The zips' architecture: x86_64 or arm64 (cross-built on either machine).
ARCH ?= x86_64
CARGO ?= cargo


.PHONY: all venv pg package build test lint unit run deploy-check fmt clean reliability fuzz

all: test

# The virtualenv is rebuilt only when the pinned versions change.
$(VENV_STAMP):
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check 'moto[server]==$(MOTO_VERSION)' 'cfn-lint==$(CFN_LINT_VERSION)' \
	  'cargo-lambda==$(CARGO_LAMBDA_VERSION)' 'ziglang==$(ZIGLANG_VERSION)'
	rm -f $(VENV)/.installed-*
	touch $@

venv: $(VENV_STAMP)

# The layer zip and the function zip for provided.al2023 in layer/dist/, checked for glibc <= 2.34 and the
# architecture (layer/check.sh). Release profile: about 5.5 min from scratch on 2 cores, seconds when up to date.
# DATABASE_CA_BUNDLE=path.pem puts the database server's CA bundle into the function zip (certs/database-ca.pem),
# and the function then verifies the server (verify-full). For RDS, AWS publishes the bundle at
# https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem; we never ship one.
DATABASE_CA_BUNDLE ?=
package: venv
	VENV=$(VENV) DATABASE_CA_BUNDLE='$(DATABASE_CA_BUNDLE)' bash layer/build.sh $(ARCH)

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
test: venv pg lint build package
	$(CARGO) test --workspace
	@if [ -f deploy/check.sh ]; then $(MAKE) --no-print-directory deploy-check; fi

deploy-check: venv
	VENV=$(VENV) bash deploy/check.sh

# The zips in the local Lambda environment, with moto holding the database secret and a throwaway TLS PostgreSQL;
# shows one upstream fetch at init, cache hits after, /items answering 200; serves until Ctrl-C.
run: venv pg package
	VENV=$(VENV) bash tests/scripts/run-local.sh

# The full reliability suite (load, faults, a 60 s outage, hostile input, connection exhaustion, lifecycle faults)
# against release builds; prints a table. Its fast subset runs in `make test`.
reliability: venv pg package
	$(CARGO) build --release --workspace --bins
	$(CARGO) run --release -p secretcache-tests --bin reliability

# The benchmarks (README "Benchmarks"): hit throughput and latency, cold path, memory, size and the /items overhead,
# each beside a minimal hyper server measured in the same run, on release builds and the packaged zips. Prints a
# Markdown table; raw numbers go to target/bench/. BENCH_PEER_CMD adds a peer column; BENCH_SECONDS and
# BENCH_REPEATS change the run length. No timing is asserted anywhere: this measures, it does not test.
.PHONY: bench
bench: venv pg package
	$(CARGO) build --release -p secretcache -p secretcache-bench
	$(CARGO) run --quiet --release -p secretcache-bench --bin secretcache-bench

# `make bench` with the AWS Secrets Manager Agent (crates.io `aws_secretsmanager_agent`, built once into
# target/peers/, about 7 minutes on 2 cores) as the peer column, started by tests/bench/peers/.
AWS_AGENT_VERSION := 2.1.0
AWS_AGENT := target/peers/bin/aws_secretsmanager_agent
.PHONY: bench-aws-agent
$(AWS_AGENT):
	CARGO_TARGET_DIR=target/peers/build $(CARGO) install --locked --quiet --root target/peers \
	  aws_secretsmanager_agent@$(AWS_AGENT_VERSION)
bench-aws-agent: $(AWS_AGENT)
	BENCH_PEER_CMD='$(CURDIR)/tests/bench/peers/aws-secretsmanager-agent.sh $(CURDIR)/$(AWS_AGENT)' \
	  BENCH_PEER_BIN='$(CURDIR)/$(AWS_AGENT)' $(MAKE) --no-print-directory bench

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
