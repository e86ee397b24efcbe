# The two commands the README starts with: `make demo` and `make test`.
# Each installs what it needs first (scripts/setup.sh is idempotent).
# PROFILE=debug makes the extension build faster for development.
SHELL := /bin/bash
export PROFILE ?= release

.PHONY: demo test setup install unit pgrx_test pg_test upgrade_test failover_test scaleout_test stress_quick stress failover bench bench-worker bench-dashboards bench-cardinality bench-scale bench-health bench-recommend bench-fanout bench-sustained learn-eval clean

demo: setup install
	scripts/demo.sh

test: setup unit pgrx_test install pg_test upgrade_test failover_test scaleout_test stress_quick

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

# High availability: dashboards on a hot standby, then a primary stopped with -m immediate
# mid-ingest under synchronous replication and its standby promoted, routers resuming through
# the pgmq client; exact accounting on the promoted server (pg_test/failover.sh).
failover_test:
	pg_test/failover.sh quick

# Past one server: two regional clusters ship their hourly rollups by logical replication to a
# central one that learns over the union (pg_test/scaleout.sh).
scaleout_test:
	pg_test/scaleout.sh

# The failover test longer, and with asynchronous replication: what it loses (prints the numbers).
failover: setup install
	pg_test/failover.sh long
	pg_test/failover.sh async

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

# Batched fan-out: one learning run changing 10,000 cells with 10 and 100 subscribed instances:
# messages queued per second, time, the backend's peak memory.
bench-fanout: setup install
	scripts/bench_fanout.sh

# The highest steady publish rate (pgbench --rate) at which the worker keeps the event-to-metrics
# p99 under 1 s, by doubling then bisecting; latency distribution and CPU per process per step.
bench-sustained: setup install
	scripts/bench_sustained.sh

# One ingest call and one learning run over 100,000 distinct models: time and peak memory.
bench-cardinality: setup install
	scripts/bench_cardinality.sh

# One server's capacity for docs/scale-out.md: publishing and ingest at full speed, CPU per
# side, and learning and refresh_metrics_from_rollup() over a large rollup.
bench-scale: setup install
	scripts/bench_scale.sh

# Learning policies side by side on a replay with known ground truth (seed 11), with and without
# a broken instance and consensus: the tables of issues 11 and 14 and a PNG of score
# trajectories. A quick assertion of the default's targets is pg_test/t19_learn_eval.sh, in
# make test.
learn-eval: setup install
	scripts/learn_eval.sh

clean:
	cargo clean
