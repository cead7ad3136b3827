//! What a client's DHCP stage told the server, kept for its HTTP stage.
//!
//! iPXE describes itself (option 175: its features, HTTPS among them) only in DHCP; its HTTP
//! requests carry no such field. A [`ClientMemory`] shared by both stages carries that over,
//! keyed by MAC address, so that the HTTP stage can refuse an `https://` URL to an iPXE that
//! said it cannot fetch one. [`Remembering`] is the policy adapter that fills it from the
//! DHCP stage.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};

use crate::{BootDecision, ClientFacts, IpxeFeatures, MacAddr, Policy, ScriptDecision};

/// The iPXE features each recently seen client reported, by MAC address, bounded in size.
///
/// Clones share one memory. When full, the client first seen longest ago is forgotten.
#[derive(Debug, Clone)]
pub struct ClientMemory {
    shared: Arc<Mutex<Entries>>,
}

#[derive(Debug)]
struct Entries {
    capacity: usize,
    features: HashMap<MacAddr, IpxeFeatures>,
    /// MACs in the order they were first remembered: the eviction order.
    arrival: VecDeque<MacAddr>,
}

impl ClientMemory {
    /// How many clients [`ClientMemory::default`] keeps: more than a large site boots at once.
    pub const DEFAULT_CAPACITY: usize = 65_536;

    /// A memory of at most `capacity` clients (at least one).
    pub fn new(capacity: usize) -> Self {
        Self {
            shared: Arc::new(Mutex::new(Entries {
                capacity: capacity.max(1),
                features: HashMap::new(),
                arrival: VecDeque::new(),
            })),
        }
    }

    /// Records what `facts` says about the client's iPXE, if anything.
    pub fn remember(&self, facts: &ClientFacts) {
        let Some(features) = facts.ipxe else {
            return;
        };
        let mut entries = self.lock();
        if entries.features.insert(facts.mac, features).is_none() {
            entries.arrival.push_back(facts.mac);
            if entries.arrival.len() > entries.capacity {
                if let Some(oldest) = entries.arrival.pop_front() {
                    entries.features.remove(&oldest);
                }
            }
        }
    }

    /// The features remembered for `mac`.
    pub fn features(&self, mac: MacAddr) -> Option<IpxeFeatures> {
        self.lock().features.get(&mac).copied()
    }

    /// Completes `facts` with what is remembered of the client, where `facts` does not know it.
    pub fn fill(&self, facts: &mut ClientFacts) {
        if facts.ipxe.is_none() {
            facts.ipxe = self.features(facts.mac);
        }
    }

    /// Wraps `policy` so that every DHCP-stage request it sees is remembered here first.
    pub fn remembering<P: Policy>(&self, policy: P) -> Remembering<P> {
        Remembering {
            memory: self.clone(),
            policy,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Entries> {
        // The map stays consistent at every step, so a panic elsewhere leaves it usable.
        self.shared.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Default for ClientMemory {
    fn default() -> Self {
        Self::new(Self::DEFAULT_CAPACITY)
    }
}

/// A policy that records each DHCP-stage client in a [`ClientMemory`] and then asks the
/// wrapped policy. Made by [`ClientMemory::remembering`].
#[derive(Debug)]
pub struct Remembering<P> {
    memory: ClientMemory,
    policy: P,
}

impl<P: Policy> Policy for Remembering<P> {
    fn boot<'a>(
        &'a self,
        facts: &'a ClientFacts,
    ) -> impl Future<Output = BootDecision> + Send + 'a {
        self.memory.remember(facts);
        self.policy.boot(facts)
    }

    fn script<'a>(
        &'a self,
        facts: &'a ClientFacts,
    ) -> impl Future<Output = ScriptDecision> + Send + 'a {
        self.policy.script(facts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{block_on_ready, BootEveryone, ClientKind, IpxeFeature, LinuxBoot};

    fn ipxe(mac: u8, features: IpxeFeatures) -> ClientFacts {
        let mut facts = ClientFacts::new(
            MacAddr([0x52, 0x54, 0, 0, 0, mac]),
            ClientKind::ChainloadedIpxe,
        );
        facts.ipxe = Some(features);
        facts
    }

    fn with_https() -> IpxeFeatures {
        let mut features = IpxeFeatures::default();
        features.insert(IpxeFeature::HTTPS);
        features
    }

    #[test]
    fn dhcp_stage_features_reach_the_http_stage() {
        let memory = ClientMemory::default();
        let policy = memory.remembering(BootEveryone(LinuxBoot::new("http://x/k")));
        let dhcp = ipxe(1, with_https());
        block_on_ready(policy.boot(&dhcp));
        let mut http = ClientFacts::new(dhcp.mac, ClientKind::ChainloadedIpxe);
        memory.fill(&mut http);
        assert!(http.supports_https());
        // Another client is not confused with it.
        let mut other = ClientFacts::new(MacAddr([2; 6]), ClientKind::ChainloadedIpxe);
        memory.fill(&mut other);
        assert_eq!(other.ipxe, None);
    }

    #[test]
    fn facts_the_http_stage_knows_are_kept() {
        let memory = ClientMemory::default();
        memory.remember(&ipxe(1, with_https()));
        let mut http = ipxe(1, IpxeFeatures::default());
        memory.fill(&mut http);
        assert!(!http.supports_https());
    }

    #[test]
    fn the_oldest_client_is_forgotten_when_full() {
        let memory = ClientMemory::new(2);
        for mac in 1..=3 {
            memory.remember(&ipxe(mac, with_https()));
        }
        // Updating a known client does not count as a new one.
        memory.remember(&ipxe(3, IpxeFeatures::default()));
        assert_eq!(memory.features(MacAddr([0x52, 0x54, 0, 0, 0, 1])), None);
        assert!(memory.features(MacAddr([0x52, 0x54, 0, 0, 0, 2])).is_some());
        assert_eq!(
            memory.features(MacAddr([0x52, 0x54, 0, 0, 0, 3])),
            Some(IpxeFeatures::default())
        );
        assert_eq!(memory.lock().arrival.len(), 2);
    }
}
