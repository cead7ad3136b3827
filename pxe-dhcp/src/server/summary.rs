//! Operator-facing summaries of refusals: one `warn` line per kind of event and interval, with
//! counts, however many events a flood brings (`error` for the lease file, which is this
//! server's failure, not a peer's). Each event is also logged by its caller at
//! `debug` (the per-packet line); these lines are what an operator watching at `warn` sees.
//!
//! The first event of a quiet period is reported at once (count 1), so a single refusal is
//! never hidden for an interval; later ones are counted and reported when the interval is
//! over, by the next event or by [`Summaries::flush`] (which the server calls once per
//! interval), so a flood that stops is still reported.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The kinds of refusal summarised: each is a separate line with its own counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Event {
    /// A pool had no address for a new client (keyed by the pool's name).
    PoolExhausted,
    /// A reply was not sent (keyed by the reason).
    ReplyDropped,
    /// A request was dropped before the policy or the lease table saw it (keyed by reason).
    RequestDropped,
    /// A lease change could not be written, so its DHCPACK was withheld (keyed by the error).
    LeaseFileFailed,
    /// A request came from a segment (the receiving address, or a relay's giaddr) that no
    /// configured subnet holds (keyed by that address): a missing subnet, or a stray relay.
    NoSubnet,
}

impl Event {
    fn message(self) -> &'static str {
        match self {
            Self::PoolExhausted => "dhcp pool exhausted: new clients get no offer",
            Self::ReplyDropped => "dhcp replies dropped",
            Self::RequestDropped => "dhcp requests dropped",
            Self::LeaseFileFailed => "lease file writes failed: DHCPACKs withheld",
            Self::NoSubnet => "dhcp requests from segments no subnet serves (add a pool for them)",
        }
    }
}

#[derive(Debug, Default)]
struct Pending {
    /// Events per key since the last report.
    counts: BTreeMap<String, u64>,
    /// When the last report was written.
    reported: Option<Instant>,
}

/// Keys counted apart per event and interval; the rest count as "others".
const MAX_KEYS: usize = 32;

/// Counts events and writes at most one `warn` line per [`Event`] and interval.
#[derive(Debug)]
pub(crate) struct Summaries {
    interval: Duration,
    pending: Mutex<BTreeMap<Event, Pending>>,
}

/// One summary line to write: the event, and its counts per key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Report {
    pub(crate) event: Event,
    pub(crate) counts: BTreeMap<String, u64>,
}

impl Report {
    fn log(&self, interval: Duration) {
        let total: u64 = self.counts.values().sum();
        let detail = self
            .counts
            .iter()
            .map(|(key, count)| format!("{key}: {count}"))
            .collect::<Vec<_>>()
            .join(", ");
        let interval_secs = interval.as_secs();
        let message = self.event.message();
        if self.event == Event::LeaseFileFailed {
            tracing::error!(total, interval_secs, counts = %detail, "{message}");
        } else {
            tracing::warn!(total, interval_secs, counts = %detail, "{message}");
        }
    }
}

impl Summaries {
    /// At most one line per event and `interval` (at least one second).
    pub(crate) fn new(interval: Duration) -> Self {
        Self {
            interval: interval.max(Duration::from_secs(1)),
            pending: Mutex::new(BTreeMap::new()),
        }
    }

    /// Counts one `event` under `key` at `now`, and writes its line when one is due.
    pub(crate) fn record(&self, event: Event, key: impl std::fmt::Display, now: Instant) {
        if let Some(report) = self.count(event, key.to_string(), now) {
            report.log(self.interval);
        }
    }

    /// Writes the lines of every event whose interval is over and which has counts.
    pub(crate) fn flush(&self, now: Instant) {
        for report in self.due(now) {
            report.log(self.interval);
        }
    }

    /// The interval between lines.
    pub(crate) fn interval(&self) -> Duration {
        self.interval
    }

    fn count(&self, event: Event, key: String, now: Instant) -> Option<Report> {
        let mut pending = super::lock(&self.pending);
        let entry = pending.entry(event).or_default();
        // Keys come from the network (a relay's address): past a few, they are lumped
        // together, so a flood of made-up ones cannot grow the map.
        let key = if entry.counts.len() >= MAX_KEYS && !entry.counts.contains_key(&key) {
            "others".to_string()
        } else {
            key
        };
        *entry.counts.entry(key).or_default() += 1;
        take_if_due(event, entry, now, self.interval)
    }

    fn due(&self, now: Instant) -> Vec<Report> {
        let mut pending = super::lock(&self.pending);
        pending
            .iter_mut()
            .filter_map(|(event, entry)| take_if_due(*event, entry, now, self.interval))
            .collect()
    }
}

fn take_if_due(
    event: Event,
    entry: &mut Pending,
    now: Instant,
    interval: Duration,
) -> Option<Report> {
    let due = entry
        .reported
        .is_none_or(|at| now.saturating_duration_since(at) >= interval);
    if !due || entry.counts.is_empty() {
        return None;
    }
    entry.reported = Some(now);
    Some(Report {
        event,
        counts: std::mem::take(&mut entry.counts),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_report_per_interval_with_every_count() {
        let summaries = Summaries::new(Duration::from_secs(10));
        let start = Instant::now();
        let at = |secs: u64| start + Duration::from_secs(secs);
        // The first event is reported at once.
        let first = summaries.count(Event::PoolExhausted, "192.0.2.0/24".into(), at(0));
        assert_eq!(
            first.map(|r| r.counts),
            Some(BTreeMap::from([("192.0.2.0/24".to_string(), 1)]))
        );
        // A flood within the interval is only counted…
        for n in 0..1000u64 {
            let key = if n % 2 == 0 { "a" } else { "b" };
            assert_eq!(
                summaries.count(Event::PoolExhausted, key.into(), at(n % 9)),
                None
            );
        }
        // …another event kind has its own interval…
        assert!(summaries
            .count(Event::ReplyDropped, "x".into(), at(1))
            .is_some());
        assert!(summaries.due(at(9)).is_empty());
        // …and once the interval is over, one report carries the counts.
        let reports = summaries.due(at(10));
        assert_eq!(
            reports,
            vec![Report {
                event: Event::PoolExhausted,
                counts: BTreeMap::from([("a".to_string(), 500), ("b".to_string(), 500)]),
            }]
        );
        // Nothing new: nothing to report.
        assert!(summaries.due(at(30)).is_empty());
    }
}
