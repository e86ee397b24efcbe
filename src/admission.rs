//! Which models ingest admits: every model it already knows, and at most
//! `centralcloud.max_new_models_per_hour` models never seen before per hour, so one router
//! publishing garbage model names cannot explode the catalog, the rollups and learning.
//! Pure: the SPI layer (`ingest`) loads the known models at the start of each call.

use std::collections::HashSet;

/// The admission state of one ingest call.
#[derive(Debug)]
pub struct Admission {
    known: HashSet<String>,
    /// New models this call may still admit; None: no cap.
    room: Option<u64>,
    cap: u64,
}

impl Admission {
    /// `known`: every model in the catalog; `recent_new`: how many of them first appeared in
    /// the last hour; `cap`: at most this many new models per hour (0: no cap).
    pub fn new(known: impl IntoIterator<Item = String>, recent_new: u64, cap: u64) -> Self {
        Admission {
            known: known.into_iter().collect(),
            room: (cap > 0).then(|| cap.saturating_sub(recent_new)),
            cap,
        }
    }

    /// Ok when the model is known or there is room for one more new model (which is then
    /// known); otherwise the reason to dead-letter the event.
    pub fn admit(&mut self, model: &str) -> Result<(), String> {
        if self.known.contains(model) {
            return Ok(());
        }
        match self.room {
            Some(0) => Err(format!(
                "model \"{}\" is new and {} new models were already accepted in the last hour (centralcloud.max_new_models_per_hour)",
                shortened(model),
                self.cap
            )),
            room => {
                self.room = room.map(|r| r - 1);
                self.known.insert(model.to_string());
                Ok(())
            }
        }
    }
}

/// A model name as a reason shows it: at most 64 characters.
fn shortened(model: &str) -> String {
    match model.char_indices().nth(64) {
        Some((cut, _)) => format!("{}...", &model[..cut]),
        None => model.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn known(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn known_models_always_pass_and_new_ones_up_to_the_room() {
        let mut a = Admission::new(known(&["gpt-4o", "llama"]), 1, 3);
        assert!(a.admit("gpt-4o").is_ok());
        assert!(a.admit("new-1").is_ok());
        assert!(a.admit("new-2").is_ok());
        let refused = a.admit("new-3").unwrap_err();
        assert!(
            refused.contains("\"new-3\" is new and 3 new models"),
            "{refused}"
        );
        assert!(a.admit("new-1").is_ok(), "an admitted model stays admitted");
        assert!(a.admit("llama").is_ok());
    }

    #[test]
    fn zero_cap_admits_everything() {
        let mut a = Admission::new(known(&[]), 500, 0);
        for i in 0..1000 {
            assert!(a.admit(&format!("m{i}")).is_ok());
        }
    }

    #[test]
    fn a_full_hour_admits_no_new_model() {
        let mut a = Admission::new(known(&["a"]), 7, 5);
        assert!(a.admit("b").is_err());
        assert!(a.admit("a").is_ok());
    }

    #[test]
    fn reasons_stay_short() {
        let mut a = Admission::new(known(&[]), 1, 1);
        let long = "é".repeat(10_000);
        assert!(a.admit(&long).unwrap_err().len() < 300);
    }
}
