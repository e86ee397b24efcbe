# The two commands the README starts with: `make demo` and `make test`.
# Each installs what it needs first (scripts/setup.sh is idempotent).
# PROFILE=debug makes the extension build faster for development.
SHELL := /bin/bash
export PROFILE ?= release

.PHONY: demo test setup install unit pg_test bench clean

demo: setup install
	scripts/demo.sh

test: setup unit install pg_test

setup:
	scripts/setup.sh

install:
	source scripts/common.sh && install_extension

# Pure Rust: validation, aggregation, sketch (no Postgres needed).
unit:
	cargo test --lib

# SQL-level tests against a throwaway cluster with real pgmq.
pg_test:
	pg_test/run.sh

# Ingest throughput vs bare drain vs seed-style consumer (not part of the tests).
bench: setup install
	scripts/bench_ingest.sh

clean:
	cargo clean
