# The two commands the README starts with: `make demo` and `make test`.
# Each installs what it needs first (scripts/setup.sh is idempotent).
# PROFILE=debug makes the extension build faster for development.
SHELL := /bin/bash
export PROFILE ?= release

.PHONY: demo test setup install unit pgrx_test pg_test upgrade_test stress_quick stress bench bench-worker bench-dashboards bench-cardinality bench-health bench-recommend learn-eval clean

demo: setup install
	scripts/demo.sh

test: setup unit pgrx_test install pg_test upgrade_test stress_quick

setup:
	scripts/setup.sh

install:
	source scripts/common.sh && install_extension

# Pure Rust: validation, aggregation, sketch (no Postgres needed; the #[pg_test]s, named
# pg_*, need a backend and run in pgrx_test).
unit:
	cargo test --lib -- --skip ::pg_

# #[pg_test]s inside a real backend (pgrx's own throwaway cluster, run as postgres).
# It installs a test build of the extension, so `install` runs after it.
PGRX_TEST_DATA := /tmp/centralcloud-pgrx-test
pgrx_test:
	rm -rf $(PGRX_TEST_DATA) && mkdir -p $(PGRX_TEST_DATA) && chown postgres:postgres $(PGRX_TEST_DATA)
	cargo pgrx test pg15 --runas postgres --pgdata $(PGRX_TEST_DATA)

# SQL-level tests against a throwaway cluster with real pgmq.
pg_test:
	pg_test/run.sh

# The previous release (built from its commit) with real traffic, upgraded in place: checks,
# catalog equal to a fresh install, and the SQL suite on updated databases. Ends with this
# release installed again.
upgrade_test:
	pg_test/upgrade.sh

# Adversarial suites (crash, concurrency, malformed input, poison, learning under load), each
# on a fresh preloaded cluster, checked with centralcloud.check_invariants(): quick counts here,
# larger ones in `make stress`.
stress_quick:
	pg_test/stress.sh quick

stress: setup install
	pg_test/stress.sh long

# Ingest throughput vs bare drain vs seed-style consumer (not part of the tests).
bench: setup install
	scripts/bench_ingest.sh

# Worker latency at a steady rate, and backlog drain: worker vs direct call.
bench-worker: setup install
	scripts/bench_worker.sh

# Dashboard views at 10 million events (bulk load + 200k through ingest), and retention.
bench-dashboards: setup install
	scripts/bench_dashboards.sh

# Outage detection at a steady 1,000 events/s with the worker: from the first failed outcome of
# a full outage to the health event in each subscribed instance's queue, and recovery.
bench-health: setup install
	scripts/bench_health.sh

# recommend_model() latency with pgbench, 1,000 models x 3 complexities in the catalog.
bench-recommend: setup install
	scripts/bench_recommend.sh

# One ingest call and one learning run over 100,000 distinct models: time and peak memory.
bench-cardinality: setup install
	scripts/bench_cardinality.sh

# Learning policies side by side on a replay with known ground truth (seed 11): the table of
# issue 11 and a PNG of score trajectories. A quick assertion of the default's targets is
# pg_test/t19_learn_eval.sh, in make test.
learn-eval: setup install
	scripts/learn_eval.sh

clean:
	cargo clean
