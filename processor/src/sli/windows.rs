//! Local sliding-window evaluation of SLIs.
//!
//! The exported counters are the source of truth for alerts; these windows
//! give the same verdict locally, for the report, the UI and the
//! `gardener_alert_firing` gauge, and tell the caller when a state changes so
//! that it can emit exactly one log record per transition.
//!
//! Each (SLI, label set) series is a ring of [`BUCKETS`] buckets of
//! `window / BUCKETS` each, so memory per series is fixed and the window
//! slides in steps of a tenth of its length. The number of series is bounded
//! by `max_series`; records of further label sets are counted per SLI in
//! [`SliWindows::overflow`] instead of being kept. Series with no event in
//! their window and not firing are dropped at [`SliWindows::evaluate`], which
//! makes room for new label sets.
//!
//! # Firing rule
//!
//! With `events` and `bad` summed over the window and `ratio = bad / events`:
//!
//! * no events: not firing (there is nothing left to alert on);
//! * fewer than `min_events`: the state is kept as it was: a thin sample can
//!   neither start nor end an alert;
//! * threshold 0 ("any"): firing while at least one bad event is in the window;
//! * otherwise (hysteresis): a quiet SLI starts firing when
//!   `ratio > threshold`; a firing SLI clears when
//!   `ratio < threshold * clear_factor` (0.8 by default), so a ratio hovering
//!   around the threshold does not flap.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use xxhash_rust::xxh3::Xxh3;

use super::config::SliConfig;
use super::SliEngine;

/// Buckets per window.
pub const BUCKETS: usize = 10;

/// The state of one series at an [`SliWindows::evaluate`].
#[derive(Debug, Clone, PartialEq)]
pub struct SliStatus {
    pub sli: usize,
    pub name: String,
    /// `(label name, value)` pairs, e.g. `[("service", "api")]`.
    pub labels: Vec<(String, String)>,
    pub events: u64,
    pub bad_events: u64,
    /// `bad_events / events`, 0 when there are no events.
    pub ratio: f64,
    pub threshold: f64,
    /// Events the window needs before the SLI can start or stop firing.
    pub min_events: u64,
    pub firing: bool,
    /// `Some(new state)` when `firing` changed at this evaluation.
    pub changed: Option<bool>,
}

impl SliStatus {
    /// The `service` label's value, if the SLI has one.
    pub fn service(&self) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| k == "service")
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Debug, Clone)]
struct Params {
    name: String,
    label_names: Vec<String>,
    threshold: f64,
    bucket_ns: u64,
    min_events: u64,
}

#[derive(Debug, Clone, Copy, Default)]
struct Bucket {
    epoch: u64,
    events: u64,
    bad: u64,
}

#[derive(Debug)]
struct Series {
    sli: usize,
    labels: Box<[String]>,
    buckets: [Bucket; BUCKETS],
    firing: bool,
}

/// Keys are already xxh3 hashes.
#[derive(Default)]
struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// Sliding windows for every SLI of an engine; see the
/// [module documentation](self).
#[derive(Debug)]
pub struct SliWindows {
    params: Vec<Params>,
    series: HashMap<u64, Series, BuildHasherDefault<PassThrough>>,
    max_series: usize,
    clear_factor: f64,
    overflow: Vec<u64>,
}

impl SliWindows {
    /// Windows for `engine`'s SLIs, bounded and with hysteresis as in
    /// `config` (`max_series`, `clear_factor`).
    pub fn new(engine: &SliEngine, config: &SliConfig) -> Self {
        Self::with_limits(engine, config.max_series, config.clear_factor)
    }

    pub fn with_limits(engine: &SliEngine, max_series: usize, clear_factor: f64) -> Self {
        let params = (0..engine.len())
            .map(|i| Params {
                name: engine.name(i).to_string(),
                label_names: engine.label_names(i).to_vec(),
                threshold: engine.threshold(i),
                bucket_ns: (engine.window_secs(i) * 1_000_000_000 / BUCKETS as u64).max(1),
                min_events: engine.min_events(i),
            })
            .collect::<Vec<_>>();
        SliWindows {
            overflow: vec![0; params.len()],
            params,
            series: HashMap::default(),
            max_series,
            clear_factor,
        }
    }

    /// Counts one event (bad or not) for `sli` with these label values at
    /// `now_unix_nano`. A record older than the newest bucket of its slot is
    /// added to that bucket (late records are rare and at most one bucket
    /// off); one older than the whole window is dropped.
    pub fn record<S: AsRef<str>>(
        &mut self,
        sli: usize,
        labels: &[S],
        bad: bool,
        now_unix_nano: u64,
    ) {
        self.record_many(sli, labels, 1, u64::from(bad), now_unix_nano);
    }

    /// Counts `events` events of which `bad` are bad at once (what one batch
    /// contributed): one lookup instead of one per event.
    pub fn record_many<S: AsRef<str>>(
        &mut self,
        sli: usize,
        labels: &[S],
        events: u64,
        bad: u64,
        now_unix_nano: u64,
    ) {
        let Some(p) = self.params.get(sli) else {
            return;
        };
        let epoch = now_unix_nano / p.bucket_ns;
        let mut h = Xxh3::new();
        h.update(&(sli as u64).to_le_bytes());
        for l in labels {
            h.update(l.as_ref().as_bytes());
            h.update(&[0xff]);
        }
        let key = h.digest();
        if !self.series.contains_key(&key) {
            if self.series.len() >= self.max_series {
                self.overflow[sli] += events;
                return;
            }
            self.series.insert(
                key,
                Series {
                    sli,
                    labels: labels.iter().map(|l| l.as_ref().to_string()).collect(),
                    buckets: [Bucket::default(); BUCKETS],
                    firing: false,
                },
            );
        }
        let series = self.series.get_mut(&key).expect("inserted above");
        if series.sli != sli
            || series.labels.len() != labels.len()
            || !series
                .labels
                .iter()
                .zip(labels)
                .all(|(a, b)| a == b.as_ref())
        {
            // A 64-bit hash collision between label sets: counted as
            // overflow rather than mixed into another series.
            self.overflow[sli] += events;
            return;
        }
        let b = &mut series.buckets[(epoch % BUCKETS as u64) as usize];
        if b.epoch < epoch {
            *b = Bucket {
                epoch,
                events: 0,
                bad: 0,
            };
        } else if b.epoch >= epoch + BUCKETS as u64 {
            return;
        }
        b.events += events;
        b.bad += bad;
    }

    /// Records dropped per SLI because the series bound was reached.
    pub fn overflow(&self, sli: usize) -> u64 {
        self.overflow.get(sli).copied().unwrap_or(0)
    }

    /// Number of live series.
    pub fn series_count(&self) -> usize {
        self.series.len()
    }

    /// Evaluates every series at `now_unix_nano`, updates firing states and
    /// returns them sorted by SLI and labels. Series that are empty and quiet
    /// are dropped afterwards (a series that just cleared is still reported
    /// once, with `changed: Some(false)`).
    pub fn evaluate(&mut self, now_unix_nano: u64) -> Vec<SliStatus> {
        let mut out = Vec::with_capacity(self.series.len());
        let clear_factor = self.clear_factor;
        self.series.retain(|_, s| {
            let p = &self.params[s.sli];
            let cur = now_unix_nano / p.bucket_ns;
            let (events, bad) = s
                .buckets
                .iter()
                .filter(|b| b.epoch <= cur && b.epoch + (BUCKETS as u64) > cur)
                .fold((0, 0), |(e, b), x| (e + x.events, b + x.bad));
            let ratio = if events == 0 {
                0.0
            } else {
                bad as f64 / events as f64
            };
            let was = s.firing;
            let now = if events == 0 {
                false
            } else if events < p.min_events {
                was
            } else if p.threshold <= 0.0 {
                bad > 0
            } else if was {
                ratio >= p.threshold * clear_factor
            } else {
                ratio > p.threshold
            };
            s.firing = now;
            out.push(SliStatus {
                sli: s.sli,
                name: p.name.clone(),
                labels: p
                    .label_names
                    .iter()
                    .cloned()
                    .zip(s.labels.iter().cloned())
                    .collect(),
                events,
                bad_events: bad,
                ratio,
                threshold: p.threshold,
                min_events: p.min_events,
                firing: now,
                changed: (now != was).then_some(now),
            });
            events > 0 || now
        });
        out.sort_by(|a, b| (a.sli, &a.labels).cmp(&(b.sli, &b.labels)));
        out
    }
}
