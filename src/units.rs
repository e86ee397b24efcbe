//! The units results are shown in, the same as the views' (sql/dashboards.sql): rates in
//! percent rounded to 2 decimals, milliseconds rounded to 0.1.

/// A fraction (0-1) as a percent rounded to 2 decimals.
pub fn percent(fraction: f64) -> f64 {
    (fraction * 10_000.0).round() / 100.0
}

/// Milliseconds rounded to 0.1.
pub fn ms(value: f64) -> f64 {
    (value * 10.0).round() / 10.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounding() {
        assert_eq!(percent(0.98321), 98.32);
        assert_eq!(percent(1.0), 100.0);
        assert_eq!(percent(0.0), 0.0);
        assert_eq!(ms(10.55978), 10.6);
        assert_eq!(ms(2515.4601126102493), 2515.5);
        assert_eq!(ms(0.04), 0.0);
    }
}
