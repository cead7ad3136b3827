//! The TFTP chapter of a client's boot story.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use pxe_policy::MacAddr;

use crate::error::Error;
use crate::observe::TftpObserver;
use crate::options::Negotiated;
use crate::summary::{Refusal, Summary};
use crate::transfer::Outcome;

/// The TFTP chapter of a client's boot story: one `info` line per download or size probe
/// (EDK2 probes before every download), with the options in force, up to the summary's
/// budget per interval. A failure is the peer's doing, so it stays at `debug`; one for lack
/// of progress is counted in the summary. The observer, if any, is told of each.
pub(super) struct BootStory {
    pub(super) summary: Arc<Summary>,
    /// The MAC the peer's address belongs to, from the client records.
    pub(super) mac: Option<MacAddr>,
    pub(super) peer: SocketAddr,
    pub(super) file: String,
    pub(super) options: Negotiated,
    pub(super) started: Instant,
    pub(super) observer: Option<Arc<dyn TftpObserver>>,
}

impl BootStory {
    /// The transfer gave its slot to a newcomer before its client acknowledged anything.
    pub(super) fn evicted(&self) {
        if let Some(observer) = &self.observer {
            observer.transfer_evicted(self.peer, &self.file);
        }
    }

    pub(super) fn log(&self, outcome: &Outcome) {
        let Self {
            summary,
            mac,
            peer,
            file,
            options,
            started,
            observer,
        } = self;
        if let Some(observer) = observer {
            observer.transfer_finished(*peer, file, outcome);
        }
        let mac = mac.map_or_else(|| "-".to_string(), |mac| mac.to_string());
        let file = file.as_str();
        let elapsed_ms = started.elapsed().as_millis() as u64;
        let (blksize, windowsize) = (options.blksize, options.windowsize);
        if matches!(outcome, Outcome::Failed(Error::TimedOut { .. })) {
            summary.record(Refusal::NoProgress);
        }
        let informs = !matches!(outcome, Outcome::Failed(_));
        if informs && !summary.allow_info() {
            return;
        }
        match outcome {
            Outcome::Completed {
                bytes,
                retransmitted,
            } => {
                tracing::info!(%mac, client = %peer.ip(), %peer, file, bytes, blksize, windowsize, retransmitted, elapsed_ms, "tftp download");
            }
            Outcome::SizeProbe => {
                tracing::info!(%mac, client = %peer.ip(), %peer, file, "tftp size probe (the client asked for the size and ended the transfer, as EDK2 does)");
            }
            Outcome::Failed(error) => {
                tracing::debug!(%mac, client = %peer.ip(), %peer, file, %error, "tftp transfer failed");
            }
        }
    }
}
