#!/usr/bin/env python3
"""Learning evaluation: replays simulated hours of known ground truth through the real path
(pgmq.send_batch -> ingest_routing_events() -> learn_complexity_scores()) once per run (a
learning policy, with or without the outlier scenario, consensus on or off), each in a fresh
database, and measures how well the learned scores track the truth.

The ground truth (the same events for every policy: Python random.Random(--seed)):
- simple/medium/complex, 5 regular models each, true success rates 1 to 6 points apart, the
  same latency distribution for every regular model of a complexity (lognormal, p95 < 2 s), so
  latency never reorders them;
- simple: a slow twin of the best model (same success rate, every latency 4x);
- medium: the best model regresses at --change-hour to below the worst;
- complex: a weak model recovers at --change-hour to become the best;
- complex: a sparse sixth model with 5 outcomes an hour (below min_samples_for_learning);
- the catalog starts in the INVERSE order: every event of a cell carries its prior as
  complexity_score (worst true model 4.5 ... best 0.5), and ingest enters a cell at the
  complexity_score of its first event;
- medium: golf (98%) served through provider-x; every other cell through github_models;
- each event comes from one of --instances instances (5), drawn at random; every instance
  subscribes to score updates (and so gets advisories);
- runs named <policy>+outlier: from --outlier-hour (12) the last instance fails 90% of its
  outcomes through provider-x (its own network path; the others see 98%), drawn from a second
  generator so that everything else is the same events as the run without +outlier;
  <policy>+noconsensus sets min_agreeing_instances 1 and outlier_threshold 0.
Each hour: --outcomes-per-hour outcome events (success/failure, response_time_ms) and
--routed-per-hour routed events per cell, timestamps inside that simulated hour. Simulated
hours are UTC clock hours (event-hour rollups and change points line up with them); the last is
the current one, its events between its start and now. Then ingest, SET
centralcloud.learning_policy, learn, read the scores.

Metrics per policy: Kendall tau-b per complexity at the hour before the change, outcomes until
the regression and the recovery show in the ranking, false alarms (rows of
centralcloud.learning_changes, if the policy keeps one) on stationary cells, score jitter once
converged, updates published, slow twin below its twin, the sparse cell against its prior;
and of consensus: outcomes of the broken instance until it is flagged, advisories per queue,
instances flagged wrongly, how far golf's score moved (since the onset, and against the run
without the outlier, assessed and published). --assert checks the targets of every run of
--assert-policy with consensus on and exits 1 when one is not met.

Runs as a superuser (CREATE DATABASE, SET centralcloud.learning_policy) over the unix socket:
scripts/learn_eval.sh starts a cluster and runs it; pg_test/t19_learn_eval.sh runs it in a
test database.
"""

import argparse
import json
import math
import os
import random
import re
import sys
import time
from datetime import datetime, timedelta, timezone

try:
    import psycopg
    from psycopg import sql
except ImportError:  # pragma: no cover - told clearly, not a traceback
    sys.exit("learn_eval.py needs psycopg 3: run it with the venv's Python ($VENV/bin/python, "
             "scripts/setup.sh creates it)")

QUEUE = "model_routing_decisions"
COMPLEXITIES = ("simple", "medium", "complex")
EPS = 1e-9

# Targets of --assert.
TARGET_TAU = 0.9
TARGET_DETECT_OUTCOMES = 450
TARGET_FALSE_ALARMS = 1.0      # per 100 cell-hours
TARGET_MEAN_ABS_CHANGE = 0.05  # per cell-hour once converged
TARGET_FLAG_OUTCOMES = 300     # the broken instance's outcomes on the cell until it is flagged
TARGET_OUTLIER_MOVE = 0.05     # the target's score moved by the outlier: below min_score_change


# ----------------------------------------------------------------------------------------------
# Ground truth
# ----------------------------------------------------------------------------------------------
class Cell:
    """One (model, complexity) with its true behaviour."""

    def __init__(self, model, complexity, rate, prior, median_ms, sigma, role="regular",
                 rate_after=None, outcomes=None, routed=None, twin_of=None, latency_factor=1.0,
                 provider="github_models"):
        self.model = model
        self.complexity = complexity
        self.rate_before = rate
        self.rate_after = rate if rate_after is None else rate_after
        self.prior = prior
        self.median_ms = median_ms * latency_factor
        self.sigma = sigma
        self.role = role  # regular, slow_twin, regressed, recovered, sparse
        self.outcomes = outcomes  # per hour; None: --outcomes-per-hour
        self.routed = routed      # per hour; None: --routed-per-hour
        self.twin_of = twin_of
        self.provider = provider

    @property
    def key(self):
        return (self.model, self.complexity)

    def rate(self, hour, change_hour):
        return self.rate_after if hour >= change_hour else self.rate_before

    def p95_ms(self):
        return self.median_ms * math.exp(1.6449 * self.sigma)

    def mean_ms(self):
        return self.median_ms * math.exp(self.sigma ** 2 / 2)

    def describe_rate(self):
        if self.rate_after != self.rate_before:
            return f"{self.rate_before:.2f}->{self.rate_after:.2f}"
        return f"{self.rate_before:.2f}"

    def label(self):
        return f"{self.model}/{self.complexity}"


SIGMA = 0.35  # lognormal shape: p95 = median * 1.78, mean = median * 1.06
MEDIAN_MS = {"simple": 350.0, "medium": 550.0, "complex": 850.0}
# Per complexity, best to worst: (model, true success rate). The priors are the inverse:
# best 0.5, then 1.5, 2.5, 3.5, worst 4.5. Gaps: simple 1,2,3,4; medium 1,2,3,4; complex 1,3,2,6.
TRUTH = {
    "simple": [("charlie", 0.97), ("alpha", 0.96), ("echo", 0.94), ("bravo", 0.91), ("delta", 0.87)],
    "medium": [("bravo", 0.95), ("delta", 0.94), ("alpha", 0.92), ("charlie", 0.89), ("echo", 0.85)],
    "complex": [("echo", 0.92), ("charlie", 0.91), ("alpha", 0.88), ("delta", 0.86), ("bravo", 0.80)],
}
INVERSE_PRIORS = (0.5, 1.5, 2.5, 3.5, 4.5)
REGRESSED = ("bravo", "medium", 0.80)      # the best of medium falls below its worst (0.85)
RECOVERED = ("delta", "complex", 0.97)     # a weak one of complex becomes the best (0.92)
SLOW_TWIN = ("charlie-slow", "simple", "charlie", 1.0)  # twin of the best of simple, prior 1.0
SPARSE = ("foxtrot", "complex", 0.90, 2.5, 5)  # model, complexity, rate, prior, outcomes/hour
# The outlier scenario (runs named <policy>+outlier): from --outlier-hour on, the last instance
# has OUTLIER_FAILURES of its outcomes fail through OUTLIER_PROVIDER (its own network path),
# where the rest of the fleet sees the model's true rate. Every run has the cell; only outlier
# runs have the failures, drawn from a generator of their own, so a run and its outlier twin
# replay the same events otherwise.
OUTLIER_TARGET = ("golf", "medium", 0.98, 2.5)  # model, complexity, true rate, prior
OUTLIER_PROVIDER = "provider-x"
OUTLIER_FAILURES = 0.90
ASSESSED = re.compile(r"score (\d+\.\d+)")
INSTANCES = ("router-us-1", "router-eu-1", "router-ap-1", "router-us-2", "router-eu-2")
# Subscribes halfway through the replay, publishing nothing.
LATE_JOINER = "router-late-1"


def scenario():
    cells = []
    for complexity in COMPLEXITIES:
        for (model, rate), prior in zip(TRUTH[complexity], INVERSE_PRIORS):
            cell = Cell(model, complexity, rate, prior, MEDIAN_MS[complexity], SIGMA)
            if (model, complexity) == REGRESSED[:2]:
                cell.role, cell.rate_after = "regressed", REGRESSED[2]
            if (model, complexity) == RECOVERED[:2]:
                cell.role, cell.rate_after = "recovered", RECOVERED[2]
            cells.append(cell)
    twin_model, twin_complexity, fast_model, twin_prior = SLOW_TWIN
    fast = next(c for c in cells if c.key == (fast_model, twin_complexity))
    # Same success rate; every latency 4x its twin's (a lognormal scaled by 4): median 1.4 s,
    # mean 1.5 s (under the seed's 2 s slowness threshold), p95 2.5 s (above 2 s).
    cells.append(Cell(twin_model, twin_complexity, fast.rate_before, twin_prior,
                      MEDIAN_MS[twin_complexity], SIGMA, role="slow_twin", twin_of=fast_model,
                      latency_factor=4.0))
    model, complexity, rate, prior, per_hour = SPARSE
    cells.append(Cell(model, complexity, rate, prior, MEDIAN_MS[complexity], SIGMA, role="sparse",
                      outcomes=per_hour, routed=per_hour))
    model, complexity, rate, prior = OUTLIER_TARGET
    cells.append(Cell(model, complexity, rate, prior, MEDIAN_MS[complexity], SIGMA, role="outlier_target",
                      provider=OUTLIER_PROVIDER))
    return cells


def iso(ts):
    return ts.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def first_hour_start(args, now):
    """Start of simulated hour 0: the UTC clock hour H - 1 hours before the current one."""
    return now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=args.hours - 1)


def hourly_events(cells, args, now, tally=None, outlier=False, instance_tally=None):
    """Yields (hour, [event JSON text, ...]) for every simulated hour, deterministically from
    --seed and `now` (a fresh generator per call: the same events for every policy). Hour h is
    the UTC clock hour starting at first_hour_start + h hours; the last one, the current hour,
    only up to `now` (later timestamps would be in the future). `tally`, if given, gets each
    cell's [successes, outcomes] per hour; `instance_tally` each (cell, instance)'s outcomes per
    hour. `outlier`: the last instance's outcomes through OUTLIER_PROVIDER fail
    OUTLIER_FAILURES of the time from --outlier-hour on (a second generator: nothing else
    changes)."""
    rng = random.Random(args.seed)
    broken = random.Random(args.seed + 1)
    instances = INSTANCES[:args.instances]
    base = first_hour_start(args, now)
    for hour in range(args.hours):
        start = base + timedelta(hours=hour)
        span_us = min(3_600_000_000, max(1, int((now - start).total_seconds() * 1e6)))
        events = []
        for cell in cells:
            counts = [0, 0]
            rate = cell.rate(hour, args.change_hour)
            n_out = args.outcomes_per_hour if cell.outcomes is None else cell.outcomes
            n_routed = args.routed_per_hour if cell.routed is None else cell.routed
            mu = math.log(cell.median_ms)
            for i in range(n_out + n_routed):
                routed = i >= n_out
                # One draw whatever the span: the outcomes do not depend on the clock.
                ts = start + timedelta(microseconds=int(rng.random() * span_us))
                instance = instances[rng.randrange(len(instances))]
                if routed:
                    outcome, latency = "routed", None
                else:
                    outcome = "success" if rng.random() < rate else "failure"
                    latency = max(1, int(round(rng.lognormvariate(mu, cell.sigma))))
                    if (outlier and hour >= args.outlier_hour and instance == instances[-1]
                            and cell.provider == OUTLIER_PROVIDER):
                        outcome = "failure" if broken.random() < OUTLIER_FAILURES else "success"
                    counts[0] += outcome == "success"
                    counts[1] += 1
                    if instance_tally is not None:
                        per_hour = instance_tally.setdefault((cell.key, instance), [0] * args.hours)
                        per_hour[hour] += 1
                events.append((ts, json.dumps({
                    "timestamp": iso(ts),
                    "instance_id": instance,
                    "routing_decision": {
                        "complexity": cell.complexity,
                        "selected_model": cell.model,
                        "selected_provider": cell.provider,
                        # Routers route with the catalog's initial (inverse) score: ingest enters
                        # the cell at the complexity_score of its first event.
                        "complexity_score": cell.prior,
                        "outcome": outcome,
                        "response_time_ms": latency,
                        "capabilities_required": [],
                        "prefer": None,
                        "user_model_request": None,
                    },
                })))
            if tally is not None:
                tally.setdefault(cell.key, []).append(counts)
        events.sort(key=lambda e: e[0])
        yield hour, [text for _, text in events]


# ----------------------------------------------------------------------------------------------
# Replay
# ----------------------------------------------------------------------------------------------
class PolicyUnavailable(Exception):
    pass


class Run:
    """One replay: `policy[+outlier][+noconsensus]`, a learning policy, with the outlier
    scenario or not, with consensus among instances on (the defaults) or off
    (min_agreeing_instances 1, outlier_threshold 0)."""

    SPEC = re.compile(r"([a-z0-9_]{1,40})((?:\+outlier)?)((?:\+noconsensus)?)")

    def __init__(self, spec):
        m = self.SPEC.fullmatch(spec)
        if not m:
            raise ValueError(spec)
        self.name, self.policy = spec, m.group(1)
        self.outlier, self.consensus = bool(m.group(2)), not m.group(3)

    @property
    def db_suffix(self):
        return self.name.replace("+", "_")

    def clean_twin(self):
        """The run whose events this one's differ from only by the outlier's failures."""
        return self.policy if self.outlier else None


def connect(args, dbname):
    return psycopg.connect(host=args.dsn_host, port=args.dsn_port, user=args.user,
                           dbname=dbname, autocommit=True)


def prepare_database(args, run):
    """The database a run replays in: the given one (--reuse-database, checked to be fresh) or
    <--database>_<run>, dropped and created with the extension."""
    if args.reuse_database:
        db = args.database
        with connect(args, db) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS centralcloud CASCADE")
            cells, queued = conn.execute(
                "SELECT (SELECT count(*) FROM centralcloud.model_complexity_scores),"
                "       (SELECT count(*) FROM pgmq.q_model_routing_decisions)").fetchone()
            if cells or queued:
                raise SystemExit(f"database {db} is not fresh: {cells} catalog cells, "
                                 f"{queued} queued messages (drop it or leave out --reuse-database)")
        return db
    db = f"{args.database}_{run.db_suffix}"
    with connect(args, args.maintenance_db) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(db)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(db)))
    with connect(args, db) as conn:
        conn.execute("CREATE EXTENSION centralcloud CASCADE")
    return db


def set_policy(conn, policy):
    # SET with a literal (SET takes no parameters); the name is checked to be [a-z0-9_]+.
    conn.execute(sql.SQL("SET centralcloud.learning_policy = {}").format(sql.Literal(policy)))
    shown = conn.execute("SHOW centralcloud.learning_policy").fetchone()[0]
    if shown != policy:
        raise PolicyUnavailable(f"SET centralcloud.learning_policy = '{policy}' left it at '{shown}'")


def set_consensus(conn, run):
    if not run.consensus:
        conn.execute("SET centralcloud.min_agreeing_instances = 1")
        conn.execute("SET centralcloud.outlier_threshold = 0")


def replay(args, run, cells, now):
    """Replays every hour for one run. Returns the raw observations."""
    policy = run.policy
    db = prepare_database(args, run)
    obs = {"database": db, "now": now, "scores": [], "updates": [], "ingest": [], "learn_rows": 0, "tally": {},
           "instance_tally": {}, "anomalies": [], "assessed": []}
    with connect(args, db) as conn:
        # Loaded before SET: a custom setting set before its library loads is a placeholder
        # that the library might reject (with only a WARNING) when it defines the variable.
        conn.execute("LOAD 'centralcloud'")
        if args.hours > 6 * 24:
            conn.execute("SET centralcloud.max_event_age = 0")
        set_consensus(conn, run)
        # Every instance subscribes: score updates and advisories reach its own queue.
        queues = {i: conn.execute("SELECT centralcloud.subscribe_instance(%s)", (i,)).fetchone()[0]
                  for i in INSTANCES[:args.instances]}
        try:
            set_policy(conn, policy)
            # Raises for an unknown policy, with nothing to learn yet.
            conn.execute("SELECT count(*) FROM centralcloud.learn_complexity_scores(dry_run => true)")
        except psycopg.Error as e:
            raise PolicyUnavailable(e.diag.message_primary or str(e)) from None
        last_history_id = 0
        for hour, events in hourly_events(cells, args, now, obs["tally"], run.outlier, obs["instance_tally"]):
            for i in range(0, len(events), args.chunk):
                conn.execute("SELECT count(*) FROM pgmq.send_batch(%s, %s::jsonb[])",
                             (QUEUE, events[i:i + args.chunk]))
            ingest = conn.execute(
                "SELECT read, ingested, rejected FROM centralcloud.ingest_routing_events()").fetchone()
            if ingest[1] != len(events):
                rejected = conn.execute(
                    "SELECT reason_code, reason FROM centralcloud.routing_events_rejected LIMIT 3").fetchall()
                raise SystemExit(f"{policy}, hour {hour}: sent {len(events)} events, ingest returned "
                                 f"(read, ingested, rejected) = {ingest}; rejections: {rejected}")
            obs["ingest"].append(ingest[1])
            try:
                set_policy(conn, policy)
                learned = conn.execute(
                    "SELECT model, complexity, reason FROM centralcloud.learn_complexity_scores()").fetchall()
                obs["learn_rows"] += len(learned)
                # The score the evidence gives (bayes names it in the reason, applied or kept).
                obs["assessed"].append({(m, c): float(a.group(1)) for m, c, r in learned
                                        if (a := ASSESSED.search(r))})
            except psycopg.Error as e:
                raise PolicyUnavailable(f"hour {hour}: {e.diag.message_primary or e}") from None
            scores = {(m, c): s for m, c, s in conn.execute(
                "SELECT model_name, complexity_level, score FROM centralcloud.model_complexity_scores")}
            obs["scores"].append(scores)
            obs["anomalies"].append({tuple(r) for r in conn.execute(
                "SELECT instance_id, model::text, complexity_level::text, provider::text"
                "  FROM centralcloud.instance_anomalies")})
            for hid, m, c in conn.execute(
                    "SELECT id, model_name, complexity_level FROM centralcloud.score_history"
                    " WHERE policy <> 'operator' AND id > %s ORDER BY id", (last_history_id,)):
                obs["updates"].append((hour, m, c))
                last_history_id = hid
            if hour + 1 == args.hours // 2:
                # A new instance subscribes mid-run: from its first read it must hold the catalog.
                late_queue = conn.execute("SELECT centralcloud.subscribe_instance(%s)", (LATE_JOINER,)).fetchone()[0]
                obs["late_joiner_catalog"] = dict(scores)
            if not args.quiet and (hour + 1) % 10 == 0:
                print(f"  {run.name}: hour {hour + 1}/{args.hours}", file=sys.stderr, flush=True)
        obs["published_total"] = conn.execute(
            "SELECT count(*) FROM centralcloud.score_history WHERE policy <> 'operator'").fetchone()[0]
        obs["history_policies"] = [r[0] for r in conn.execute(
            "SELECT DISTINCT policy FROM centralcloud.score_history WHERE policy <> 'operator'")]
        has_changes = conn.execute(
            "SELECT to_regclass('centralcloud.learning_changes') IS NOT NULL").fetchone()[0]
        obs["has_learning_changes"] = has_changes
        obs["episodes"] = [dict(zip(("instance", "model", "complexity", "provider", "kind", "statistic",
                                      "since", "cleared_hour", "advised_queue", "message"), r)) for r in conn.execute(
            "SELECT instance_id, model_name::text, complexity_level::text, provider::text, kind, statistic,"
            "       since, cleared_hour, advised_queue, advisory->>'message'"
            "  FROM centralcloud.instance_anomaly_episodes ORDER BY id")]
        # Advisories in each instance's own queue (and whom they name).
        obs["advisories"] = {}
        for instance, queue in queues.items():
            table = conn.execute("SELECT pgmq.format_table_name(%s, 'q')", (queue,)).fetchone()[0]
            obs["advisories"][instance] = [r[0] for r in conn.execute(
                sql.SQL("SELECT message->>'instance_id' FROM pgmq.{} WHERE message->>'event_type' = 'instance_advisory'")
                .format(sql.Identifier(table)))]
        obs["late_joiner"] = late_joiner_view(conn, late_queue, obs["late_joiner_catalog"], scores)
        obs["changes"] = []
        if has_changes:
            obs["changes"] = [(m, c, h, k) for m, c, h, k in conn.execute(
                "SELECT model_name::text, complexity_level::text, change_hour, kind::text"
                "  FROM centralcloud.learning_changes ORDER BY change_hour, model_name, complexity_level")]
    return obs


def late_joiner_view(conn, queue, catalog_then, catalog_now):
    """What the instance that subscribed mid-run read, in order: its first messages must be the
    snapshot of the catalog when it subscribed (every cell, old_score null), and applying all of
    them must give the catalog at the end. Returns (snapshot right, in sync at the end, updates)."""
    messages = [r[0] for r in conn.execute(
        "SELECT message FROM pgmq.read(%s, 30, 1000000) ORDER BY msg_id", (queue,))]
    scores_only = [m for m in messages if m.get("event_type") == "model_score_update"]
    snapshot = [m for m in scores_only if m.get("snapshot")]
    snapshot_right = (scores_only[:len(snapshot)] == snapshot and all(m["old_score"] is None for m in snapshot)
                      and {(m["model"], m["complexity"]): m["new_score"] for m in snapshot} == catalog_then)
    view = {}
    for m in scores_only:
        view[(m["model"], m["complexity"])] = m["new_score"]
    return snapshot_right, view == catalog_now, len(scores_only) - len(snapshot)


# ----------------------------------------------------------------------------------------------
# Metrics
# ----------------------------------------------------------------------------------------------
def sign(v):
    return 0 if abs(v) <= EPS else (1 if v > 0 else -1)


def kendall_tau_b(x, y):
    """Kendall's tau-b (ties corrected); None when either side is constant."""
    concordant = discordant = tied_x_only = tied_y_only = 0
    n = len(x)
    for i in range(n):
        for j in range(i + 1, n):
            dx, dy = sign(x[i] - x[j]), sign(y[i] - y[j])
            if dx == 0 and dy == 0:
                continue
            if dx == 0:
                tied_x_only += 1
            elif dy == 0:
                tied_y_only += 1
            elif dx == dy:
                concordant += 1
            else:
                discordant += 1
    denom = math.sqrt((concordant + discordant + tied_x_only) * (concordant + discordant + tied_y_only))
    return None if denom == 0 else (concordant - discordant) / denom


def first_hour(args, condition):
    """First hour >= change hour after whose learn `condition(hour)` holds, as outcomes of the
    changed model since the change (outcomes_per_hour per elapsed hour); None: never."""
    for hour in range(args.change_hour, args.hours):
        if condition(hour):
            return args.outcomes_per_hour * (hour - args.change_hour + 1)
    return None


def metrics(args, cells, obs, run):
    scores = obs["scores"]
    tau_hour, last = args.change_hour - 1, args.hours - 1
    by_key = {c.key: c for c in cells}
    score = lambda hour, cell: scores[hour].get(cell.key)
    regular = {cx: [c for c in cells if c.complexity == cx and c.role in ("regular", "regressed", "recovered")]
               for cx in COMPLEXITIES}
    m = {}

    # 1. Kendall tau-b at the hour before the change, regular models against true rates.
    m["tau_hour"] = tau_hour
    m["tau"] = {cx: kendall_tau_b([score(tau_hour, c) for c in regular[cx]],
                                  [c.rate_before for c in regular[cx]]) for cx in COMPLEXITIES}

    # The same from the data itself: success rates observed in hours 0..tau_hour (what a policy
    # that forgets nothing would see); below 1 when the sample cannot separate a gap.
    observed = lambda c: (sum(s for s, _ in obs["tally"][c.key][:tau_hour + 1])  # noqa: E731
                          / sum(n for _, n in obs["tally"][c.key][:tau_hour + 1]))
    m["data_tau"] = {cx: kendall_tau_b([observed(c) for c in regular[cx]],
                                       [c.rate_before for c in regular[cx]]) for cx in COMPLEXITIES}

    # 2./3. Detection of the regression and the recovery in the ranking (regular models).
    def strictly_below_all_better(hour, cell):
        better = [o for o in regular[cell.complexity] if o is not cell
                  and o.rate(hour, args.change_hour) > cell.rate(hour, args.change_hour)]
        return all(score(hour, cell) < score(hour, o) - EPS for o in better)

    def strictly_above_all_beaten(hour, cell):
        beaten = [o for o in regular[cell.complexity] if o is not cell
                  and o.rate(hour, args.change_hour) < cell.rate(hour, args.change_hour)]
        return all(score(hour, cell) > score(hour, o) + EPS for o in beaten)

    regressed = next(c for c in cells if c.role == "regressed")
    recovered = next(c for c in cells if c.role == "recovered")
    m["regression_outcomes"] = first_hour(args, lambda h: strictly_below_all_better(h, regressed))
    m["recovery_outcomes"] = first_hour(args, lambda h: strictly_above_all_beaten(h, recovered))
    # Already in its post-change place before the change (an inverted ranking, not detection).
    m["regressed_already_last_before_change"] = all(
        score(tau_hour, regressed) < score(tau_hour, o) - EPS for o in regular["medium"] if o is not regressed)
    m["recovered_already_first_before_change"] = all(
        score(tau_hour, recovered) > score(tau_hour, o) + EPS for o in regular["complex"] if o is not recovered)

    # 4. False alarms on stationary cells (the outlier's target too: the model does not change).
    stationary = [c for c in cells if c.role in ("regular", "slow_twin", "outlier_target")]
    stationary_keys = {c.key for c in stationary}
    changes_per_cell = {}
    for model, cx, _, _ in obs["changes"]:
        changes_per_cell[(model, cx)] = changes_per_cell.get((model, cx), 0) + 1
    false_alarms = sum(n for k, n in changes_per_cell.items() if k in stationary_keys)
    m["learning_changes_table"] = obs["has_learning_changes"]
    m["stationary_cells"] = len(stationary)
    m["false_alarm_rows"] = false_alarms
    m["false_alarms_per_100_cell_hours"] = false_alarms / (len(stationary) * args.hours) * 100
    m["change_rows_per_cell"] = {f"{k[0]}/{k[1]}": n for k, n in sorted(changes_per_cell.items())}
    sparse = next(c for c in cells if c.role == "sparse")
    base = first_hour_start(args, obs["now"])

    def sim_hour(t):  # learning_changes.change_hour as a simulated hour
        return round((t - base).total_seconds() / 3600) if isinstance(t, datetime) else None

    m["changes_detected"] = {
        role: [{"change_hour": h.isoformat() if isinstance(h, datetime) else h, "sim_hour": sim_hour(h),
                "kind": k} for mo, cx, h, k in obs["changes"] if (mo, cx) == cell.key]
        for role, cell in (("regressed", regressed), ("recovered", recovered), ("sparse", sparse))}

    # 5. Mean |score change| per cell-hour once converged: stationary cells, the hour-to-hour
    # differences between consecutive hours of [converged_from, tau_hour].
    diffs = [abs(score(h, c) - score(h - 1, c)) for c in stationary
             for h in range(args.converged_from + 1, tau_hour + 1)]
    m["converged_window"] = [args.converged_from, tau_hour]
    m["mean_abs_change"] = sum(diffs) / len(diffs) if diffs else None

    # 6. Updates published.
    m["updates_total"] = obs["published_total"]
    m["updates_stationary_converged"] = sum(
        1 for h, mo, cx in obs["updates"]
        if (mo, cx) in stationary_keys and args.converged_from <= h <= tau_hour)

    # 7. Slow twin strictly below its fast twin.
    twin = next(c for c in cells if c.role == "slow_twin")
    fast = by_key[(twin.twin_of, twin.complexity)]
    m["slow_twin_below_last"] = score(last, twin) < score(last, fast) - EPS
    m["slow_twin_below_tau_hour"] = score(tau_hour, twin) < score(tau_hour, fast) - EPS
    m["slow_twin_scores_last"] = [score(last, twin), score(last, fast)]

    # 8. Sparse cell.
    m["sparse_prior"] = sparse.prior
    m["sparse_score_last"] = score(last, sparse)
    m["sparse_updates"] = sum(1 for _, mo, cx in obs["updates"] if (mo, cx) == sparse.key)
    m.update(consensus_metrics(args, cells, obs, run))
    return m


def consensus_metrics(args, cells, obs, run):
    """The outlier scenario: when the broken instance was flagged (in its outcomes for the cell
    since the onset), which other sources were flagged (false flags), who was advised, how far
    the target cell's score moved from its score before the onset."""
    target = next(c for c in cells if c.role == "outlier_target")
    outlier = INSTANCES[args.instances - 1]
    source = (outlier, target.model, target.complexity, target.provider)
    onset, last = args.outlier_hour, args.hours - 1
    m = {"outlier_run": run.outlier, "consensus": run.consensus, "outlier_source": "/".join(source)}
    flagged_hour = next((h for h in range(onset, args.hours) if source in obs["anomalies"][h]), None)
    per_hour = obs["instance_tally"].get((target.key, outlier), [0] * args.hours)
    m["flagged_sim_hour"] = flagged_hour
    m["flagged_outcomes"] = (sum(per_hour[onset:flagged_hour + 1]) if run.outlier and flagged_hour is not None
                             else None)
    m["flagged_last_hour"] = source in obs["anomalies"][last]
    expected = [e for e in obs["episodes"] if run.outlier
                and (e["instance"], e["model"], e["complexity"], e["provider"]) == source]
    m["false_flags"] = len(obs["episodes"]) - len(expected)
    m["false_flag_sources"] = sorted({"/".join((e["instance"], e["model"], e["complexity"], e["provider"]))
                                      for e in obs["episodes"] if e not in expected})
    m["outlier_episodes"] = len(expected)
    m["advisory_message"] = expected[0]["message"] if expected else None
    m["late_joiner"] = obs["late_joiner"]
    m["advisories_outlier"] = len(obs["advisories"].get(outlier, []))
    m["advisories_others"] = sum(len(v) for i, v in obs["advisories"].items() if i != outlier)
    m["advisories_name_their_queue"] = all(n == i for i, v in obs["advisories"].items() for n in v)
    scores = obs["scores"]
    m["target_moved_since_onset"] = max(abs(scores[h][target.key] - scores[onset - 1][target.key])
                                        for h in range(onset, args.hours))
    m["target_scores"] = [scores[h][target.key] for h in range(args.hours)]
    m["target_assessed"] = [obs["assessed"][h].get(target.key) for h in range(args.hours)]
    return m


def compare_with_clean_twins(args, results):
    """For each outlier run whose clean twin ran: the largest difference of the target cell's
    score between the two from the onset on (what the outlier moved)."""
    for name, r in results.items():
        twin = Run(name).clean_twin() if r["available"] else None
        if twin is None or not results.get(twin, {}).get("available"):
            continue
        m, clean = r["metrics"], results[twin]["metrics"]
        diff = lambda key: max((abs(x - y) for x, y in zip(m[key][args.outlier_hour:],  # noqa: E731
                                                          clean[key][args.outlier_hour:])
                                if x is not None and y is not None), default=None)
        m["target_moved_vs_clean"] = diff("target_scores")
        m["target_assessed_vs_clean"] = diff("target_assessed")
        m["clean_twin"] = twin


def assertions(args, m):
    """(label, met, number) for every --assert target; the outlier scenario's with it."""
    fmt = lambda v: "n/a" if v is None else f"{v:.3f}"  # noqa: E731
    out = []
    for cx in COMPLEXITIES:
        tau = m["tau"][cx]
        out.append((f"tau {cx} at hour {m['tau_hour']} >= {TARGET_TAU}",
                    tau is not None and tau >= TARGET_TAU, fmt(tau)))
    for key, what in (("regression_outcomes", "regression"), ("recovery_outcomes", "recovery")):
        v = m[key]
        out.append((f"{what} within {TARGET_DETECT_OUTCOMES} outcomes",
                    v is not None and v <= TARGET_DETECT_OUTCOMES,
                    f"not within {args.hours} h" if v is None else str(v)))
    out.append((f"false alarms <= {TARGET_FALSE_ALARMS} per 100 cell-hours",
                m["false_alarms_per_100_cell_hours"] <= TARGET_FALSE_ALARMS,
                f"{m['false_alarms_per_100_cell_hours']:.2f}"))
    out.append((f"mean |change| <= {TARGET_MEAN_ABS_CHANGE} per cell-hour (hours "
                f"{m['converged_window'][0]}..{m['converged_window'][1]})",
                m["mean_abs_change"] is not None and m["mean_abs_change"] <= TARGET_MEAN_ABS_CHANGE,
                fmt(m["mean_abs_change"])))
    out.append(("slow twin strictly below fast twin (last hour)", m["slow_twin_below_last"],
                "{:.2f} < {:.2f}".format(*m["slow_twin_scores_last"])))
    snapshot_right, in_sync, updates = m["late_joiner"]
    yn = lambda b: "yes" if b else "no"  # noqa: E731
    out.append((f"an instance subscribing at hour {args.hours // 2} in sync from its first read",
                snapshot_right and in_sync, f"snapshot {yn(snapshot_right)}, in sync at the end {yn(in_sync)} "
                f"after {updates} updates"))
    out.append(("no instance flagged but the broken one", m["false_flags"] == 0,
                f"{m['false_flags']} ({', '.join(m['false_flag_sources']) or 'none'})"))
    if not m["outlier_run"]:
        out.append(("no advisory sent", m["advisories_outlier"] + m["advisories_others"] == 0,
                    str(m["advisories_outlier"] + m["advisories_others"])))
        return out
    v = m["flagged_outcomes"]
    out.append((f"broken instance flagged within {TARGET_FLAG_OUTCOMES} of its outcomes",
                v is not None and v <= TARGET_FLAG_OUTCOMES, "never" if v is None else str(v)))
    out.append(("broken instance still flagged at the last hour", m["flagged_last_hour"], str(m["flagged_last_hour"])))
    out.append(("advised once, in its own queue only",
                m["advisories_outlier"] == 1 and m["advisories_others"] == 0 and m["advisories_name_their_queue"],
                f"{m['advisories_outlier']} in its queue, {m['advisories_others']} elsewhere"))
    # What the outlier did to the score the evidence gives, hour by hour against the same events
    # without it: below the hysteresis, it cannot move the published score by itself. (The
    # published scores of the two runs may also differ by when each crossed the hysteresis.)
    moved = m.get("target_assessed_vs_clean")
    out.append((f"{m['outlier_source'].split('/')[1]}'s score moved by the outlier < min_score_change "
                f"{TARGET_OUTLIER_MOVE} (vs {m.get('clean_twin', 'its clean twin: not run')})",
                moved is not None and moved < TARGET_OUTLIER_MOVE, "n/a" if moved is None else f"{moved:.4f}"))
    return out


# ----------------------------------------------------------------------------------------------
# Output
# ----------------------------------------------------------------------------------------------
def fmt_outcomes(v, hours, already):
    s = f"not within {hours} h" if v is None else str(v)
    return s + (" (already before)" if already and v is not None else "")


def table(args, cells, results):
    names = list(results)
    rows = []
    yn = lambda b: "yes" if b else "no"  # noqa: E731

    def f(v, digits=3):
        return "n/a (all tied)" if v is None else f"{v:.{digits}f}"

    def row(label, getter):
        rows.append([label] + [getter(results[p]["metrics"]) if results[p]["available"]
                               else "n/a" for p in names])

    th = args.change_hour - 1
    for cx in COMPLEXITIES:
        row(f"Kendall tau-b {cx} (hour {th})", lambda m, cx=cx: f(m["tau"][cx]))
    row(f"regression: outcomes to rank last", lambda m: fmt_outcomes(
        m["regression_outcomes"], args.hours, m["regressed_already_last_before_change"]))
    row(f"recovery: outcomes to rank first", lambda m: fmt_outcomes(
        m["recovery_outcomes"], args.hours, m["recovered_already_first_before_change"]))
    row("false alarms / 100 cell-hours", lambda m: (
        f"{m['false_alarms_per_100_cell_hours']:.2f} ({m['false_alarm_rows']} rows)"
        if m["learning_changes_table"] else "0.00 (no learning_changes)"))
    def detected(m, role):
        rows = m["changes_detected"][role]
        hours = ",".join(f"{r['sim_hour']}" for r in rows[:3]) + (",..." if len(rows) > 3 else "")
        return f"{len(rows)}" + (f" (h {hours})" if rows else "")
    row("changes: regressed | recovered | sparse", lambda m: (
        " | ".join(detected(m, r) for r in ("regressed", "recovered", "sparse"))
        if m["learning_changes_table"] else "n/a (no learning_changes)"))
    row(f"mean |change| / cell-hour (h {args.converged_from}..{th})",
        lambda m: f(m["mean_abs_change"]))
    row("updates published (total)", lambda m: str(m["updates_total"]))
    row(f"updates, stationary, h {args.converged_from}..{th}",
        lambda m: str(m["updates_stationary_converged"]))
    row("slow twin < fast twin, last hour", lambda m: "{} ({} vs {})".format(
        yn(m["slow_twin_below_last"]), *(f"{s:.2f}" for s in m["slow_twin_scores_last"])))
    row(f"slow twin < fast twin, hour {th}", lambda m: yn(m["slow_twin_below_tau_hour"]))
    row("sparse cell: last score vs prior", lambda m: f"{m['sparse_score_last']:.2f} vs "
        f"{m['sparse_prior']:.2f} ({m['sparse_updates']} updates)")
    row("outlier: flagged after its outcomes", lambda m: (
        "n/a (no outlier)" if not m["outlier_run"] else "never" if m["flagged_outcomes"] is None
        else f"{m['flagged_outcomes']} (h {m['flagged_sim_hour']})"))
    row("outlier: advisories own queue | others", lambda m: f"{m['advisories_outlier']} | {m['advisories_others']}")
    row("false flags (other sources)", lambda m: str(m["false_flags"]))
    row(f"late joiner (h {args.hours // 2}): snapshot | in sync | updates", lambda m: "{} | {} | {}".format(
        yn(m["late_joiner"][0]), yn(m["late_joiner"][1]), m["late_joiner"][2]))
    target = OUTLIER_TARGET[0] + "/" + OUTLIER_TARGET[1]
    row(f"{target}: max |move| since h {args.outlier_hour - 1}", lambda m: f"{m['target_moved_since_onset']:.4f}")
    row(f"{target}: max |diff| vs clean twin: assessed | published", lambda m: (
        f"{m['target_assessed_vs_clean']:.4f} | {m['target_moved_vs_clean']:.4f}"
        if m.get("target_assessed_vs_clean") is not None else "n/a"))
    row("replay seconds", lambda m: f"{m['seconds']:.1f}")

    header = ["metric"] + names
    widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(len(header))]
    line = lambda r: "  ".join(str(v).ljust(w) for v, w in zip(r, widths)).rstrip()  # noqa: E731
    print(line(header))
    print("  ".join("-" * w for w in widths))
    for r in rows:
        print(line(r))
    for p in names:
        if not results[p]["available"]:
            print(f"policy {p} not available: {results[p]['error']}")
    ran = [p for p in names if results[p]["available"]]
    if ran:
        data_tau = results[ran[0]]["metrics"]["data_tau"]
        print(f"reference: observed success rates of hours 0..{th} rank the models with tau-b "
              + ", ".join(f"{cx} {f(data_tau[cx])}" for cx in COMPLEXITIES))


def scores_table(args, cells, results):
    """The learned scores at the hour before the change and at the last hour."""
    names = [p for p in results if results[p]["available"]]
    if not names:
        return
    th, last = args.change_hour - 1, args.hours - 1
    header = ["cell", "true rate", "prior"] + [f"{p} h{th}" for p in names] + [f"{p} h{last}" for p in names]
    rows = []
    for c in sorted(cells, key=lambda c: (COMPLEXITIES.index(c.complexity), -c.rate_before, c.model)):
        label = c.label() + ("" if c.role == "regular" else f" ({c.role})")
        rows.append([label, c.describe_rate(), f"{c.prior:.1f}"]
                    + [f"{results[p]['scores'][th].get(c.key, float('nan')):.2f}" for p in names]
                    + [f"{results[p]['scores'][last].get(c.key, float('nan')):.2f}" for p in names])
    widths = [max(len(r[i]) for r in rows + [header]) for i in range(len(header))]
    print()
    print("  ".join(h.ljust(w) for h, w in zip(header, widths)).rstrip())
    print("  ".join("-" * w for w in widths))
    for r in rows:
        print("  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip())


def plot(args, cells, results):
    names = [p for p in results if results[p]["available"]]
    if not names:
        print("plot: no policy ran, nothing to plot")
        return
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print(f"plot skipped: matplotlib is not installed for {sys.executable}; "
              f"pip install matplotlib into the venv: {os.path.dirname(sys.executable)}/pip install matplotlib")
        return
    fig, axes = plt.subplots(len(names), len(COMPLEXITIES), figsize=(6 * len(COMPLEXITIES), 4.2 * len(names)),
                             squeeze=False, sharey=True)
    # x = -1: the prior (the catalog before the first learn); x = h: after hour h's learn.
    xs = [-1] + list(range(args.hours))
    for i, p in enumerate(names):
        for j, cx in enumerate(COMPLEXITIES):
            ax = axes[i][j]
            for c in sorted((c for c in cells if c.complexity == cx), key=lambda c: -c.rate_before):
                style = {"slow_twin": "--", "sparse": ":"}.get(c.role, "-")
                width = 2.2 if c.role in ("regressed", "recovered") else 1.3
                ax.plot(xs, [c.prior] + [results[p]["scores"][h].get(c.key, float("nan")) for h in xs[1:]],
                        style, linewidth=width,
                        label=f"{c.model} {c.describe_rate()}" + ("" if c.role == "regular" else f" {c.role}"))
            ax.axvline(args.change_hour - 0.5, color="grey", linewidth=0.8, linestyle="-.")
            ax.set_title(f"{p}: {cx}")
            ax.set_xlabel("simulated hour (-1: prior)")
            ax.set_ylim(-0.1, 5.1)
            ax.grid(alpha=0.3)
            if j == 0:
                ax.set_ylabel("score")
            ax.legend(fontsize=7, loc="best")
    fig.suptitle(f"learned scores per cell, seed {args.seed}, {args.outcomes_per_hour} outcomes/cell-hour "
                 f"(change at hour {args.change_hour})")
    fig.tight_layout()
    fig.savefig(args.plot, dpi=110)
    print(f"plot: {args.plot}")


# ----------------------------------------------------------------------------------------------
def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dsn-host", default=os.environ.get("PGHOST", "/tmp/centralcloud-learn-eval"),
                    help="server host or unix socket directory (default: $PGHOST or /tmp/centralcloud-learn-eval)")
    ap.add_argument("--dsn-port", type=int, default=int(os.environ.get("PGPORT", "28880")),
                    help="server port (default: $PGPORT or 28880)")
    ap.add_argument("--user", default="postgres", help="superuser to connect as (default postgres)")
    ap.add_argument("--maintenance-db", default="postgres", help="database CREATE DATABASE runs from")
    ap.add_argument("--database", default="learn_eval",
                    help="with --reuse-database: the (fresh) database to use; otherwise each policy "
                         "gets a new database <DATABASE>_<policy> (default learn_eval)")
    ap.add_argument("--reuse-database", action="store_true",
                    help="replay in --database itself (one policy only; created extension, empty catalog)")
    ap.add_argument("--policies", "--runs", dest="policies", default="seed,seed+outlier,bayes,bayes+outlier,bayes+outlier+noconsensus",
                    help="runs, comma-separated: policy[+outlier][+noconsensus] (default "
                         "seed,seed+outlier,bayes,bayes+outlier,bayes+outlier+noconsensus): +outlier adds the broken "
                         "instance, +noconsensus turns consensus off")
    ap.add_argument("--instances", type=int, default=5, help=f"router instances, 3 to {len(INSTANCES)} (default 5)")
    ap.add_argument("--outlier-hour", type=int, default=12,
                    help="hour the last instance's path to provider-x breaks in +outlier runs (default 12)")
    ap.add_argument("--hours", type=int, default=40, help="simulated hours (default 40)")
    ap.add_argument("--seed", type=int, default=11, help="random seed of the ground truth (default 11)")
    ap.add_argument("--outcomes-per-hour", type=int, default=150,
                    help="outcome events per cell and hour (default 150; the sparse cell has 5)")
    ap.add_argument("--routed-per-hour", type=int, default=None,
                    help="routed events per cell and hour (default: --outcomes-per-hour; the sparse cell has 5)")
    ap.add_argument("--change-hour", type=int, default=21,
                    help="hour of the regression and the recovery (default 21; tau is taken the hour before)")
    ap.add_argument("--converged-from", type=int, default=10,
                    help="first hour of the converged window, which ends the hour before the change (default 10)")
    ap.add_argument("--chunk", type=int, default=2000, help="events per pgmq.send_batch (default 2000)")
    ap.add_argument("--json", metavar="PATH", help="write the metrics (and per-hour scores) as JSON")
    ap.add_argument("--plot", metavar="PATH.png", help="score trajectories, policies x complexities")
    ap.add_argument("--assert", dest="do_assert", action="store_true",
                    help="exit 1 unless --assert-policy meets every target")
    ap.add_argument("--assert-policy", default="bayes",
                    help="policy whose runs with consensus --assert checks (default bayes)")
    ap.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    args = ap.parse_args(argv)
    args.policies = [p.strip() for p in args.policies.split(",") if p.strip()]
    if args.routed_per_hour is None:
        args.routed_per_hour = args.outcomes_per_hour
    if not args.policies or any(not Run.SPEC.fullmatch(p) for p in args.policies):
        ap.error("--policies: comma-separated runs, policy[+outlier][+noconsensus], policy of [a-z0-9_]")
    if len(set(args.policies)) != len(args.policies):
        ap.error("--policies: a run is named twice")
    if args.reuse_database and len(args.policies) != 1:
        ap.error("--reuse-database replays one run; with several, each gets <DATABASE>_<run>")
    if not 3 <= args.instances <= len(INSTANCES):
        ap.error(f"--instances: 3 to {len(INSTANCES)}")
    if not 1 <= args.outlier_hour < args.hours:
        ap.error("--outlier-hour must be in [1, --hours)")
    if not args.change_hour >= 2 or args.hours <= args.change_hour:
        ap.error(f"--hours ({args.hours}) must be more than --change-hour ({args.change_hour}), which must be >= 2")
    if not 0 <= args.converged_from < args.change_hour - 1:
        ap.error("--converged-from must be >= 0 and before the hour before --change-hour")
    if args.outcomes_per_hour < 1 or args.routed_per_hour < 0 or args.chunk < 1:
        ap.error("--outcomes-per-hour >= 1, --routed-per-hour >= 0, --chunk >= 1")
    if args.do_assert and not any(Run(r).policy == args.assert_policy for r in args.policies):
        ap.error(f"--assert-policy {args.assert_policy} is not among --policies")
    return args


def main(argv):
    args = parse_args(argv)
    cells = scenario()
    # Every policy replays the same events: the same generator seed and the same "now".
    now = datetime.now(timezone.utc) - timedelta(seconds=1)
    twin = next(c for c in cells if c.role == "slow_twin")
    print(f"learn_eval: {args.hours} h, seed {args.seed}, {len(cells)} cells, "
          f"{args.outcomes_per_hour} outcomes + {args.routed_per_hour} routed per cell-hour "
          f"(sparse {SPARSE[4]} + {SPARSE[4]}), change at hour {args.change_hour}, {args.instances} instances; "
          f"runs {','.join(args.policies)}")
    print(f"outlier runs: {INSTANCES[args.instances - 1]} fails {OUTLIER_FAILURES:.0%} of its outcomes through "
          f"{OUTLIER_PROVIDER} ({OUTLIER_TARGET[0]}/{OUTLIER_TARGET[1]}, true rate {OUTLIER_TARGET[2]:.0%}) "
          f"from hour {args.outlier_hour}")
    print(f"latency: regular p95 {', '.join(f'{cx} {MEDIAN_MS[cx] * math.exp(1.6449 * SIGMA):.0f} ms' for cx in COMPLEXITIES)}; "
          f"slow twin {twin.model} mean {twin.mean_ms():.0f} ms, p95 {twin.p95_ms():.0f} ms (4x {twin.twin_of})")
    results = {}
    for name in args.policies:
        run = Run(name)
        started = time.monotonic()
        try:
            obs = replay(args, run, cells, now)
        except PolicyUnavailable as e:
            results[name] = {"available": False, "error": str(e)}
            continue
        m = metrics(args, cells, obs, run)
        m["seconds"] = time.monotonic() - started
        m["database"] = obs["database"]
        m["events_ingested"] = sum(obs["ingest"])
        results[name] = {"available": True, "metrics": m, "scores": obs["scores"],
                         "history_policies": obs["history_policies"]}
        if obs["history_policies"] and obs["history_policies"] != [run.policy]:
            print(f"warning: score_history of {name} names policies {obs['history_policies']}", file=sys.stderr)
    compare_with_clean_twins(args, results)
    print()
    table(args, cells, results)
    scores_table(args, cells, results)

    if args.json:
        doc = {
            "config": {k: getattr(args, k) for k in ("hours", "seed", "outcomes_per_hour", "routed_per_hour",
                                                     "change_hour", "converged_from", "policies",
                                                     "instances", "outlier_hour")},
            "cells": [{"model": c.model, "complexity": c.complexity, "role": c.role,
                       "rate_before": c.rate_before, "rate_after": c.rate_after, "prior": c.prior,
                       "latency_median_ms": c.median_ms, "latency_p95_ms": round(c.p95_ms()),
                       "outcomes_per_hour": c.outcomes or args.outcomes_per_hour} for c in cells],
            "policies": {},
        }
        for p, r in results.items():
            if not r["available"]:
                doc["policies"][p] = {"available": False, "error": r["error"]}
                continue
            doc["policies"][p] = {
                "available": True, "metrics": r["metrics"],
                "scores_by_hour": {c.label(): [s.get(c.key) for s in r["scores"]] for c in cells},
            }
        with open(args.json, "w") as fh:
            json.dump(doc, fh, indent=1)
        print(f"json: {args.json}")
    if args.plot:
        plot(args, cells, results)

    if args.do_assert:
        failed = total = 0
        for name in (n for n in args.policies if Run(n).policy == args.assert_policy and Run(n).consensus):
            r = results[name]
            print(f"\ntargets for {name}:")
            if not r["available"]:
                print(f"  NOT met  policy {args.assert_policy} not available: {r['error']}")
                return 1
            checks = assertions(args, r["metrics"])
            for label, met, number in checks:
                print(f"  {'met    ' if met else 'NOT met'}  {label}: {number}")
            failed += sum(1 for _, met, _ in checks if not met)
            total += len(checks)
        print(f"{total - failed}/{total} targets met")
        return 1 if failed else 0
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
