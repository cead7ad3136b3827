//! What a standalone server lets a flood take: connections in all and per client address,
//! and the operator's view of what it refused (warnings once per interval, with counts).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tracing::warn;

/// Counts events of one kind and says when they are due for a report: the first event at
/// once, then at most one report per interval, carrying how many happened since the last.
#[derive(Debug)]
pub(crate) struct Tally {
    interval_ms: u64,
    base: Instant,
    /// Milliseconds after `base` of the last report; `u64::MAX` before the first.
    last_report_ms: AtomicU64,
    count: AtomicU64,
}

impl Tally {
    pub(crate) fn new(interval: Duration) -> Self {
        Self {
            interval_ms: u64::try_from(interval.as_millis()).unwrap_or(u64::MAX),
            base: Instant::now(),
            last_report_ms: AtomicU64::new(u64::MAX),
            count: AtomicU64::new(0),
        }
    }

    /// Counts one event; `Some(n)` when the caller should report now the `n` events (this
    /// one included) since the last report.
    pub(crate) fn count(&self) -> Option<u64> {
        self.count.fetch_add(1, Ordering::Relaxed);
        self.due()
    }

    /// `Some(n)` when events are waiting and the interval since the last report has passed
    /// (called periodically, so that the last events of a flood are reported too).
    pub(crate) fn due(&self) -> Option<u64> {
        if self.count.load(Ordering::Relaxed) == 0 {
            return None;
        }
        let now_ms = u64::try_from(self.base.elapsed().as_millis()).unwrap_or(u64::MAX);
        let last = self.last_report_ms.load(Ordering::Relaxed);
        if last != u64::MAX && now_ms.saturating_sub(last) < self.interval_ms {
            return None;
        }
        // One thread wins the report; the others keep counting into the next one.
        self.last_report_ms
            .compare_exchange(last, now_ms, Ordering::Relaxed, Ordering::Relaxed)
            .ok()?;
        Some(self.count.swap(0, Ordering::Relaxed)).filter(|&n| n > 0)
    }
}

/// Why a connection was refused or cut short, for the operator's summaries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// Accepted while the server held its maximum of connections: closed at once.
    OverTotal,
    /// Accepted from an address that held its maximum of connections: closed at once.
    OverPerClient,
    /// `accept` failed (out of file descriptors, most likely): the server backs off.
    AcceptFailed,
    /// A client read its response too slowly (or stopped): dropped.
    SlowReader,
    /// A connection sent no complete request within the header timeout: closed.
    SlowRequest,
}

/// Connections held, in all and per client address, and the tallies of what was refused.
/// One per server, shared by its threads.
#[derive(Debug)]
pub(crate) struct Admission {
    max_total: usize,
    max_per_client: usize,
    total: AtomicUsize,
    per_client: Mutex<HashMap<IpAddr, usize>>,
    over_total: Tally,
    over_per_client: Tally,
    accept_failed: Tally,
    slow_reader: Tally,
    slow_request: Tally,
}

impl Admission {
    pub(crate) fn new(max_total: usize, max_per_client: usize, interval: Duration) -> Self {
        Self {
            max_total,
            max_per_client,
            total: AtomicUsize::new(0),
            per_client: Mutex::new(HashMap::new()),
            over_total: Tally::new(interval),
            over_per_client: Tally::new(interval),
            accept_failed: Tally::new(interval),
            slow_reader: Tally::new(interval),
            slow_request: Tally::new(interval),
        }
    }

    /// A slot for a new connection from `client`, or the reason there is none (counted and
    /// reported).
    pub(crate) fn admit(self: &Arc<Self>, client: IpAddr) -> Result<Slot, Refusal> {
        if self.total.fetch_add(1, Ordering::Relaxed) >= self.max_total {
            self.total.fetch_sub(1, Ordering::Relaxed);
            self.refused(Refusal::OverTotal, Some(client), None);
            return Err(Refusal::OverTotal);
        }
        if self.max_per_client < self.max_total {
            let mut per_client = self.lock();
            let held = per_client.entry(client).or_insert(0);
            if *held >= self.max_per_client {
                drop(per_client);
                self.total.fetch_sub(1, Ordering::Relaxed);
                self.refused(Refusal::OverPerClient, Some(client), None);
                return Err(Refusal::OverPerClient);
            }
            *held += 1;
        }
        Ok(Slot {
            admission: Arc::clone(self),
            client,
        })
    }

    /// Connections held now.
    pub(crate) fn held(&self) -> usize {
        self.total.load(Ordering::Relaxed)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, usize>> {
        // The map stays consistent even if a holder panicked: every change is one statement.
        self.per_client
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Counts a refusal and, once per interval, warns with the count. `client` and `detail`
    /// (an error) describe the latest one.
    pub(crate) fn refused(
        &self,
        why: Refusal,
        client: Option<IpAddr>,
        detail: Option<&dyn std::fmt::Display>,
    ) {
        if let Some(count) = self.tally(why).count() {
            self.report(why, count, client, detail);
        }
    }

    /// Reports the counts that are due (those of a flood that has stopped, say).
    pub(crate) fn report_due(&self) {
        for why in [
            Refusal::OverTotal,
            Refusal::OverPerClient,
            Refusal::AcceptFailed,
            Refusal::SlowReader,
            Refusal::SlowRequest,
        ] {
            if let Some(count) = self.tally(why).due() {
                self.report(why, count, None, None);
            }
        }
    }

    fn tally(&self, why: Refusal) -> &Tally {
        match why {
            Refusal::OverTotal => &self.over_total,
            Refusal::OverPerClient => &self.over_per_client,
            Refusal::AcceptFailed => &self.accept_failed,
            Refusal::SlowReader => &self.slow_reader,
            Refusal::SlowRequest => &self.slow_request,
        }
    }

    fn report(
        &self,
        why: Refusal,
        count: u64,
        client: Option<IpAddr>,
        detail: Option<&dyn std::fmt::Display>,
    ) {
        let client = client.map(tracing::field::display);
        let detail = detail.map(tracing::field::display);
        let held = self.held();
        match why {
            Refusal::OverTotal => warn!(
                count,
                limit = self.max_total,
                latest = client,
                "http: connections over the server's limit closed at once"
            ),
            Refusal::OverPerClient => warn!(
                count,
                limit = self.max_per_client,
                latest = client,
                held,
                "http: connections over the per-client limit closed at once"
            ),
            Refusal::AcceptFailed => warn!(
                count,
                error = detail,
                held,
                "http: accepting connections failed (out of file descriptors?); backing off"
            ),
            Refusal::SlowReader => warn!(
                count,
                latest = client,
                reason = detail,
                held,
                "http: clients dropped for reading their responses too slowly"
            ),
            Refusal::SlowRequest => warn!(
                count,
                latest = client,
                held,
                "http: connections closed that sent no request within the header timeout"
            ),
        }
    }
}

/// A connection's place in the server's limits, given back when dropped.
#[derive(Debug)]
pub(crate) struct Slot {
    admission: Arc<Admission>,
    client: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let admission = &self.admission;
        if admission.max_per_client < admission.max_total {
            let mut per_client = admission.lock();
            if let Some(held) = per_client.get_mut(&self.client) {
                *held -= 1;
                if *held == 0 {
                    per_client.remove(&self.client);
                }
            }
        }
        admission.total.fetch_sub(1, Ordering::Relaxed);
    }
}

/// At most `per_interval` log lines per interval for one kind of per-request line, so that
/// a flood of requests does not flood the log; the lines left out are counted and reported
/// at `warn` with the first line of the next interval that has any.
#[derive(Debug)]
pub(crate) struct LineBudget {
    per_interval: u64,
    interval_ms: u64,
    base: Instant,
    /// Milliseconds after `base` when the current interval started.
    interval_start_ms: AtomicU64,
    /// Lines asked for in the current interval.
    asked: AtomicU64,
}

impl LineBudget {
    pub(crate) fn new(per_interval: u64, interval: Duration) -> Self {
        Self {
            per_interval,
            interval_ms: u64::try_from(interval.as_millis()).unwrap_or(u64::MAX),
            base: Instant::now(),
            interval_start_ms: AtomicU64::new(0),
            asked: AtomicU64::new(0),
        }
    }

    /// Whether one more line may be logged now.
    pub(crate) fn allow(&self) -> bool {
        let now_ms = u64::try_from(self.base.elapsed().as_millis()).unwrap_or(u64::MAX);
        let start = self.interval_start_ms.load(Ordering::Relaxed);
        if now_ms.saturating_sub(start) >= self.interval_ms
            && self
                .interval_start_ms
                .compare_exchange(start, now_ms, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            let asked = self.asked.swap(0, Ordering::Relaxed);
            if asked > self.per_interval {
                warn!(
                    left_out = asked - self.per_interval,
                    logged = self.per_interval,
                    seconds = self.interval_ms / 1000,
                    "http: per-request log lines left out (too many requests to log each)"
                );
            }
        }
        self.asked.fetch_add(1, Ordering::Relaxed) < self.per_interval
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tally_reports_the_first_event_then_once_per_interval() {
        let tally = Tally::new(Duration::from_millis(200));
        assert_eq!(tally.due(), None);
        assert_eq!(tally.count(), Some(1));
        assert_eq!(tally.count(), None);
        assert_eq!(tally.count(), None);
        assert_eq!(tally.due(), None);
        std::thread::sleep(Duration::from_millis(250));
        assert_eq!(tally.due(), Some(2));
        assert_eq!(tally.due(), None);
        assert_eq!(
            tally.count(),
            None,
            "within the interval of the last report"
        );
    }

    #[test]
    fn line_budget_allows_so_many_lines_per_interval() {
        let budget = LineBudget::new(3, Duration::from_millis(200));
        let allowed = (0..10).filter(|_| budget.allow()).count();
        assert_eq!(allowed, 3);
        std::thread::sleep(Duration::from_millis(250));
        assert!(budget.allow(), "a new interval, a new budget");
    }

    #[test]
    fn admission_caps_in_all_and_per_client_and_frees_slots() {
        let admission = Arc::new(Admission::new(3, 2, Duration::from_secs(60)));
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let a1 = admission.admit(a).unwrap();
        let _a2 = admission.admit(a).unwrap();
        assert_eq!(admission.admit(a).unwrap_err(), Refusal::OverPerClient);
        let _b1 = admission.admit(b).unwrap();
        assert_eq!(admission.admit(b).unwrap_err(), Refusal::OverTotal);
        assert_eq!(admission.held(), 3);
        drop(a1);
        assert_eq!(admission.held(), 2);
        let _a3 = admission.admit(a).unwrap();
        assert_eq!(admission.lock().get(&a), Some(&2));
    }
}
