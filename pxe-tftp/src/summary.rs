//! Operator-facing summaries: what the server refused or let go, counted and logged at most
//! once per interval, so that a flood costs one log line per interval rather than one per
//! packet. Per-request detail stays at `debug`.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Something an operator must see, counted rather than logged one by one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// A request refused: every transfer slot was held by transfers that had made progress.
    BusyOverall,
    /// A request refused: its client address already had its most transfers.
    BusyPerClient,
    /// A transfer that had never been acknowledged let go to make room for a newcomer.
    Evicted,
    /// A transfer that could not get a socket (ports or descriptors exhausted).
    NoSocket,
    /// A request longer than any real client sends, refused.
    Oversized,
    /// A transfer dropped for lack of progress (no first ACK in time, or stalled).
    NoProgress,
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Counts {
    busy_overall: u64,
    busy_per_client: u64,
    evicted: u64,
    no_socket: u64,
    oversized: u64,
    no_progress: u64,
    /// `info` lines (one per finished transfer) left out past the interval's budget.
    info_suppressed: u64,
}

impl Counts {
    fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// Whether an operator must see these: anything but transfers that clients abandoned.
    fn needs_warning(&self) -> bool {
        Self {
            no_progress: 0,
            ..self.clone()
        } != Self::default()
    }
}

#[derive(Debug)]
struct Window {
    started: Instant,
    counts: Counts,
    info_lines: u32,
    flush_scheduled: bool,
}

/// Counts of refusals and evictions, logged as one line per interval.
#[derive(Debug)]
pub(crate) struct Summary {
    interval: Duration,
    info_budget: u32,
    window: Mutex<Window>,
}

impl Summary {
    /// Summaries every `interval`; at most `info_budget` per-transfer `info` lines in each.
    pub(crate) fn new(interval: Duration, info_budget: u32) -> Self {
        Self {
            interval,
            info_budget,
            window: Mutex::new(Window {
                started: Instant::now(),
                counts: Counts::default(),
                info_lines: 0,
                flush_scheduled: false,
            }),
        }
    }

    fn window(&self) -> std::sync::MutexGuard<'_, Window> {
        self.window.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Counts one refusal; it is logged with the others of its interval.
    pub(crate) fn record(self: &Arc<Self>, refusal: Refusal) {
        let mut window = self.roll(Instant::now());
        let counts = &mut window.counts;
        match refusal {
            Refusal::BusyOverall => counts.busy_overall += 1,
            Refusal::BusyPerClient => counts.busy_per_client += 1,
            Refusal::Evicted => counts.evicted += 1,
            Refusal::NoSocket => counts.no_socket += 1,
            Refusal::Oversized => counts.oversized += 1,
            Refusal::NoProgress => counts.no_progress += 1,
        }
        self.schedule_flush(&mut window);
    }

    /// Whether a per-transfer `info` line may be logged now: the first `info_budget` of each
    /// interval may, the rest are counted in the summary.
    pub(crate) fn allow_info(self: &Arc<Self>) -> bool {
        let mut window = self.roll(Instant::now());
        if window.info_lines < self.info_budget {
            window.info_lines += 1;
            return true;
        }
        window.counts.info_suppressed += 1;
        self.schedule_flush(&mut window);
        false
    }

    /// The current window, after logging and starting a new one if the interval is over.
    fn roll(&self, now: Instant) -> std::sync::MutexGuard<'_, Window> {
        let mut window = self.window();
        if now.duration_since(window.started) >= self.interval {
            let counts = std::mem::take(&mut window.counts);
            window.started = now;
            window.info_lines = 0;
            log(&counts, self.interval);
        }
        window
    }

    /// Makes sure the window's counts are logged when it ends, even if nothing else happens:
    /// one timer task per interval with something to say, none while all is quiet.
    fn schedule_flush(self: &Arc<Self>, window: &mut Window) {
        if window.flush_scheduled {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return; // the next event logs it instead
        };
        window.flush_scheduled = true;
        let due = window.started + self.interval;
        let summary = Arc::downgrade(self);
        runtime.spawn(async move {
            tokio::time::sleep_until(tokio::time::Instant::from_std(due)).await;
            if let Some(summary) = summary.upgrade() {
                let mut window = summary.roll(Instant::now());
                window.flush_scheduled = false;
            }
        });
    }
}

fn log(counts: &Counts, interval: Duration) {
    if counts.is_empty() {
        return;
    }
    let interval_s = interval.as_secs_f64();
    if counts.needs_warning() {
        tracing::warn!(
            interval_s,
            busy_overall = counts.busy_overall,
            busy_per_client = counts.busy_per_client,
            evicted = counts.evicted,
            no_socket = counts.no_socket,
            oversized = counts.oversized,
            no_progress = counts.no_progress,
            info_suppressed = counts.info_suppressed,
            "tftp under load: requests refused (server busy: all slots held by transfers making \
             progress, or the client's own limit reached), unacknowledged transfers evicted for \
             newcomers, transfers without a socket, oversized requests, transfers dropped without \
             progress, and per-transfer info lines left out, in the last interval"
        );
    } else {
        tracing::debug!(
            interval_s,
            no_progress = counts.no_progress,
            "tftp transfers dropped without progress in the last interval"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_roll_over_once_the_interval_is_over() {
        let summary = Arc::new(Summary::new(Duration::from_millis(50), 2));
        summary.record(Refusal::BusyOverall);
        summary.record(Refusal::Evicted);
        summary.record(Refusal::Evicted);
        assert!(summary.allow_info());
        assert!(summary.allow_info());
        assert!(!summary.allow_info(), "past the budget");
        {
            let window = summary.window();
            assert_eq!(
                window.counts,
                Counts {
                    busy_overall: 1,
                    evicted: 2,
                    info_suppressed: 1,
                    ..Counts::default()
                }
            );
            assert!(window.counts.needs_warning());
        }
        std::thread::sleep(Duration::from_millis(60));
        assert!(summary.allow_info(), "a new interval, a new budget");
        assert!(summary.window().counts.is_empty(), "logged and cleared");
    }

    #[test]
    fn abandoned_transfers_alone_are_no_warning() {
        let counts = Counts {
            no_progress: 3,
            ..Counts::default()
        };
        assert!(!counts.needs_warning());
    }
}
