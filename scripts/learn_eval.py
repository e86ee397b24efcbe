#!/usr/bin/env python3
"""Learning evaluation: replays simulated hours of known ground truth through the real path
(pgmq.send_batch -> ingest_routing_events() -> learn_complexity_scores()) once per learning
policy, each in a fresh database, and measures how well the learned scores track the truth.

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
  complexity_score of its first event.
Each hour: --outcomes-per-hour outcome events (success/failure, response_time_ms) and
--routed-per-hour routed events per cell, timestamps inside that simulated hour. Simulated
hours are UTC clock hours (event-hour rollups and change points line up with them); the last is
the current one, its events between its start and now. Then ingest, SET
centralcloud.learning_policy, learn, read the scores.

Metrics per policy: Kendall tau-b per complexity at the hour before the change, outcomes until
the regression and the recovery show in the ranking, false alarms (rows of
centralcloud.learning_changes, if the policy keeps one) on stationary cells, score jitter once
converged, updates published, slow twin below its twin, the sparse cell against its prior.
--assert checks the targets for --assert-policy and exits 1 when one is not met.

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


# ----------------------------------------------------------------------------------------------
# Ground truth
# ----------------------------------------------------------------------------------------------
class Cell:
    """One (model, complexity) with its true behaviour."""

    def __init__(self, model, complexity, rate, prior, median_ms, sigma, role="regular",
                 rate_after=None, outcomes=None, routed=None, twin_of=None, latency_factor=1.0):
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
    return cells


def iso(ts):
    return ts.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def first_hour_start(args, now):
    """Start of simulated hour 0: the UTC clock hour H - 1 hours before the current one."""
    return now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=args.hours - 1)


def hourly_events(cells, args, now, tally=None):
    """Yields (hour, [event JSON text, ...]) for every simulated hour, deterministically from
    --seed and `now` (a fresh generator per call: the same events for every policy). Hour h is
    the UTC clock hour starting at first_hour_start + h hours; the last one, the current hour,
    only up to `now` (later timestamps would be in the future). `tally`, if given, gets each
    cell's [successes, outcomes] per hour."""
    rng = random.Random(args.seed)
    instances = ("router-us-1", "router-eu-1", "router-ap-1")
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
                if routed:
                    outcome, latency = "routed", None
                else:
                    outcome = "success" if rng.random() < rate else "failure"
                    counts[0] += outcome == "success"
                    counts[1] += 1
                    latency = max(1, int(round(rng.lognormvariate(mu, cell.sigma))))
                events.append((ts, json.dumps({
                    "timestamp": iso(ts),
                    "instance_id": instances[rng.randrange(len(instances))],
                    "routing_decision": {
                        "complexity": cell.complexity,
                        "selected_model": cell.model,
                        "selected_provider": "github_models",
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


def connect(args, dbname):
    return psycopg.connect(host=args.dsn_host, port=args.dsn_port, user=args.user,
                           dbname=dbname, autocommit=True)


def prepare_database(args, policy):
    """The database a policy's replay runs in: the given one (--reuse-database, checked to be
    fresh) or <--database>_<policy>, dropped and created with the extension."""
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
    db = f"{args.database}_{policy}"
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


def replay(args, policy, cells, now):
    """Replays every hour for one policy. Returns the raw observations."""
    db = prepare_database(args, policy)
    obs = {"database": db, "now": now, "scores": [], "updates": [], "ingest": [], "learn_rows": 0, "tally": {}}
    with connect(args, db) as conn:
        # Loaded before SET: a custom setting set before its library loads is a placeholder
        # that the library might reject (with only a WARNING) when it defines the variable.
        conn.execute("LOAD 'centralcloud'")
        if args.hours > 6 * 24:
            conn.execute("SET centralcloud.max_event_age = 0")
        try:
            set_policy(conn, policy)
            # Raises for an unknown policy, with nothing to learn yet.
            conn.execute("SELECT count(*) FROM centralcloud.learn_complexity_scores(dry_run => true)")
        except psycopg.Error as e:
            raise PolicyUnavailable(e.diag.message_primary or str(e)) from None
        last_history_id = 0
        for hour, events in hourly_events(cells, args, now, obs["tally"]):
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
                obs["learn_rows"] += len(conn.execute(
                    "SELECT * FROM centralcloud.learn_complexity_scores()").fetchall())
            except psycopg.Error as e:
                raise PolicyUnavailable(f"hour {hour}: {e.diag.message_primary or e}") from None
            scores = {(m, c): s for m, c, s in conn.execute(
                "SELECT model_name, complexity_level, score FROM centralcloud.model_complexity_scores")}
            obs["scores"].append(scores)
            for hid, m, c in conn.execute(
                    "SELECT id, model_name, complexity_level FROM centralcloud.score_history"
                    " WHERE policy <> 'operator' AND id > %s ORDER BY id", (last_history_id,)):
                obs["updates"].append((hour, m, c))
                last_history_id = hid
            if not args.quiet and (hour + 1) % 10 == 0:
                print(f"  {policy}: hour {hour + 1}/{args.hours}", file=sys.stderr, flush=True)
        obs["published_total"] = conn.execute(
            "SELECT count(*) FROM centralcloud.score_history WHERE policy <> 'operator'").fetchone()[0]
        obs["history_policies"] = [r[0] for r in conn.execute(
            "SELECT DISTINCT policy FROM centralcloud.score_history WHERE policy <> 'operator'")]
        has_changes = conn.execute(
            "SELECT to_regclass('centralcloud.learning_changes') IS NOT NULL").fetchone()[0]
        obs["has_learning_changes"] = has_changes
        obs["changes"] = []
        if has_changes:
            obs["changes"] = [(m, c, h, k) for m, c, h, k in conn.execute(
                "SELECT model_name::text, complexity_level::text, change_hour, kind::text"
                "  FROM centralcloud.learning_changes ORDER BY change_hour, model_name, complexity_level")]
    return obs


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


def metrics(args, cells, obs):
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

    # 4. False alarms on stationary cells.
    stationary = [c for c in cells if c.role in ("regular", "slow_twin")]
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
    return m


def assertions(args, m):
    """(label, met, number) for every --assert target."""
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
    ap.add_argument("--policies", default="seed,bayes", help="comma-separated (default seed,bayes)")
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
    ap.add_argument("--assert-policy", default="bayes", help="policy --assert checks (default bayes)")
    ap.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    args = ap.parse_args(argv)
    args.policies = [p.strip() for p in args.policies.split(",") if p.strip()]
    if args.routed_per_hour is None:
        args.routed_per_hour = args.outcomes_per_hour
    if not args.policies or any(not re.fullmatch(r"[a-z0-9_]{1,40}", p) for p in args.policies):
        ap.error("--policies: comma-separated names of [a-z0-9_]")
    if len(set(args.policies)) != len(args.policies):
        ap.error("--policies: a policy is named twice")
    if args.reuse_database and len(args.policies) != 1:
        ap.error("--reuse-database replays one policy; with several, each gets <DATABASE>_<policy>")
    if not args.change_hour >= 2 or args.hours <= args.change_hour:
        ap.error(f"--hours ({args.hours}) must be more than --change-hour ({args.change_hour}), which must be >= 2")
    if not 0 <= args.converged_from < args.change_hour - 1:
        ap.error("--converged-from must be >= 0 and before the hour before --change-hour")
    if args.outcomes_per_hour < 1 or args.routed_per_hour < 0 or args.chunk < 1:
        ap.error("--outcomes-per-hour >= 1, --routed-per-hour >= 0, --chunk >= 1")
    if args.do_assert and args.assert_policy not in args.policies:
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
          f"(sparse {SPARSE[4]} + {SPARSE[4]}), change at hour {args.change_hour}; policies {','.join(args.policies)}")
    print(f"latency: regular p95 {', '.join(f'{cx} {MEDIAN_MS[cx] * math.exp(1.6449 * SIGMA):.0f} ms' for cx in COMPLEXITIES)}; "
          f"slow twin {twin.model} mean {twin.mean_ms():.0f} ms, p95 {twin.p95_ms():.0f} ms (4x {twin.twin_of})")
    results = {}
    for policy in args.policies:
        started = time.monotonic()
        try:
            obs = replay(args, policy, cells, now)
        except PolicyUnavailable as e:
            results[policy] = {"available": False, "error": str(e)}
            continue
        m = metrics(args, cells, obs)
        m["seconds"] = time.monotonic() - started
        m["database"] = obs["database"]
        m["events_ingested"] = sum(obs["ingest"])
        results[policy] = {"available": True, "metrics": m, "scores": obs["scores"],
                           "history_policies": obs["history_policies"]}
        if obs["history_policies"] and obs["history_policies"] != [policy]:
            print(f"warning: score_history of {policy} names policies {obs['history_policies']}", file=sys.stderr)
    print()
    table(args, cells, results)
    scores_table(args, cells, results)

    if args.json:
        doc = {
            "config": {k: getattr(args, k) for k in ("hours", "seed", "outcomes_per_hour", "routed_per_hour",
                                                     "change_hour", "converged_from", "policies")},
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
        r = results[args.assert_policy]
        print(f"\ntargets for policy {args.assert_policy}:")
        if not r["available"]:
            print(f"  NOT met  policy {args.assert_policy} not available: {r['error']}")
            return 1
        checks = assertions(args, r["metrics"])
        for label, met, number in checks:
            print(f"  {'met    ' if met else 'NOT met'}  {label}: {number}")
        failed = sum(1 for _, met, _ in checks if not met)
        print(f"{len(checks) - failed}/{len(checks)} targets met")
        return 1 if failed else 0
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
