//! Learning policies: from a cell's current score and the evidence that arrived since its last
//! learning step, the new score and a human-readable reason. Pure: no SPI.
//!
//! Policy `seed` is the seed's rule with every constant configurable:
//! - only cells with at least `min_samples` outcome samples (success + failure) learn;
//! - `+success_step` if the success rate is above `success_threshold`, else `-success_step`;
//! - `-speed_step` if the average response time is above `slowness_threshold_ms`, else
//!   `+speed_step` (no speed term when the evidence has no response time at all);
//! - clamp to [0, 5].
//!
//! Two defects of the seed are fixed by what the caller passes in: the evidence is the counters'
//! growth since the cell's last learning step (not lifetime totals, which the seed re-applies
//! on every run until every score sits at 0 or 5), and the success rate is over outcomes,
//! success / (success + failure).

/// The highest and lowest score a cell can have.
pub const MIN_SCORE: f64 = 0.0;
pub const MAX_SCORE: f64 = 5.0;

/// The seed policy's constants (each a GUC).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SeedPolicy {
    pub min_samples: i64,
    pub success_threshold: f64,
    pub success_step: f64,
    pub slowness_threshold_ms: f64,
    pub speed_step: f64,
}

impl Default for SeedPolicy {
    fn default() -> Self {
        SeedPolicy {
            min_samples: 100,
            success_threshold: 0.95,
            success_step: 0.2,
            slowness_threshold_ms: 2000.0,
            speed_step: 0.1,
        }
    }
}

/// What arrived for a cell since its last learning step.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Evidence {
    pub successes: i64,
    pub failures: i64,
    pub latency_count: i64,
    pub latency_sum_ms: i64,
}

impl Evidence {
    pub fn samples(&self) -> i64 {
        self.successes + self.failures
    }

    pub fn success_rate(&self) -> Option<f64> {
        (self.samples() > 0).then(|| self.successes as f64 / self.samples() as f64)
    }

    pub fn avg_response_time_ms(&self) -> Option<f64> {
        (self.latency_count > 0).then(|| self.latency_sum_ms as f64 / self.latency_count as f64)
    }
}

/// The outcome of applying a policy to one cell.
#[derive(Clone, Debug, PartialEq)]
pub enum Step {
    /// Too little evidence: nothing is consumed, the evidence keeps accumulating.
    Insufficient { reason: String },
    /// The rule ran and consumed the evidence; `new_score` may equal the old one.
    Learned { new_score: f64, reason: String },
}

impl SeedPolicy {
    pub fn step(&self, current: f64, evidence: &Evidence) -> Step {
        let samples = evidence.samples();
        if samples < self.min_samples {
            return Step::Insufficient {
                reason: format!("insufficient data: {samples} < {}", self.min_samples),
            };
        }
        let rate = evidence.success_rate().unwrap_or(0.0);
        let (success_delta, success_why) = if rate > self.success_threshold {
            (
                self.success_step,
                format!(
                    "success rate {} > {}",
                    pct(rate),
                    pct(self.success_threshold)
                ),
            )
        } else {
            (
                -self.success_step,
                format!(
                    "success rate {} <= {}",
                    pct(rate),
                    pct(self.success_threshold)
                ),
            )
        };
        let (speed_delta, speed_why) = match evidence.avg_response_time_ms() {
            None => (0.0, "no response times".to_string()),
            Some(avg) if avg > self.slowness_threshold_ms => (
                -self.speed_step,
                format!("avg {avg:.0} ms > {} ms", self.slowness_threshold_ms),
            ),
            Some(avg) => (
                self.speed_step,
                format!("avg {avg:.0} ms <= {} ms", self.slowness_threshold_ms),
            ),
        };
        let new_score = clamp_score(current + success_delta + speed_delta);
        let reason = format!(
            "{success_why}: {}; {speed_why}: {} ({samples} outcomes)",
            signed(success_delta),
            signed(speed_delta)
        );
        Step::Learned { new_score, reason }
    }
}

/// Clamps to [0, 5] and rounds away float noise (0.1 + 0.2 steps), to 4 decimals.
pub fn clamp_score(score: f64) -> f64 {
    ((score * 10_000.0).round() / 10_000.0).clamp(MIN_SCORE, MAX_SCORE)
}

fn pct(rate: f64) -> String {
    format!("{:.1}%", rate * 100.0)
}

fn signed(delta: f64) -> String {
    format!("{delta:+}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn evidence(successes: i64, failures: i64, avg_ms: Option<i64>) -> Evidence {
        let latency_count = if avg_ms.is_some() {
            successes + failures
        } else {
            0
        };
        Evidence {
            successes,
            failures,
            latency_count,
            latency_sum_ms: avg_ms.unwrap_or(0) * latency_count,
        }
    }

    fn learned(step: Step) -> f64 {
        match step {
            Step::Learned { new_score, .. } => new_score,
            other => panic!("expected a learned step, got {other:?}"),
        }
    }

    #[test]
    fn insufficient_data_names_the_counts() {
        let p = SeedPolicy::default();
        let step = p.step(3.0, &evidence(30, 7, Some(100)));
        assert_eq!(
            step,
            Step::Insufficient {
                reason: "insufficient data: 37 < 100".into()
            }
        );
        // Exactly the minimum learns.
        assert!(matches!(
            p.step(3.0, &evidence(99, 1, Some(100))),
            Step::Learned { .. }
        ));
    }

    #[test]
    fn the_four_branches() {
        let p = SeedPolicy::default();
        assert_eq!(learned(p.step(3.0, &evidence(99, 1, Some(500)))), 3.3); // good and fast
        assert_eq!(learned(p.step(3.0, &evidence(99, 1, Some(2500)))), 3.1); // good but slow
        assert_eq!(learned(p.step(3.0, &evidence(80, 20, Some(500)))), 2.9); // bad but fast
        assert_eq!(learned(p.step(3.0, &evidence(80, 20, Some(2500)))), 2.7); // bad and slow
    }

    #[test]
    fn thresholds_are_strict_as_in_the_seed() {
        let p = SeedPolicy::default();
        // success rate exactly 0.95 is not "> 0.95": -0.2; avg exactly 2000 is not "> 2000": +0.1
        assert_eq!(learned(p.step(3.0, &evidence(95, 5, Some(2000)))), 2.9);
        // just above both thresholds
        let e = Evidence {
            successes: 951,
            failures: 49,
            latency_count: 1000,
            latency_sum_ms: 2_000_001,
        };
        assert_eq!(learned(p.step(3.0, &e)), 3.1);
    }

    #[test]
    fn clamps_at_both_ends() {
        let p = SeedPolicy::default();
        assert_eq!(learned(p.step(4.9, &evidence(100, 0, Some(10)))), 5.0);
        assert_eq!(learned(p.step(5.0, &evidence(100, 0, Some(10)))), 5.0);
        assert_eq!(learned(p.step(0.2, &evidence(0, 100, Some(9000)))), 0.0);
        assert_eq!(learned(p.step(0.0, &evidence(0, 100, Some(9000)))), 0.0);
    }

    #[test]
    fn no_response_times_means_no_speed_term() {
        let p = SeedPolicy::default();
        match p.step(3.0, &evidence(100, 0, None)) {
            Step::Learned { new_score, reason } => {
                assert_eq!(new_score, 3.2);
                assert!(reason.contains("no response times: +0"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn constants_are_configurable() {
        let p = SeedPolicy {
            min_samples: 10,
            success_threshold: 0.5,
            success_step: 1.0,
            slowness_threshold_ms: 100.0,
            speed_step: 0.5,
        };
        assert_eq!(learned(p.step(2.0, &evidence(6, 4, Some(150)))), 2.5);
    }

    #[test]
    fn reason_is_human_readable() {
        let p = SeedPolicy::default();
        match p.step(3.0, &evidence(97, 3, Some(1500))) {
            Step::Learned { reason, .. } => assert_eq!(
                reason,
                "success rate 97.0% > 95.0%: +0.2; avg 1500 ms <= 2000 ms: +0.1 (100 outcomes)"
            ),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn repeated_steps_do_not_accumulate_float_noise() {
        let p = SeedPolicy::default();
        let mut score = 0.0;
        for _ in 0..16 {
            score = learned(p.step(score, &evidence(100, 0, Some(10))));
        }
        assert_eq!(score, 4.8);
    }
}
