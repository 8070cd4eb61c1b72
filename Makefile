# The Makefile mirrors CI exactly: .ci/run calls `make test` and nothing else.
#
# Tiers: `make check` is the fast one (formatting, clippy, the unit and in-process tests, the docs; well under a minute
# on a warm build); `make lint` is formatting, clippy and the manifest's truth (rust-version, licenses, bans, sources);
# `make test` is both, plus the whole-system suites that spawn the built binaries and the zips.
# Everything a fresh clone needs (the Python virtualenv with moto, cfn-lint and the AWS CDK library, the Node runtime
# interface client, PostgreSQL and qemu-user from Debian) is installed here.

SHELL := /bin/bash
VENV ?= .venv
PYTHON ?= python3
MOTO_VERSION := 5.2.5
CFN_LINT_VERSION := 1.58.0
# Validates deploy/k8s-sidecar.yaml against the Kubernetes API schemas it ships (offline; no cluster).
KUBERNETES_VALIDATE_VERSION := 1.37.0
# cargo-zigbuild cross-builds the Lambda zips with zig (pulled in as ziglang), statically linked (layer/build.sh).
CARGO_ZIGBUILD_VERSION := 0.24.1
ZIGLANG_VERSION := 0.17.1
# AWS's runtime interface client for Python: the Python function test (tests/tests/e2e_runtimes.rs) runs under it,
# as Lambda's managed Python runtime runs a handler. A manylinux wheel, so nothing compiles.
AWSLAMBDARIC_VERSION := 4.2.2
# The CDK app in deploy/cdk/ (issue 30): synthesized offline by tests/tests/deploy_cdk.rs, through jsii on the
# installed Node (20 works, with jsii's end-of-life notice; 22 or 24 are what jsii supports).
AWS_CDK_LIB_VERSION := 2.275.0
CONSTRUCTS_VERSION := 10.8.1
# The AWS CLI v1, a client of the SDK protocol in tests/tests/sdk.rs (`--endpoint-url`); its botocore is moto's boto3's.
AWSCLI_VERSION := 1.46.3
VENV_STAMP := $(VENV)/.installed-$(MOTO_VERSION)-$(CFN_LINT_VERSION)-$(CARGO_ZIGBUILD_VERSION)-$(ZIGLANG_VERSION)-$(KUBERNETES_VALIDATE_VERSION)-$(AWSLAMBDARIC_VERSION)-$(AWS_CDK_LIB_VERSION)-$(CONSTRUCTS_VERSION)-$(AWSCLI_VERSION)
# The zips' architecture: x86_64 or arm64 (cross-built on either machine).
ARCH ?= x86_64
CARGO ?= cargo


.PHONY: all venv pg qemu node-ric node-sdk package packages build test check lint fmt-check clippy unit doc rust-version deny run \
  deploy-check fmt clean reliability fuzz

all: test

# The virtualenv is rebuilt only when the pinned versions change.
$(VENV_STAMP):
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check 'moto[server]==$(MOTO_VERSION)' 'cfn-lint==$(CFN_LINT_VERSION)' \
	  'cargo-zigbuild==$(CARGO_ZIGBUILD_VERSION)' 'ziglang==$(ZIGLANG_VERSION)' \
	  'kubernetes-validate==$(KUBERNETES_VALIDATE_VERSION)' 'awslambdaric==$(AWSLAMBDARIC_VERSION)' \
	  'aws-cdk-lib==$(AWS_CDK_LIB_VERSION)' 'constructs==$(CONSTRUCTS_VERSION)' 'awscli==$(AWSCLI_VERSION)'
	rm -f $(VENV)/.installed-*
	touch $@

venv: $(VENV_STAMP)

# The layer zip and the function zip for provided.al2023 in layer/dist/, checked for static linking and the
# architecture (layer/check.sh). Release profile: about 8 min from scratch on 2 cores, seconds when up to date.
# DATABASE_CA_BUNDLE=path.pem puts the database server's CA bundle into the function zip (certs/database-ca.pem),
# and the function then verifies the server (verify-full). For RDS, AWS publishes the bundle at
# https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem; we never ship one.
DATABASE_CA_BUNDLE ?=
package: venv
	VENV=$(VENV) DATABASE_CA_BUNDLE='$(DATABASE_CA_BUNDLE)' bash layer/build.sh $(ARCH)

# Both architectures' zips, for the end-to-end tests (tests/tests/e2e_lambda.rs runs every scenario on each), from
# one cargo run: the host's build scripts and proc macros are compiled once, and one architecture's final link
# overlaps the other's compilation (14 min from scratch on 2 cores, against 16 to 18 for one run per architecture).
packages: venv
	VENV=$(VENV) PROFILE=$(ZIP_PROFILE) bash layer/build.sh x86_64 arm64

# The cargo profile of `make packages`: release (fat LTO) is what ships; `make test` builds its zips with `ci`
# (Cargo.toml: the release profile's behaviour without optimization, about 7 minutes faster on 2 CPUs).
ZIP_PROFILE ?= release

# The whole-system tests start a throwaway PostgreSQL 15 cluster from the server binaries; install them if absent.
PG_BIN ?= /usr/lib/postgresql/15/bin
pg:
	@if [ ! -x $(PG_BIN)/initdb ]; then \
	  echo "installing postgresql-15 (server binaries for the test cluster)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql-15 openssl >/dev/null; \
	fi

# The zips of the other architecture than this machine's run in the local Lambda environment under qemu-user, with
# that architecture's glibc from Debian's cross packages (tests/lambda-env/src/launch.rs); install them if absent.
ifeq ($(shell uname -m),aarch64)
QEMU := qemu-x86_64
QEMU_SYSROOT := /usr/x86_64-linux-gnu
QEMU_LIBC := libc6-amd64-cross
else
QEMU := qemu-aarch64
QEMU_SYSROOT := /usr/aarch64-linux-gnu
QEMU_LIBC := libc6-arm64-cross
endif
qemu:
	@if ! command -v $(QEMU) >/dev/null 2>&1 || [ ! -d $(QEMU_SYSROOT)/lib ]; then \
	  echo "installing qemu-user and $(QEMU_LIBC) (to run the other architecture's zips)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq qemu-user $(QEMU_LIBC) >/dev/null; \
	fi

# AWS's runtime interface client for Node.js (npm aws-lambda-ric), for the Node function test, in .node-ric/ (git
# ignores it). 3.3.0 is the newest for Node 20 (4.x needs Node 22). npm has no prebuilt binary of it: its install
# compiles curl and aws-lambda-cpp (cmake and autotools, installed here if absent) and a node-gyp addon, about 2
# minutes of CPU. node-gyp builds against the installed node's own headers (`nodedir`), since it could not
# download them here.
NODE_RIC_VERSION := 3.3.0
NODE_RIC_DIR := .node-ric
NODE_RIC_STAMP := $(NODE_RIC_DIR)/.installed-$(NODE_RIC_VERSION)
$(NODE_RIC_STAMP):
	@for tool in cmake autoreconf libtoolize g++; do \
	  if ! command -v $$tool >/dev/null 2>&1; then \
	    echo "installing cmake, autoconf, automake, libtool and g++ (to build aws-lambda-ric)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq cmake autoconf automake libtool g++ >/dev/null; \
	    break; \
	  fi; \
	done
	rm -rf $(NODE_RIC_DIR) && mkdir -p $(NODE_RIC_DIR) && echo '{"private": true}' > $(NODE_RIC_DIR)/package.json
	nodedir=$$(dirname "$$(dirname "$$(readlink -f "$$(command -v node)")")"); \
	if [ -f "$$nodedir/include/node/common.gypi" ]; then export npm_config_nodedir="$$nodedir"; fi; \
	cd $(NODE_RIC_DIR) && npm install --no-audit --no-fund --loglevel=error aws-lambda-ric@$(NODE_RIC_VERSION)
	test -f $(NODE_RIC_DIR)/node_modules/aws-lambda-ric/dist/rapid-client.node
	touch $@
node-ric: $(NODE_RIC_STAMP)

# The AWS SDK for JavaScript v3 (the Secrets Manager and SSM clients) in .node-sdk/ (git ignores it), for the SDK
# protocol's Node test (tests/tests/sdk.rs). The two packages are published together; this is the version npm
# resolved when the test was written (install by name, then pin).
NODE_SDK_VERSION := 3.1178.0
NODE_SDK_DIR := .node-sdk
NODE_SDK_STAMP := $(NODE_SDK_DIR)/.installed-$(NODE_SDK_VERSION)
$(NODE_SDK_STAMP):
	rm -rf $(NODE_SDK_DIR) && mkdir -p $(NODE_SDK_DIR) && echo '{"private": true}' > $(NODE_SDK_DIR)/package.json
	cd $(NODE_SDK_DIR) && npm install --no-audit --no-fund --loglevel=error \
	  @aws-sdk/client-secrets-manager@$(NODE_SDK_VERSION) @aws-sdk/client-ssm@$(NODE_SDK_VERSION)
	touch $@
node-sdk: $(NODE_SDK_STAMP)

build:
	$(CARGO) build --workspace --bins

fmt-check:
	$(CARGO) fmt --all --check

clippy:
	$(CARGO) clippy --workspace --all-targets -- -D warnings

# The test files that run in-process (they spawn nothing: no binary, no moto, no PostgreSQL, no zip). A new test file
# of that kind belongs here; every other test file is a whole-system one and runs in `make test` only.
IN_PROCESS_TESTS := fuzz_regressions gate wrapper_resolve against_a_stub items_sqlite deploy_template

# The unit tests of every crate (`--lib --bins`), the doc tests, and the in-process test files.
unit:
	$(CARGO) test --workspace --lib --bins $(addprefix --test ,$(IN_PROCESS_TESTS))
	$(CARGO) test --workspace --doc

# The API documentation of our crates, with rustdoc's warnings (broken links, bad code blocks) as errors.
doc:
	RUSTDOCFLAGS='-D warnings' $(CARGO) doc --workspace --no-deps --quiet

# The fast tier.
check: fmt-check clippy unit doc

# Every workspace member declares at least the rust-version its locked dependencies need.
rust-version:
	$(PYTHON) .ci/check-rust-version.py

# cargo-deny, pinned, built from crates.io into target/tools on first use (make lint): licenses, bans and sources
# (deny.toml). Built lean: `--debug` skips its fat-LTO release profile, and without debug info or incremental state;
# it checks a lockfile in a second either way. That is about 2 CPU-minutes (roughly 1.5 min on 2 idle cores), once
# per clone. Its advisories check is not run: it fetches the RustSec database from GitHub, which this machine's
# network does not reach; run `cargo deny check advisories` where it does.
CARGO_DENY_VERSION := 0.20.2
CARGO_DENY := target/tools/bin/cargo-deny
$(CARGO_DENY):
	CARGO_TARGET_DIR=target/tools/build CARGO_PROFILE_DEV_DEBUG=0 CARGO_INCREMENTAL=0 \
	  $(CARGO) install --locked --debug --quiet --root target/tools cargo-deny@$(CARGO_DENY_VERSION)
	rm -rf target/tools/build

deny: $(CARGO_DENY)
	$(CARGO_DENY) --log-level error check licenses bans sources

lint: fmt-check clippy rust-version deny

# `make check`, `make lint`, then every whole-system test: the built binaries against moto and a throwaway
# PostgreSQL (the tests start both themselves), both architectures' zips and the Python and Node functions in the
# local Lambda environment, and the deploy templates' offline checks.
# Two chains run side by side, since neither waits for the other and a lone cargo leaves one of the 2 CPUs idle for
# long stretches (a big crate compiling alone, a link): the tools and the zips (the virtualenv, PostgreSQL, qemu,
# aws-lambda-ric, then `make packages` with the `ci` profile), and the checks (`make check`, `make lint`, the debug
# binaries and the whole-system tests' build). Different cargo profiles do not wait on each other's lock. Each chain's
# output is printed whole when it ends (make's --output-sync), so the two do not interleave.
test:
	@echo "make test: the tools and zips, and the checks, side by side; each one's output appears when it ends"
	$(MAKE) --no-print-directory -j2 --output-sync=recurse test-tools-and-zips test-checks
	$(CARGO) test --workspace --test '*'
	@if [ -f deploy/check.sh ]; then $(MAKE) --no-print-directory deploy-check; fi

.PHONY: test-tools-and-zips test-checks
test-tools-and-zips:
	$(MAKE) --no-print-directory -j1 venv pg qemu node-ric node-sdk packages ZIP_PROFILE=ci
test-checks:
	$(MAKE) --no-print-directory -j1 check lint build
	$(CARGO) test --workspace --test '*' --no-run

deploy-check: venv
	VENV=$(VENV) bash deploy/check.sh

# The zips in the local Lambda environment, with moto holding the database secret and a throwaway TLS PostgreSQL;
# shows one upstream fetch at init, cache hits after, /items answering 200; serves until Ctrl-C. `make run ARCH=arm64`
# runs the arm64 zips (under qemu-user on an x86_64 machine).
run: venv pg qemu package
	VENV=$(VENV) bash tests/scripts/run-local.sh

# The full reliability suite (load, faults, a 60 s outage, hostile input, connection exhaustion, lifecycle faults)
# against release builds; prints a table. Its fast subset runs in `make test`. Then the identity property test
# (tests/tests/identity.rs), long: IDENTITY_CASES generated cases of adversarial secrets and reads per test.
reliability: venv pg package
	$(CARGO) build --release --workspace --bins
	$(CARGO) run --release -p secretcache-tests --bin reliability
	IDENTITY_CASES=$(IDENTITY_CASES) SECRETCACHE_BIN='$(CURDIR)/target/release/secretcache' \
	  $(CARGO) test --release -p secretcache-tests --test identity

# The identity property test's cases in `make reliability` (`make test` runs 6 per test).
IDENTITY_CASES ?= 300

# The benchmarks (BENCHMARKS.md): hit throughput and latency, cold path, memory (1,000 and 10,000 secrets), size,
# the /items overhead, batches, the SDK protocol and Managed Instances' concurrency, each beside a minimal hyper
# server measured in the same run, on release builds and the packaged zips. Prints a Markdown table; raw numbers go
# to target/bench/. BENCH_PEER_CMD adds a peer column; BENCH_SECONDS and BENCH_REPEATS change the run length. No
# timing is asserted anywhere: this measures, it does not test.
.PHONY: bench
# Ours is the binary that ships, the layer's (`make package` for this machine's architecture): SECRETCACHE_BIN points
# the bench there.
BENCH_ARCH := $(if $(filter aarch64,$(shell uname -m)),arm64,x86_64)
bench: venv pg
	$(MAKE) --no-print-directory package ARCH=$(BENCH_ARCH)
	$(CARGO) build --release -p secretcache-bench
	SECRETCACHE_BIN='$(CURDIR)/target/lambda/$(BENCH_ARCH)/layer/extensions/secretcache' \
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

# Fuzzes every parser a caller or operator feeds (extension/fuzz/run.sh lists them) for FUZZ_SECONDS each (nightly + cargo-fuzz); crashes become regression inputs.
FUZZ_SECONDS ?= 60
fuzz:
	@command -v cargo-fuzz >/dev/null 2>&1 || $(CARGO) install cargo-fuzz --locked
	@rustup toolchain list | grep -q nightly || rustup toolchain install nightly --profile minimal
	bash extension/fuzz/run.sh $(FUZZ_SECONDS)

fmt:
	$(CARGO) fmt --all

clean:
	$(CARGO) clean
	rm -rf $(VENV) $(NODE_RIC_DIR) $(NODE_SDK_DIR)
