//! Binomial arithmetic shared by learning (`learn::bayes`), health (`health::rules`) and
//! recommendations (`recommend::rank`). Pure: no SPI.

/// Successes and failures.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Counts {
    pub s: i64,
    pub f: i64,
}

impl Counts {
    pub fn n(self) -> i64 {
        self.s.saturating_add(self.f)
    }

    pub fn plus(self, o: Counts) -> Counts {
        Counts {
            s: self.s.saturating_add(o.s),
            f: self.f.saturating_add(o.f),
        }
    }

    pub fn minus(self, o: Counts) -> Counts {
        Counts {
            s: self.s.saturating_sub(o.s).max(0),
            f: self.f.saturating_sub(o.f).max(0),
        }
    }

    /// The success rate; 0 with no outcome.
    pub fn rate(self) -> f64 {
        if self.n() > 0 {
            self.s as f64 / (self.s as f64 + self.f as f64)
        } else {
            0.0
        }
    }
}

/// Binomial log-likelihood ratio: a success rate per side against one pooled rate.
pub fn llr(before: Counts, after: Counts) -> f64 {
    let p = before.plus(after).rate();
    [before, after]
        .iter()
        .map(|c| {
            let q = c.rate();
            xlog(c.s as f64, q / p) + xlog(c.f as f64, (1.0 - q) / (1.0 - p))
        })
        .sum()
}

/// `x ln(ratio)` with `0 ln(anything) = 0`: a side with no successes has no success term. A
/// ratio that rounding made 0/0 (counts near i64::MAX) counts as 1.
fn xlog(x: f64, ratio: f64) -> f64 {
    if x > 0.0 && ratio > 0.0 && ratio.is_finite() {
        x * ratio.ln()
    } else {
        0.0
    }
}

/// The Wilson score interval's lower bound of a success rate at `z` standard deviations; None
/// without outcomes. *Why Wilson:* unlike `p - z sd` it stays inside [0, 1] and does not
/// collapse to the point estimate at 0% or 100%, so 3 of 3 is not "certainly perfect".
pub fn wilson_lower(c: Counts, z: f64) -> Option<f64> {
    let n = c.n() as f64;
    if n <= 0.0 {
        return None;
    }
    let z = if z.is_finite() { z.max(0.0) } else { 0.0 };
    let p = c.rate();
    let z2 = z * z;
    let centre = p + z2 / (2.0 * n);
    let spread = z * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt();
    Some(((centre - spread) / (1.0 + z2 / n)).clamp(0.0, 1.0))
}

pub fn pct(rate: f64) -> String {
    format!("{:.1}%", rate * 100.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn llr_is_zero_without_a_difference_and_grows_with_it() {
        let same = llr(Counts { s: 90, f: 10 }, Counts { s: 45, f: 5 });
        assert!(same.abs() < 1e-9, "{same}");
        let small = llr(Counts { s: 95, f: 5 }, Counts { s: 40, f: 10 });
        let large = llr(Counts { s: 95, f: 5 }, Counts { s: 0, f: 50 });
        assert!(small > 0.0 && large > small, "{small} {large}");
    }

    #[test]
    fn wilson_lower_bound_is_below_the_rate_and_tightens_with_evidence() {
        assert_eq!(wilson_lower(Counts::default(), 1.645), None);
        let few = wilson_lower(Counts { s: 3, f: 0 }, 1.645).unwrap();
        let many = wilson_lower(Counts { s: 3000, f: 0 }, 1.645).unwrap();
        assert!(few < 0.6 && many > 0.99 && many < 1.0, "{few} {many}");
        let half = wilson_lower(Counts { s: 500, f: 500 }, 1.645).unwrap();
        assert!((0.47..0.5).contains(&half), "{half}");
        assert_eq!(wilson_lower(Counts { s: 5, f: 5 }, 0.0), Some(0.5));
        assert_eq!(wilson_lower(Counts { s: 0, f: 9 }, 1.645), Some(0.0));
    }
}
