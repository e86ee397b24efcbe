//! Anomaly episodes (`instance_anomaly_episodes`, view `instance_anomalies`): the outlier test
//! of each cell of a chunk run on its consensus window, the episodes it opens, continues and
//! ends, and the advisory each episode sends its instance. SPI; what is decided is
//! `consensus`'s.

use super::bayes::{merge_into, HourEvidence};
use super::consensus::{advisory_message, ConsensusPolicy, Outlier, Slice, Source, Verdict};
use super::hourly::{self, LeftOut};
use super::Cell;
use crate::publish::{timestamp_now, InstanceAdvisory};
use chrono::{DateTime, SecondsFormat, Utc};
use pgrx::spi::{SpiClient, SpiResult};
use std::collections::{BTreeMap, HashMap};

/// An episode open before this run.
pub struct OpenEpisode {
    pub id: i64,
    pub source: Source,
    pub since_hour: i64,
}

/// A cell as consensus sees it in this run.
#[derive(Default)]
pub struct CellConsensus {
    /// The newest event hour of the run.
    pub now_hour: i64,
    /// Its rollup rows in the window with outcomes (ended episodes' hours left out).
    pub window: Vec<Slice>,
    /// Its rollup rows in the window without outcomes: nothing to consensus, but part of
    /// policy bayes's evidence of those hours, as in the table.
    pub idle: Vec<Slice>,
    pub open: Vec<OpenEpisode>,
    pub verdict: Verdict,
}

/// Each cell's consensus, keyed by (model, complexity).
pub type Views = HashMap<(String, String), CellConsensus>;

impl CellConsensus {
    /// The window's rows that count: none of a source left out in this run. Borrowed: a
    /// copy would clone each row's strings and sketch only to read them.
    pub fn kept_rows(&self) -> Vec<&Slice> {
        let left_out: Vec<_> = self.left_out().collect();
        self.window
            .iter()
            .filter(|s| !is_left_out(s, &left_out))
            .collect()
    }

    /// Policy bayes's evidence of the window's hours from `first_hour` on, hours ascending:
    /// the rows summed per hour over instances and providers, sketches merged, none of a source
    /// left out in this run; what `read_hours.sql` makes of the hours before the window, from
    /// the rows already read (an hour's sketch is None when no row has samples, as the
    /// aggregate's NULL).
    pub fn hours_from(&self, first_hour: i64) -> Vec<HourEvidence> {
        let left_out: Vec<_> = self.left_out().collect();
        let mut by_hour: BTreeMap<i64, HourEvidence> = BTreeMap::new();
        let rows = self.window.iter().chain(&self.idle);
        for s in rows.filter(|s| s.hour >= first_hour && !is_left_out(s, &left_out)) {
            let h = by_hour.entry(s.hour).or_insert_with(|| HourEvidence {
                hour: s.hour,
                successes: 0,
                failures: 0,
                latency: None,
            });
            h.successes += s.successes;
            h.failures += s.failures;
            merge_into(&mut h.latency, s.latency.as_ref());
        }
        by_hour
            .into_values()
            .map(|mut h| {
                h.latency = h.latency.filter(|l| l.count() > 0);
                h
            })
            .collect()
    }

    /// The sources left out in this run, each over its hours: a new outlier's from its onset,
    /// an ongoing episode's from its `since`, both through the newest hour; an episode that
    /// ends in this run from its `since` through the hour before, as `record` marks it (the
    /// table says so only once the run has recorded it).
    fn left_out(&self) -> impl Iterator<Item = (&str, &str, i64, i64)> {
        let now_hour = self.now_hour;
        let since = |instance: &str, provider: &str, first: i64| {
            self.open
                .iter()
                .find(|e| e.source.0 == instance && e.source.1 == provider)
                .map_or(first, |e| e.since_hour)
        };
        let flagged = self.verdict.flagged.iter().map(move |o| {
            let s = since(&o.instance, &o.provider, o.since_hour);
            (o.instance.as_str(), o.provider.as_str(), s, now_hour)
        });
        let kept = self
            .verdict
            .kept
            .iter()
            .map(move |(i, p)| (i.as_str(), p.as_str(), since(i, p, i64::MIN), now_hour));
        let cleared = self
            .verdict
            .cleared
            .iter()
            .map(move |(i, p)| (i.as_str(), p.as_str(), since(i, p, i64::MIN), now_hour - 1));
        flagged.chain(kept).chain(cleared)
    }

    /// What a learning reason says of the sources left out, e.g. `; left out: r5 via
    /// provider-x (failure rate 90.0% vs the fleet's 2.0%, LLR 240.1)`.
    pub fn reason_suffix(&self) -> String {
        let mut parts: Vec<String> = self
            .verdict
            .flagged
            .iter()
            .map(|o| {
                format!(
                    "{} via {} (failure rate {:.1}% vs the fleet's {:.1}%, {} {:.1})",
                    o.instance,
                    o.provider,
                    o.instance_failure_rate * 100.0,
                    o.fleet_failure_rate * 100.0,
                    o.kind.as_str(),
                    o.statistic
                )
            })
            .collect();
        parts.extend(
            self.verdict
                .kept
                .iter()
                .map(|(i, p)| format!("{i} via {p} (episode open, too few outcomes to judge)")),
        );
        if parts.is_empty() {
            String::new()
        } else {
            format!("; left out: {}", parts.join(", "))
        }
    }
}

/// Whether a row is of a source left out, in one of its hours: (instance, provider, first
/// hour, last hour).
fn is_left_out(s: &Slice, left_out: &[(&str, &str, i64, i64)]) -> bool {
    left_out.iter().any(|&(i, p, since, until)| {
        s.instance == i && s.provider == p && s.hour >= since && s.hour <= until
    })
}

/// Reads the chunk's consensus windows and open episodes and runs the outlier test.
pub fn judge(
    client: &SpiClient<'_>,
    policy: &ConsensusPolicy,
    cells: &[Cell],
    now_hour: i64,
) -> SpiResult<Views> {
    let windows = hourly::read_window(client, cells, now_hour, policy.window_hours)?;
    let mut open = read_open(client, cells)?;
    let mut views = Views::new();
    for (c, hourly::WindowRows { window, idle }) in cells.iter().zip(windows) {
        let key = (c.model.clone(), c.complexity.clone());
        let open = open.remove(&key).unwrap_or_default();
        let sources: Vec<Source> = open.iter().map(|e| e.source.clone()).collect();
        let verdict = policy.judge(&window, &sources);
        views.insert(
            key,
            CellConsensus {
                now_hour,
                window,
                idle,
                open,
                verdict,
            },
        );
    }
    Ok(views)
}

fn read_open(
    client: &SpiClient<'_>,
    cells: &[Cell],
) -> SpiResult<HashMap<(String, String), Vec<OpenEpisode>>> {
    let rows = client.select(
        include_str!("sql/open_episodes.sql"),
        None,
        &[
            hourly::models(cells).into(),
            hourly::complexities(cells).into(),
        ],
    )?;
    let mut by_cell: HashMap<(String, String), Vec<OpenEpisode>> = HashMap::new();
    for row in rows {
        let text = |name: &str| -> SpiResult<String> {
            Ok(row.get_by_name::<String, _>(name)?.unwrap_or_default())
        };
        by_cell
            .entry((text("model")?, text("complexity")?))
            .or_default()
            .push(OpenEpisode {
                id: row.get_by_name::<i64, _>("id")?.unwrap_or_default(),
                source: (text("instance")?, text("provider")?),
                since_hour: row.get_by_name::<i64, _>("since_hour")?.unwrap_or_default(),
            });
    }
    Ok(by_cell)
}

/// The sources every cell leaves out in this run, for the evidence bayes reads.
pub fn left_out(views: &Views) -> Vec<LeftOut<'_>> {
    views
        .iter()
        .flat_map(|((model, complexity), v)| {
            v.left_out().map(
                move |(instance, provider, since_hour, until_hour)| LeftOut {
                    model,
                    complexity,
                    instance,
                    provider,
                    since_hour,
                    until_hour,
                },
            )
        })
        .collect()
}

/// Ends the episodes the test cleared (their evidence up to the hour before `now_hour` stays
/// left out: the test found the instance matching the fleet again in the window up to now),
/// opens or updates those of the outliers, and sends each open episode's advisory once.
pub fn record(client: &mut SpiClient<'_>, views: &Views, now_hour: i64) -> SpiResult<()> {
    let cleared: Vec<i64> = views
        .values()
        .flat_map(|v| {
            v.open
                .iter()
                .filter(|e| v.verdict.cleared.contains(&e.source))
                .map(|e| e.id)
        })
        .collect();
    if !cleared.is_empty() {
        client.update(
            "UPDATE centralcloud.instance_anomaly_episodes
                SET cleared_at = now(), cleared_hour = to_timestamp(($2 - 1) * 3600), updated_at = now()
              WHERE id = ANY($1)",
            None,
            &[cleared.into(), now_hour.into()],
        )?;
    }
    flag(client, views)?;
    let (models, complexities): (Vec<&str>, Vec<&str>) =
        views.keys().map(|(m, c)| (m.as_str(), c.as_str())).unzip();
    client.update(
        include_str!("sql/advise.sql"),
        None,
        &[models.into(), complexities.into()],
    )?;
    Ok(())
}

/// Opens an episode per new outlier and updates the numbers of the ongoing ones.
fn flag(client: &mut SpiClient<'_>, views: &Views) -> SpiResult<()> {
    let flagged: Vec<(&(String, String), &Outlier)> = views
        .iter()
        .flat_map(|(key, v)| v.verdict.flagged.iter().map(move |o| (key, o)))
        .collect();
    if flagged.is_empty() {
        return Ok(());
    }
    let now = timestamp_now();
    let advisories: Vec<String> = flagged
        .iter()
        .map(|((model, complexity), o)| {
            InstanceAdvisory {
                event_type: "instance_advisory",
                instance_id: &o.instance,
                model,
                complexity,
                provider: &o.provider,
                kind: o.kind.as_str(),
                // Events speak the views' units: percent, ms to 0.1.
                instance_failure_rate: crate::units::percent(o.instance_failure_rate),
                fleet_failure_rate: crate::units::percent(o.fleet_failure_rate),
                instance_p50_ms: o.instance_p50_ms.map(crate::units::ms),
                fleet_p50_ms: o.fleet_p50_ms.map(crate::units::ms),
                statistic: o.statistic,
                since: hour_rfc3339(o.since_hour),
                message: advisory_message(o, model, complexity),
                timestamp: now.clone(),
            }
            .to_json()
        })
        .collect();
    let float = |f: fn(&Outlier) -> f64| flagged.iter().map(|(_, o)| f(o)).collect::<Vec<f64>>();
    let optional = |f: fn(&Outlier) -> Option<f64>| {
        flagged
            .iter()
            .map(|(_, o)| f(o))
            .collect::<Vec<Option<f64>>>()
    };
    let count = |f: fn(&Outlier) -> i64| flagged.iter().map(|(_, o)| f(o)).collect::<Vec<i64>>();
    client.update(
        include_str!("sql/flag_episodes.sql"),
        None,
        &[
            flagged
                .iter()
                .map(|(k, _)| k.0.as_str())
                .collect::<Vec<_>>()
                .into(),
            flagged
                .iter()
                .map(|(k, _)| k.1.as_str())
                .collect::<Vec<_>>()
                .into(),
            flagged
                .iter()
                .map(|(_, o)| o.instance.as_str())
                .collect::<Vec<_>>()
                .into(),
            flagged
                .iter()
                .map(|(_, o)| o.provider.as_str())
                .collect::<Vec<_>>()
                .into(),
            flagged
                .iter()
                .map(|(_, o)| o.kind.as_str())
                .collect::<Vec<_>>()
                .into(),
            float(|o| o.instance_failure_rate).into(),
            float(|o| o.fleet_failure_rate).into(),
            count(|o| o.instance_outcomes).into(),
            count(|o| o.fleet_outcomes).into(),
            optional(|o| o.instance_p50_ms).into(),
            optional(|o| o.fleet_p50_ms).into(),
            float(|o| o.statistic).into(),
            count(|o| o.since_hour).into(),
            advisories.into(),
        ],
    )?;
    Ok(())
}

/// An event hour as RFC 3339 (`2026-11-27T05:00:00Z`).
fn hour_rfc3339(hour: i64) -> String {
    hour.checked_mul(3600)
        .and_then(|secs| DateTime::<Utc>::from_timestamp(secs, 0))
        .map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true))
        .unwrap_or_default()
}
