//! One record per client across stages: what DHCP, TFTP and HTTP each learn about a machine,
//! merged by MAC address, so that the policy sees everything known so far at every stage.
//!
//! Each stage tells part of the story. DHCP knows the architecture, GUID, vendor and user
//! class, iPXE's features (option 175, which its HTTP requests never carry), the relay and the
//! address given; iPXE's script request knows the serial, product, manufacturer, asset tag and
//! host name; TFTP and plain file requests know only the requester's address. A
//! [`ClientRecords`] store keeps one [`ClientFacts`] per MAC, updated by each stage, and maps
//! an address back to its MAC, so a TFTP or HTTP log line (or a config request that names no
//! MAC) can say which machine asked.
//!
//! [`Recording`] wraps a policy: each question records the facts first, then asks the policy
//! with the facts completed from the record.

use std::collections::{HashMap, VecDeque};
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

use crate::{BootDecision, ClientFacts, ClientKind, MacAddr, Policy, ScriptDecision};

/// What is known of recently seen clients, by MAC address, bounded in size.
///
/// Clones share one store. When full, the client heard from longest ago is forgotten.
#[derive(Debug, Clone)]
pub struct ClientRecords {
    shared: Arc<Mutex<Store>>,
}

#[derive(Debug)]
struct Store {
    capacity: usize,
    records: HashMap<MacAddr, Entry>,
    /// Address → the MAC last seen with it.
    by_ip: HashMap<Ipv4Addr, MacAddr>,
    /// (MAC, the update that queued it): the eviction order. An item whose update is no
    /// longer the entry's is stale and skipped.
    order: VecDeque<(MacAddr, u64)>,
    updates: u64,
}

#[derive(Debug, Clone)]
struct Entry {
    facts: ClientFacts,
    /// The kind of the client's last DHCP request: which iPXE (ROM or chainloaded) the script
    /// request that follows comes from.
    dhcp_kind: Option<ClientKind>,
    /// When DHCP last handed the client an iPXE binary: (remembered until, the xid of that
    /// exchange). The chainloaded iPXE's own DHCP request is told from the ROM's by it.
    ipxe_handed: Option<(SystemTime, u32)>,
    update: u64,
}

impl ClientRecords {
    /// How many clients [`ClientRecords::default`] keeps: more than a large site boots at once
    /// (each record is a few hundred bytes).
    pub const DEFAULT_CAPACITY: usize = 65_536;

    /// A store of at most `capacity` clients (at least one).
    pub fn new(capacity: usize) -> Self {
        Self {
            shared: Arc::new(Mutex::new(Store {
                capacity: capacity.max(1),
                records: HashMap::new(),
                by_ip: HashMap::new(),
                order: VecDeque::new(),
                updates: 0,
            })),
        }
    }

    /// Merges what a DHCP request's `facts` know into the client's record (see
    /// [`record`](Self::record)), and keeps its stage: which iPXE (the ROM's or one we
    /// chainloaded) the script request that follows comes from.
    pub fn record_dhcp(&self, facts: &ClientFacts) {
        self.update(facts.mac, |entry| {
            merge(&mut entry.facts, facts);
            entry.dhcp_kind = Some(facts.kind);
        });
    }

    /// Merges what `facts` knows into the client's record: every fact it has replaces the
    /// recorded one (the newest word wins), and extra facts are added.
    pub fn record(&self, facts: &ClientFacts) {
        self.update(facts.mac, |entry| merge(&mut entry.facts, facts));
    }

    /// Records that `mac` now uses `ip` (the address DHCP gave it, say).
    pub fn record_address(&self, mac: MacAddr, ip: Ipv4Addr) {
        self.update(mac, |entry| entry.facts.ip = Some(ip));
    }

    /// Records that DHCP handed `mac` an iPXE binary in the exchange `xid`, to be remembered
    /// until `until`: the iPXE it starts asks again in a new exchange, and must get the
    /// script, not iPXE again (the chainload loop). Time is an argument: the store reads no
    /// clock.
    pub fn record_ipxe_handed(&self, mac: MacAddr, xid: u32, until: SystemTime) {
        self.update(mac, |entry| entry.ipxe_handed = Some((until, xid)));
    }

    /// Whether `mac` was handed an iPXE binary that is still remembered at `now`, in an
    /// exchange other than `xid`. The REQUEST that completes the very exchange which handed
    /// out the binary still comes from the stage that asked (an iPXE ROM being replaced sends
    /// the same options as the build it is given).
    pub fn ipxe_recently_handed(&self, mac: MacAddr, xid: u32, now: SystemTime) -> bool {
        self.lock()
            .records
            .get(&mac)
            .and_then(|entry| entry.ipxe_handed)
            .is_some_and(|(until, handed_in)| until > now && handed_in != xid)
    }

    /// Applies `change` to `mac`'s record (a new one if there is none), then keeps the address
    /// index and the eviction order in step.
    fn update(&self, mac: MacAddr, change: impl FnOnce(&mut Entry)) {
        let mut store = self.lock();
        store.updates += 1;
        let update = store.updates;
        let entry = store.records.entry(mac).or_insert_with(|| Entry {
            facts: ClientFacts::new(mac, ClientKind::FirmwarePxe),
            dhcp_kind: None,
            ipxe_handed: None,
            update,
        });
        let old_ip = entry.facts.ip;
        change(entry);
        entry.update = update;
        let new_ip = entry.facts.ip;
        if let Some(old) = old_ip.filter(|old| Some(*old) != new_ip) {
            if store.by_ip.get(&old) == Some(&mac) {
                store.by_ip.remove(&old);
            }
        }
        if let Some(ip) = new_ip {
            store.by_ip.insert(ip, mac);
        }
        store.order.push_back((mac, update));
        store.evict();
    }

    /// Completes `facts` with what is recorded of the client, where `facts` does not know it.
    /// An iPXE script request is reported as the ROM's iPXE when the client's last DHCP request
    /// came from the ROM (the HTTP request itself cannot tell them apart).
    pub fn fill(&self, facts: &mut ClientFacts) {
        let store = self.lock();
        let Some(entry) = store.records.get(&facts.mac) else {
            return;
        };
        complete(facts, &entry.facts);
        if facts.kind == ClientKind::ChainloadedIpxe
            && entry.dhcp_kind == Some(ClientKind::FirmwareIpxe)
        {
            facts.kind = ClientKind::FirmwareIpxe;
        }
    }

    /// Everything recorded of `mac`.
    pub fn get(&self, mac: MacAddr) -> Option<ClientFacts> {
        self.lock()
            .records
            .get(&mac)
            .map(|entry| entry.facts.clone())
    }

    /// The MAC of the client last seen with `ip`: for TFTP and HTTP requests, which carry only
    /// an address.
    pub fn mac_of(&self, ip: Ipv4Addr) -> Option<MacAddr> {
        self.lock().by_ip.get(&ip).copied()
    }

    /// How many clients are recorded.
    pub fn len(&self) -> usize {
        self.lock().records.len()
    }

    /// Whether no client is recorded.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Wraps `policy` so that each question records the client first and the policy sees the
    /// facts completed from its record.
    pub fn recording<P: Policy>(&self, policy: P) -> Recording<P> {
        Recording {
            records: self.clone(),
            policy,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Store> {
        // The maps stay consistent at every step, so a panic elsewhere leaves them usable.
        self.shared.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Store {
    /// Forgets the least recently heard-from clients beyond the capacity, and drops stale
    /// queue items so that the queue stays within twice the capacity.
    fn evict(&mut self) {
        while self.records.len() > self.capacity || self.order.len() > 2 * self.capacity {
            let Some((mac, update)) = self.order.pop_front() else {
                break;
            };
            let current = self.records.get(&mac).is_some_and(|e| e.update == update);
            if current && self.records.len() > self.capacity {
                if let Some(entry) = self.records.remove(&mac) {
                    if let Some(ip) = entry.facts.ip {
                        if self.by_ip.get(&ip) == Some(&mac) {
                            self.by_ip.remove(&ip);
                        }
                    }
                }
            } else if current {
                // Still wanted: back in line (its place is its last update's).
                self.order.push_back((mac, update));
                if self.order.len() <= 2 * self.capacity {
                    break;
                }
            }
        }
    }
}

impl Default for ClientRecords {
    fn default() -> Self {
        Self::new(Self::DEFAULT_CAPACITY)
    }
}

/// Every fact `new` has replaces `record`'s; extra facts are added.
fn merge(record: &mut ClientFacts, new: &ClientFacts) {
    fn take<T: Clone>(slot: &mut Option<T>, new: &Option<T>) {
        if new.is_some() {
            slot.clone_from(new);
        }
    }
    record.kind = new.kind;
    take(&mut record.arch, &new.arch);
    take(&mut record.guid, &new.guid);
    take(&mut record.serial, &new.serial);
    take(&mut record.asset, &new.asset);
    take(&mut record.manufacturer, &new.manufacturer);
    take(&mut record.product, &new.product);
    take(&mut record.hostname, &new.hostname);
    take(&mut record.ip, &new.ip);
    take(&mut record.ipxe, &new.ipxe);
    take(&mut record.relay, &new.relay);
    take(&mut record.vendor_class, &new.vendor_class);
    take(&mut record.user_class, &new.user_class);
    for (name, value) in &new.extra {
        record.extra.insert(name.clone(), value.clone());
    }
}

/// Every fact `facts` lacks is taken from `record` (not the stage: that is the asker's own).
fn complete(facts: &mut ClientFacts, record: &ClientFacts) {
    fn fill<T: Clone>(slot: &mut Option<T>, known: &Option<T>) {
        if slot.is_none() {
            slot.clone_from(known);
        }
    }
    fill(&mut facts.arch, &record.arch);
    fill(&mut facts.guid, &record.guid);
    fill(&mut facts.serial, &record.serial);
    fill(&mut facts.asset, &record.asset);
    fill(&mut facts.manufacturer, &record.manufacturer);
    fill(&mut facts.product, &record.product);
    fill(&mut facts.hostname, &record.hostname);
    fill(&mut facts.ip, &record.ip);
    fill(&mut facts.ipxe, &record.ipxe);
    fill(&mut facts.relay, &record.relay);
    fill(&mut facts.vendor_class, &record.vendor_class);
    fill(&mut facts.user_class, &record.user_class);
    for (name, value) in &record.extra {
        facts
            .extra
            .entry(name.clone())
            .or_insert_with(|| value.clone());
    }
}

/// A policy that records each client in a [`ClientRecords`] store and asks the wrapped policy
/// with the facts completed from the record. Made by [`ClientRecords::recording`].
#[derive(Debug)]
pub struct Recording<P> {
    records: ClientRecords,
    policy: P,
}

impl<P: Policy> Policy for Recording<P> {
    async fn boot(&self, facts: &ClientFacts) -> BootDecision {
        self.records.record_dhcp(facts);
        let mut known = facts.clone();
        self.records.fill(&mut known);
        self.policy.boot(&known).await
    }

    async fn script(&self, facts: &ClientFacts) -> ScriptDecision {
        self.records.record(facts);
        let mut known = facts.clone();
        self.records.fill(&mut known);
        self.policy.script(&known).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{block_on_ready, Arch, BootEveryone, IpxeFeature, IpxeFeatures, LinuxBoot};

    fn mac(n: u8) -> MacAddr {
        MacAddr([0x52, 0x54, 0, 0, 0, n])
    }

    fn with_https() -> IpxeFeatures {
        let mut features = IpxeFeatures::default();
        features.insert(IpxeFeature::HTTPS);
        features
    }

    #[test]
    fn each_stage_adds_to_one_record() {
        let records = ClientRecords::default();
        let mut dhcp = ClientFacts::new(mac(1), ClientKind::FirmwareIpxe);
        dhcp.arch = Some(Arch::X64_UEFI);
        dhcp.ipxe = Some(with_https());
        dhcp.vendor_class = Some("PXEClient:Arch:00007:UNDI:003010".into());
        records.record_dhcp(&dhcp);
        records.record_address(mac(1), Ipv4Addr::new(192, 0, 2, 10));

        let mut script = ClientFacts::new(mac(1), ClientKind::ChainloadedIpxe);
        script.serial = Some("SN-1".into());
        script.extra.insert("rack".into(), "a1".into());
        records.record(&script);
        records.fill(&mut script);
        assert!(
            script.supports_https(),
            "DHCP's option 175 reaches the script"
        );
        assert_eq!(script.arch, Some(Arch::X64_UEFI));
        assert_eq!(script.ip, Some(Ipv4Addr::new(192, 0, 2, 10)));
        // The last DHCP request came from the ROM's iPXE: so does this script request.
        assert_eq!(script.kind, ClientKind::FirmwareIpxe);

        // A later DHCP request sees what the script stage learned.
        let mut again = ClientFacts::new(mac(1), ClientKind::FirmwarePxe);
        records.fill(&mut again);
        assert_eq!(again.serial.as_deref(), Some("SN-1"));
        assert_eq!(again.extra.get("rack").map(String::as_str), Some("a1"));
        assert_eq!(
            again.kind,
            ClientKind::FirmwarePxe,
            "the stage is the asker's own"
        );
        assert_eq!(records.mac_of(Ipv4Addr::new(192, 0, 2, 10)), Some(mac(1)));
    }

    #[test]
    fn a_chainloaded_ipxe_stays_chainloaded() {
        let records = ClientRecords::default();
        let mut dhcp = ClientFacts::new(mac(2), ClientKind::ChainloadedIpxe);
        dhcp.ipxe = Some(IpxeFeatures::default());
        records.record_dhcp(&dhcp);
        let mut script = ClientFacts::new(mac(2), ClientKind::ChainloadedIpxe);
        records.fill(&mut script);
        assert_eq!(script.kind, ClientKind::ChainloadedIpxe);
    }

    #[test]
    fn facts_the_asking_stage_knows_win() {
        let records = ClientRecords::default();
        let mut dhcp = ClientFacts::new(mac(1), ClientKind::FirmwareIpxe);
        dhcp.ipxe = Some(with_https());
        records.record_dhcp(&dhcp);
        let mut http = ClientFacts::new(mac(1), ClientKind::ChainloadedIpxe);
        http.ipxe = Some(IpxeFeatures::default());
        records.fill(&mut http);
        assert!(!http.supports_https());
    }

    #[test]
    fn an_address_moves_with_its_client() {
        let records = ClientRecords::default();
        let ip = Ipv4Addr::new(192, 0, 2, 20);
        records.record_address(mac(1), ip);
        records.record_address(mac(2), ip);
        assert_eq!(records.mac_of(ip), Some(mac(2)));
        records.record_address(mac(2), Ipv4Addr::new(192, 0, 2, 21));
        assert_eq!(records.mac_of(ip), None, "mac 2 left it; mac 1 had lost it");
    }

    #[test]
    fn the_least_recently_heard_client_is_forgotten_when_full() {
        let records = ClientRecords::new(2);
        for n in 1..=2 {
            records.record_address(mac(n), Ipv4Addr::new(192, 0, 2, n));
        }
        // Client 1 speaks again: client 2 is now the oldest.
        records.record(&ClientFacts::new(mac(1), ClientKind::FirmwarePxe));
        records.record_address(mac(3), Ipv4Addr::new(192, 0, 2, 3));
        assert!(records.get(mac(1)).is_some());
        assert!(records.get(mac(2)).is_none());
        assert!(records.get(mac(3)).is_some());
        assert_eq!(records.mac_of(Ipv4Addr::new(192, 0, 2, 2)), None);
        assert_eq!(records.len(), 2);
        // Many updates of the same clients keep the queue bounded.
        for _ in 0..100 {
            records.record(&ClientFacts::new(mac(1), ClientKind::FirmwarePxe));
        }
        assert!(records.lock().order.len() <= 4);
        assert!(records.get(mac(3)).is_some());
    }

    #[test]
    fn a_handed_ipxe_is_remembered_for_its_time_and_other_exchanges() {
        let records = ClientRecords::default();
        let t0 = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000);
        let secs = std::time::Duration::from_secs;
        records.record_ipxe_handed(mac(1), 1, t0 + secs(300));
        assert!(records.ipxe_recently_handed(mac(1), 2, t0 + secs(299)));
        assert!(!records.ipxe_recently_handed(mac(1), 2, t0 + secs(300)));
        assert!(!records.ipxe_recently_handed(mac(2), 2, t0));
        // The exchange that handed out the binary is still the asking stage's.
        assert!(!records.ipxe_recently_handed(mac(1), 1, t0 + secs(1)));
        // The rest of the record is untouched, and the other stages' facts do not clear it.
        records.record(&ClientFacts::new(mac(1), ClientKind::ChainloadedIpxe));
        assert!(records.ipxe_recently_handed(mac(1), 2, t0 + secs(1)));
    }

    #[test]
    fn handed_ipxe_memory_stays_bounded_under_a_flood() {
        let records = ClientRecords::new(1000);
        let t0 = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000);
        let until = t0 + std::time::Duration::from_secs(300);
        for n in 0..20_000u32 {
            let [_, a, b, c] = n.to_be_bytes();
            records.record_ipxe_handed(MacAddr([2, 0, 0, a, b, c]), n, until);
            assert!(records.len() <= 1000);
        }
        assert!(records.lock().order.len() <= 2000);
        // The newest are kept: 19_999 is 0x4e1f.
        assert!(records.ipxe_recently_handed(MacAddr([2, 0, 0, 0, 0x4e, 0x1f]), 7, t0));
        assert!(!records.ipxe_recently_handed(MacAddr([2, 0, 0, 0, 0, 0]), 7, t0));
    }

    #[test]
    fn the_policy_sees_what_other_stages_told() {
        let records = ClientRecords::default();
        let policy = records.recording(BootEveryone(LinuxBoot::new("http://x/k")));
        let mut dhcp = ClientFacts::new(mac(1), ClientKind::FirmwareIpxe);
        dhcp.ipxe = Some(with_https());
        block_on_ready(policy.boot(&dhcp));
        let mut http = ClientFacts::new(mac(1), ClientKind::ChainloadedIpxe);
        records.fill(&mut http);
        assert!(http.supports_https());
    }
}
