use super::*;
use crate::stats::wilson_lower;

/// What SQL's success_lower_bound stores (z = 1.645).
fn with_outcomes(c: Candidate, outcomes: Counts) -> Candidate {
    Candidate {
        outcomes,
        success_lower: wilson_lower(outcomes, 1.645),
        ..c
    }
}

fn candidate(model: &str, score: f64, p95: Option<f64>, cost: Option<f64>) -> Candidate {
    Candidate {
        model: model.into(),
        provider: "p".into(),
        score,
        outcomes: Counts { s: 95, f: 5 },
        success_lower: wilson_lower(Counts { s: 95, f: 5 }, 1.645),
        p50_ms: p95.map(|ms| ms / 2.0),
        p95_ms: p95,
        cost_usd: cost,
        health: State::Healthy,
    }
}

fn ranking(prefer: Option<Prefer>) -> Ranking {
    Ranking {
        prefer,
        tolerance: 0.25,
        limit: 10,
    }
}

fn models(ranked: &[Ranked]) -> Vec<&str> {
    ranked.iter().map(|r| r.candidate.model.as_str()).collect()
}

fn fleet() -> Vec<Candidate> {
    vec![
        candidate("best-slow", 4.2, Some(3000.0), Some(0.02)),
        candidate("close-fast", 4.0, Some(400.0), Some(0.01)),
        candidate("close-cheap", 3.96, Some(900.0), Some(0.001)),
        candidate("far-fastest", 3.0, Some(100.0), Some(0.0001)),
    ]
}

#[test]
fn without_a_preference_the_best_score_first() {
    let ranked = ranking(None).rank(fleet());
    assert_eq!(
        models(&ranked),
        ["best-slow", "close-fast", "close-cheap", "far-fastest"]
    );
    assert_eq!(
        ranked.iter().map(|r| r.rank).collect::<Vec<_>>(),
        [1, 2, 3, 4]
    );
    assert_eq!(
        ranked[0].reason,
        "best score 4.20, 95.0% success over 100 outcomes"
    );
    assert_eq!(
        ranked[1].reason,
        "score 4.00, 0.20 below the best, 95.0% success over 100 outcomes"
    );
    assert_eq!(ranked[0].success_rate, Some(0.95));
    assert!(ranked[0].success_rate_lower.unwrap() < 0.95);
}

#[test]
fn speed_picks_the_fastest_within_the_tolerance_never_a_much_worse_model() {
    let ranked = ranking(Some(Prefer::Speed)).rank(fleet());
    assert_eq!(
        models(&ranked),
        ["close-fast", "close-cheap", "best-slow", "far-fastest"]
    );
    assert_eq!(
        ranked[0].reason,
        "p95 400 ms, the fastest within 0.25 of the best score 4.20"
    );
    assert_eq!(
        ranked[2].reason,
        "p95 3000 ms, 3rd fastest within 0.25 of the best score 4.20"
    );
    assert_eq!(
        ranked[3].reason,
        "score 3.00, more than 0.25 below the best (4.20): after those within it"
    );
}

#[test]
fn cost_picks_the_cheapest_within_the_tolerance() {
    let ranked = ranking(Some(Prefer::Cost)).rank(fleet());
    assert_eq!(
        models(&ranked),
        ["close-cheap", "close-fast", "best-slow", "far-fastest"]
    );
    assert_eq!(
        ranked[0].reason,
        "$0.001000 per request, the cheapest within 0.25 of the best score 4.20"
    );
}

#[test]
fn cost_without_prices_says_so_and_ranks_by_score() {
    let unpriced: Vec<Candidate> = fleet()
        .into_iter()
        .map(|c| Candidate {
            cost_usd: None,
            ..c
        })
        .collect();
    let ranked = ranking(Some(Prefer::Cost)).rank(unpriced);
    assert_eq!(
        models(&ranked),
        ["best-slow", "close-fast", "close-cheap", "far-fastest"]
    );
    assert!(
        ranked[0]
            .reason
            .starts_with("no price known for any candidate (centralcloud.model_prices): by score"),
        "{}",
        ranked[0].reason
    );
    // Some priced: those first, the rest after them by score.
    let mut some = fleet();
    some[1].cost_usd = None;
    let ranked = ranking(Some(Prefer::Cost)).rank(some);
    assert_eq!(
        models(&ranked),
        ["close-cheap", "best-slow", "close-fast", "far-fastest"]
    );
    assert_eq!(ranked[2].reason, "no price known (centralcloud.model_prices): after the priced ones within 0.25 of the best score 4.20, by score");
}

#[test]
fn speed_without_latency_ranks_after_the_known_ones() {
    let mut f = fleet();
    f[1].p95_ms = None;
    let ranked = ranking(Some(Prefer::Speed)).rank(f);
    assert_eq!(
        models(&ranked),
        ["close-cheap", "best-slow", "close-fast", "far-fastest"]
    );
}

#[test]
fn degraded_candidates_rank_after_every_healthy_one() {
    let mut f = fleet();
    f[0].health = State::Degraded;
    let ranked = ranking(None).rank(f);
    assert_eq!(
        models(&ranked),
        ["close-fast", "close-cheap", "far-fastest", "best-slow"]
    );
    assert!(ranked[3]
        .reason
        .ends_with("; degraded: ranked after every healthy candidate"));
    assert_eq!(
        ranked[0].reason,
        "best score 4.00, 95.0% success over 100 outcomes"
    );
}

#[test]
fn equal_scores_order_by_the_success_bound_then_name() {
    let mut a = candidate("a", 3.0, None, None);
    let mut b = candidate("b", 3.0, None, None);
    let mut c = candidate("c", 3.0, None, None);
    a = with_outcomes(a, Counts { s: 9, f: 1 });
    c = with_outcomes(c, Counts { s: 85, f: 15 });
    b = with_outcomes(b, Counts { s: 900, f: 100 });
    let ranked = ranking(None).rank(vec![a, c, b]);
    assert_eq!(models(&ranked), ["b", "c", "a"]);
}

#[test]
fn the_limit_cuts_the_list() {
    let r = Ranking {
        limit: 2,
        ..ranking(Some(Prefer::Speed))
    };
    assert_eq!(models(&r.rank(fleet())), ["close-fast", "close-cheap"]);
    assert_eq!(r.rank(Vec::new()), Vec::new());
}

#[test]
fn ordinals() {
    let got: Vec<String> = [1, 2, 3, 4, 11, 12, 13, 21, 22, 101]
        .iter()
        .map(|&n| ordinal(n))
        .collect();
    assert_eq!(
        got,
        ["the", "2nd", "3rd", "4th", "11th", "12th", "13th", "21st", "22nd", "101st"]
    );
}

/// What the SQL of `recommend` returns for a segment: the group's candidates that match, in the
/// segment's order, at most `k`.
fn segment_of(
    r: &Ranking,
    all: &[Candidate],
    health: State,
    segment: Segment,
    k: usize,
) -> Vec<Candidate> {
    let prefer = r.prefer.unwrap_or(Prefer::Speed);
    let mut rows: Vec<Candidate> = all
        .iter()
        .filter(|c| c.health == health)
        .filter(|c| match segment {
            Segment::ByScore => true,
            Segment::Preferred { floor } => c.score >= floor && preferred(prefer, c).is_some(),
            Segment::Unpreferred { floor } => c.score >= floor && preferred(prefer, c).is_none(),
            Segment::Below { floor } => c.score < floor,
        })
        .cloned()
        .collect();
    rows.sort_by(|a, b| match segment {
        Segment::Preferred { .. } => compare_known(preferred(prefer, a), preferred(prefer, b))
            .then_with(|| r.by_quality(a, b)),
        _ => r.by_quality(a, b),
    });
    rows.truncate(k);
    rows
}

proptest::proptest! {
    /// Reading only the segments `read` asks for ranks exactly as ranking every candidate,
    /// however many tie on score, latency or price.
    #[test]
    fn reading_segments_ranks_as_reading_everything(
        cells in proptest::collection::vec((0u8..4, proptest::option::of(0u8..4), proptest::option::of(0u8..3), 0u8..3, 0i64..20), 0..30),
        prefer in 0u8..3,
        limit in 1usize..6,
    ) {
        let all: Vec<Candidate> = cells
            .iter()
            .enumerate()
            .map(|(i, &(score, p95, cost, health, s))| Candidate {
                health: if health == 0 { State::Degraded } else { State::Healthy },
                ..with_outcomes(
                    candidate(&format!("m{i:02}"), 3.0 + f64::from(score) * 0.1, p95.map(|v| f64::from(v) * 100.0), cost.map(f64::from)),
                    Counts { s: s % 4 * 5, f: s % 3 },
                )
            })
            .collect();
        let r = Ranking {
            limit,
            ..ranking([None, Some(Prefer::Speed), Some(Prefer::Cost)][prefer as usize])
        };
        let read = r
            .read(|health, segment, k| Ok::<_, ()>(segment_of(&r, &all, health, segment, k)))
            .unwrap();
        proptest::prop_assert!(read.len() <= 2 * limit + 2, "read {} for a limit of {limit}", read.len());
        proptest::prop_assert_eq!(r.rank(read), r.rank(all));
    }
}
