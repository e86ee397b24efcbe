use super::*;
use rand::{Rng, SeedableRng};

/// 2026-11-27T10:00:00Z.
const T0: i64 = 1_795_773_600;

fn counts(s: i64, f: i64) -> Counts {
    Counts { s, f }
}

/// A cell that has been healthy since long before T0, with a long-run of 95%.
fn cell() -> Cell {
    Cell {
        state: State::Healthy,
        since: T0 - 86_400,
        evidence_from: None,
        strikes: 0,
        last_recovered_at: None,
        long_run: counts(9_500, 500),
        seconds: Vec::new(),
    }
}

/// Seconds `from..to` with `s` successes and `f` failures each.
fn steady(from: i64, to: i64, s: i64, f: i64) -> Vec<Second> {
    (from..to)
        .map(|at| Second {
            at,
            counts: counts(s, f),
        })
        .collect()
}

/// What the SPI layer stores after a transition.
fn apply(cell: &mut Cell, v: &Verdict, now: i64) {
    if v.changed {
        cell.state = v.state;
        cell.since = now;
        cell.evidence_from = Some(evidence_from(now));
        cell.strikes = v.strikes;
        cell.last_recovered_at = v.last_recovered_at;
    }
}

/// Evaluates every second from `from` to `to` (a second's outcomes arrive before it is
/// evaluated), keeping the window's seconds; returns the transitions (second, state).
fn run(
    p: &HealthPolicy,
    cell: &mut Cell,
    traffic: impl Fn(i64) -> Counts,
    from: i64,
    to: i64,
) -> Vec<(i64, State)> {
    let mut transitions = Vec::new();
    for now in from..to {
        cell.seconds.push(Second {
            at: now,
            counts: traffic(now),
        });
        cell.seconds.retain(|s| s.at > now - p.window_s);
        let v = p.assess(cell, now);
        if v.changed {
            transitions.push((now, v.state));
        }
        apply(cell, &v, now);
    }
    transitions
}

#[test]
fn good_outcomes_keep_a_cell_healthy() {
    let mut c = cell();
    c.seconds = steady(T0 - 299, T0 + 1, 48, 2);
    let v = HealthPolicy::default().assess(&c, T0);
    assert_eq!(
        (v.state, v.changed, v.judged),
        (State::Healthy, false, true)
    );
    assert_eq!(v.outcomes, 15_000);
}

#[test]
fn a_full_outage_is_down_within_a_second_despite_a_window_of_successes() {
    let mut c = cell();
    c.seconds = steady(T0 - 299, T0, 48, 2);
    c.seconds.push(Second {
        at: T0,
        counts: counts(0, 50),
    });
    let v = HealthPolicy::default().assess(&c, T0);
    assert_eq!((v.state, v.changed), (State::Down, true), "{}", v.reason);
    assert_eq!(v.failure_rate, Some(1.0));
    assert!(v.reason.starts_with("down: 0.0% success in the last 1 s (0 of 50 outcomes, after a change at 10:00:00Z (LLR"), "{}", v.reason);
    assert!(
        v.reason
            .ends_with("<= 20% of its long-run 95.0% (10000 outcomes)"),
        "{}",
        v.reason
    );
    assert_eq!(v.strikes, 1);
}

#[test]
fn fewer_failures_than_min_samples_are_not_an_outage() {
    let mut c = cell();
    c.seconds = steady(T0 - 299, T0, 48, 2);
    c.seconds.push(Second {
        at: T0,
        counts: counts(0, 19),
    });
    let v = HealthPolicy::default().assess(&c, T0);
    assert_ne!(v.state, State::Down, "{}", v.reason);
    // 19 failures in a row where 4% is normal are a significant change, though: with the
    // second before them (69 outcomes, 30% failures) they make the cell degraded.
    assert_eq!(v.state, State::Degraded, "{}", v.reason);
    c.seconds.pop();
    c.seconds.push(Second {
        at: T0,
        counts: counts(0, 5),
    });
    assert_eq!(HealthPolicy::default().assess(&c, T0).state, State::Healthy);
}

#[test]
fn thresholds_are_relative_to_the_cells_own_long_run_rate() {
    let p = HealthPolicy::default();
    // Usually 60%: 55% now is its normal.
    let mut flaky = cell();
    flaky.long_run = counts(6_000, 4_000);
    flaky.seconds = steady(T0 - 59, T0 + 1, 11, 9);
    assert_eq!(p.assess(&flaky, T0).state, State::Healthy);
    // Usually 99%: 70% now is degraded.
    let mut solid = cell();
    solid.long_run = counts(9_900, 100);
    solid.seconds = steady(T0 - 59, T0 + 1, 14, 6);
    let v = p.assess(&solid, T0);
    assert_eq!(
        (v.state, v.changed),
        (State::Degraded, true),
        "{}",
        v.reason
    );
    assert!(
        v.reason
            .contains("<= 80% of its long-run 99.0% (10000 outcomes)"),
        "{}",
        v.reason
    );
    // No long run at all: the prior (95%).
    let mut new = cell();
    new.long_run = Counts::default();
    new.seconds = steady(T0 - 9, T0 + 1, 0, 5);
    let v = p.assess(&new, T0);
    assert_eq!(v.state, State::Down);
    assert!(
        v.reason
            .contains("95.0% (no long-run outcomes yet: the prior)"),
        "{}",
        v.reason
    );
}

#[test]
fn noise_around_a_steady_rate_never_changes_the_state() {
    let p = HealthPolicy::default();
    let mut rng = rand::rngs::StdRng::seed_from_u64(13);
    let draws: Vec<Counts> = (0..3_600)
        .map(|_| {
            let failures = (0..50).filter(|_| rng.gen_bool(0.05)).count() as i64;
            counts(50 - failures, failures)
        })
        .collect();
    let mut c = cell();
    let transitions = run(&p, &mut c, |at| draws[(at - T0) as usize], T0, T0 + 3_600);
    assert_eq!(
        transitions,
        vec![],
        "an hour of 95% +- noise at 50 outcomes a second"
    );
}

#[test]
fn a_down_cell_recovers_after_min_recovery_of_good_outcomes_and_says_so() {
    let p = HealthPolicy::default();
    let mut c = cell();
    let outage = |at: i64| {
        if at < T0 + 60 {
            counts(0, 50)
        } else {
            counts(48, 2)
        }
    };
    let transitions = run(&p, &mut c, outage, T0, T0 + 200);
    assert_eq!(transitions.len(), 2, "{transitions:?}");
    assert_eq!(transitions[0], (T0, State::Down));
    let (recovered_at, state) = transitions[1];
    assert_eq!(state, State::Healthy);
    assert!(
        (T0 + 60 + 29..=T0 + 60 + 30).contains(&recovered_at),
        "{recovered_at}"
    );
    assert_eq!(c.last_recovered_at, Some(recovered_at));
}

#[test]
fn recovery_needs_its_duration_in_good_outcomes() {
    let p = HealthPolicy::default();
    let mut c = cell();
    c.state = State::Down;
    c.since = T0 - 100;
    c.evidence_from = Some(T0 - 99);
    c.strikes = 1;
    c.seconds = steady(T0 - 28, T0 + 1, 50, 0);
    assert_eq!(p.assess(&c, T0).state, State::Down, "29 s of good outcomes");
    c.seconds = steady(T0 - 29, T0 + 1, 50, 0);
    let v = p.assess(&c, T0);
    assert_eq!((v.state, v.changed), (State::Healthy, true));
    assert!(v.reason.starts_with("healthy: 100.0% success over the last 30 s (1500 of 1500 outcomes) >= 90% of its long-run"), "{}", v.reason);
    assert_eq!(v.last_recovered_at, Some(T0));
}

#[test]
fn a_flapping_model_stays_down_instead_of_flapping() {
    let p = HealthPolicy::default();
    // Ten seconds of failures, ten of successes, for ten minutes.
    let flapping = |at: i64| {
        if (at - T0) / 10 % 2 == 0 {
            counts(0, 50)
        } else {
            counts(50, 0)
        }
    };
    let mut c = cell();
    let transitions = run(&p, &mut c, flapping, T0, T0 + 600);
    assert_eq!(transitions, vec![(T0, State::Down)]);
}

#[test]
fn slower_flapping_doubles_the_recovery_time_until_it_holds() {
    let p = HealthPolicy::default();
    // A minute of failures, a minute of successes, for an hour.
    let flapping = |at: i64| {
        if (at - T0) / 60 % 2 == 0 {
            counts(0, 50)
        } else {
            counts(50, 0)
        }
    };
    let mut c = cell();
    let transitions = run(&p, &mut c, flapping, T0, T0 + 3_600);
    assert!(transitions.len() <= 6, "{transitions:?}");
    assert!(
        transitions.iter().all(|&(at, _)| at < T0 + 600),
        "settles: {transitions:?}"
    );
    assert_eq!(c.state, State::Down);
    assert!(c.strikes >= 2, "{}", c.strikes);
}

#[test]
fn a_partial_outage_that_becomes_total_goes_degraded_then_down() {
    let p = HealthPolicy::default();
    let traffic = |at: i64| match at - T0 {
        t if t < 100 => counts(48, 2),
        t if t < 200 => counts(25, 25),
        _ => counts(0, 50),
    };
    let mut c = cell();
    let transitions = run(&p, &mut c, traffic, T0, T0 + 210);
    assert_eq!(
        transitions,
        vec![(T0 + 100, State::Degraded), (T0 + 200, State::Down)]
    );
    assert_eq!(
        c.strikes, 1,
        "getting worse from degraded is the same strike"
    );
}

#[test]
fn a_partial_recovery_stays_down_until_it_expires_without_traffic() {
    let p = HealthPolicy::default();
    // Back to 60% after 30 s: still down (it is not healthy), and no flapping.
    let traffic = |at: i64| {
        if at - T0 < 30 {
            counts(0, 50)
        } else {
            counts(30, 20)
        }
    };
    let mut c = cell();
    let transitions = run(&p, &mut c, traffic, T0, T0 + 600);
    assert_eq!(transitions, vec![(T0, State::Down)]);
    // Routers skip it; with no traffic for a window it expires to degraded; probed at 60%, it
    // stays degraded.
    let probed = |at: i64| {
        if at - T0 < 900 {
            Counts::default()
        } else {
            counts(3, 2)
        }
    };
    let transitions = run(&p, &mut c, probed, T0 + 600, T0 + 1_200);
    assert_eq!(transitions, vec![(T0 + 899, State::Degraded)]);
    assert_eq!(c.state, State::Degraded);
}

#[test]
fn without_evidence_down_expires_to_degraded_then_healthy() {
    let p = HealthPolicy::default();
    let mut c = cell();
    let traffic = |at: i64| {
        if at - T0 < 5 {
            counts(0, 50)
        } else {
            Counts::default()
        }
    };
    let transitions = run(&p, &mut c, traffic, T0, T0 + 700);
    // The failures of T0+1..T0+4 count for the down state until they leave the window.
    assert_eq!(
        transitions,
        vec![
            (T0, State::Down),
            (T0 + 304, State::Degraded),
            (T0 + 604, State::Healthy)
        ]
    );
    let mut c = cell();
    c.state = State::Down;
    c.since = T0 - 300;
    let v = p.assess(&c, T0);
    assert_eq!(
        v.reason,
        "degraded: down expired: 0 outcomes (< 20) since it began 300 s ago"
    );
}

#[test]
fn strikes_double_the_recovery_time_up_to_half_the_window() {
    let p = HealthPolicy::default();
    assert_eq!(
        [0, 1, 2, 3, 4, 60].map(|s| p.recovery_s(s)),
        [30, 30, 60, 120, 150, 150]
    );
    // Worse again within a window of the last recovery: one more strike; later: strike 1.
    let mut c = cell();
    c.strikes = 2;
    c.last_recovered_at = Some(T0 - 100);
    c.seconds = steady(T0, T0 + 1, 0, 50);
    assert_eq!(p.assess(&c, T0).strikes, 3);
    c.last_recovered_at = Some(T0 - 400);
    assert_eq!(p.assess(&c, T0).strikes, 1);
}

#[test]
fn outcomes_before_the_last_transition_do_not_count() {
    let p = HealthPolicy::default();
    let mut c = cell();
    c.state = State::Healthy;
    c.since = T0 - 10;
    c.evidence_from = Some(T0 - 9);
    c.last_recovered_at = Some(T0 - 10);
    c.strikes = 1;
    c.seconds = steady(T0 - 60, T0 - 9, 0, 50);
    c.seconds.extend(steady(T0 - 9, T0 + 1, 50, 0));
    let v = p.assess(&c, T0);
    assert_eq!((v.state, v.changed), (State::Healthy, false));
}

fn verdict(state: State, judged: bool) -> Verdict {
    Verdict {
        state,
        changed: false,
        failure_rate: None,
        outcomes: 0,
        judged,
        strikes: 0,
        last_recovered_at: None,
        reason: String::new(),
    }
}

#[test]
fn a_provider_is_down_when_its_models_fail_together() {
    let p = HealthPolicy::default();
    let (down, healthy, degraded) = (
        verdict(State::Down, true),
        verdict(State::Healthy, true),
        verdict(State::Degraded, true),
    );
    let idle = verdict(State::Healthy, false);
    let assess = |models: &[(&str, &Verdict)], state| {
        p.assess_provider(&ProviderCells {
            state,
            models,
            window: counts(10, 90),
        })
    };
    let v = assess(
        &[("a", &down), ("b", &down), ("c", &healthy), ("d", &idle)],
        State::Healthy,
    );
    assert_eq!((v.state, v.changed), (State::Down, true));
    assert_eq!(
        v.reason,
        "down: 2 of its 3 models with recent outcomes are down (a, b)"
    );
    assert_eq!(v.failure_rate, Some(0.9));
    // One broken model is that model's problem.
    let v = assess(&[("a", &down), ("c", &healthy)], State::Healthy);
    assert_eq!((v.state, v.changed), (State::Healthy, false));
    // Two of five, or of four, is not together: the others serve.
    let v = assess(
        &[
            ("a", &down),
            ("b", &down),
            ("c", &healthy),
            ("e", &healthy),
            ("f", &healthy),
        ],
        State::Down,
    );
    assert_eq!((v.state, v.changed), (State::Healthy, true));
    let four = [("a", &down), ("b", &down), ("c", &healthy), ("e", &healthy)];
    let v = assess(&four, State::Healthy);
    assert_eq!((v.state, v.changed), (State::Healthy, false));
    assert_eq!(
        v.reason,
        "healthy: fewer than 2 of its models, or at most half of the 4 with recent outcomes, are degraded or down"
    );
    // Degraded or worse, together.
    let v = assess(
        &[("a", &down), ("b", &degraded), ("c", &healthy)],
        State::Healthy,
    );
    assert_eq!(v.state, State::Degraded);
    assert_eq!(
        v.reason,
        "degraded: 2 of its 3 models with recent outcomes are degraded or down (a, b)"
    );
}

#[test]
fn out_of_range_parameters_never_panic_or_yield_nan() {
    let wild = HealthPolicy {
        window_s: -5,
        min_samples: 0,
        degraded_below: f64::NAN,
        down_below: 7.0,
        recovered_above: -1.0,
        min_recovery_s: -3,
        provider_min_models: 0,
        change_threshold: f64::NAN,
    };
    let mut c = cell();
    c.long_run = counts(-5, i64::MAX);
    c.seconds = vec![Second {
        at: T0,
        counts: counts(i64::MAX, i64::MAX),
    }];
    let v = wild.assess(&c, T0);
    assert!(v.failure_rate.is_none_or(|r| !r.is_nan()));
    let s = wild.sane();
    assert!(s.recovered_above >= s.degraded_below && s.degraded_below >= s.down_below);
    assert!(s.window_s >= 1 && s.min_samples >= 1);
}

#[test]
fn states_parse_back() {
    for s in [State::Healthy, State::Degraded, State::Down] {
        assert_eq!(State::parse(s.as_str()), Some(s));
    }
    assert_eq!(State::parse("up"), None);
}
