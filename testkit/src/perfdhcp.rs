//! Kea's perfdhcp as a test peer: the arguments of one run, and its report.
//!
//! The tests that use it run modest rates for a few seconds: they are about correctness
//! (every client answered, no address given twice); `scripts/bench-dhcp` measures speed.

use crate::NetNs;

/// One perfdhcp run: DORA exchanges at `rate` per second from `clients` simulated clients for
/// `seconds`, direct on an interface (broadcast, every server on the segment answers) or with
/// relay addressing (perfdhcp is the relay, giaddr, and sends to one server's port 67).
#[derive(Debug, Clone)]
pub struct Perfdhcp {
    rate: u32,
    clients: u32,
    seconds: u32,
    base_mac: Option<String>,
    unique: bool,
    local: String,
    server: Option<String>,
}

impl Perfdhcp {
    /// Broadcasts on `interface`.
    pub fn direct(interface: &str) -> Self {
        Self::new(interface, None)
    }

    /// Relay addressing from `relay` (an address of the client namespace) to `server`.
    pub fn relayed(relay: &str, server: &str) -> Self {
        Self::new(relay, Some(server))
    }

    fn new(local: &str, server: Option<&str>) -> Self {
        Self {
            rate: 100,
            clients: 500,
            seconds: 2,
            base_mac: None,
            unique: false,
            local: local.to_string(),
            server: server.map(str::to_string),
        }
    }

    /// Exchanges started per second (default 100).
    #[must_use]
    pub fn rate(mut self, per_second: u32) -> Self {
        self.rate = per_second;
        self
    }

    /// Simulated clients (default 500).
    #[must_use]
    pub fn clients(mut self, clients: u32) -> Self {
        self.clients = clients;
        self
    }

    /// How long the run lasts (default 2 s).
    #[must_use]
    pub fn seconds(mut self, seconds: u32) -> Self {
        self.seconds = seconds;
        self
    }

    /// The MAC the simulated clients' addresses start from (runs at once use distinct ones).
    #[must_use]
    pub fn base_mac(mut self, mac: &str) -> Self {
        self.base_mac = Some(mac.to_string());
        self
    }

    /// perfdhcp's address-uniqueness check (`-u`): meaningful with one server answering.
    #[must_use]
    pub fn unique(mut self) -> Self {
        self.unique = true;
        self
    }

    /// The command-line arguments.
    pub fn args(&self) -> Vec<String> {
        let mut args: Vec<String> = vec!["-4".into(), "-r".into(), self.rate.to_string()];
        args.extend(["-R".into(), self.clients.to_string()]);
        args.extend(["-p".into(), self.seconds.to_string()]);
        if let Some(mac) = &self.base_mac {
            args.extend(["-b".into(), format!("mac={mac}")]);
        }
        if self.unique {
            args.push("-u".into());
        }
        args.extend(["-l".into(), self.local.clone()]);
        args.extend(self.server.clone());
        args
    }

    /// Runs perfdhcp in `ns` to the end and reads its report (panics when it sent nothing).
    pub fn run(&self, ns: &NetNs) -> PerfdhcpReport {
        let output = ns
            .command("perfdhcp")
            .args(self.args())
            .output()
            .expect("perfdhcp runs");
        let text = String::from_utf8_lossy(&output.stdout).into_owned()
            + &String::from_utf8_lossy(&output.stderr);
        let report = PerfdhcpReport::parse(&text);
        assert!(report.sent > 0, "perfdhcp sent nothing:\n{text}");
        report
    }
}

/// perfdhcp's counters, summed over its exchange types.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PerfdhcpReport {
    /// Packets sent.
    pub sent: u64,
    /// Packets received.
    pub received: u64,
    /// Packets perfdhcp counted as dropped (no answer within its drop time).
    pub drops: u64,
    /// Addresses handed to more than one client (counted with [`Perfdhcp::unique`]).
    pub non_unique: u64,
}

impl PerfdhcpReport {
    /// Reads perfdhcp's report text.
    pub fn parse(text: &str) -> Self {
        let mut report = Self::default();
        for line in text.lines() {
            let number = |prefix: &str| {
                line.trim()
                    .strip_prefix(prefix)
                    .and_then(|rest| rest.trim().parse::<u64>().ok())
            };
            if let Some(n) = number("sent packets:") {
                report.sent += n;
            } else if let Some(n) = number("received packets:") {
                report.received += n;
            } else if let Some(n) = number("drops:") {
                report.drops += n;
            } else if let Some(n) = number("non unique addresses:") {
                report.non_unique += n;
            }
        }
        report
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_and_report() {
        let run = Perfdhcp::relayed("198.18.0.2", "198.18.0.1")
            .rate(30)
            .clients(2000)
            .seconds(3)
            .base_mac("00:0c:01:00:00:00")
            .unique();
        assert_eq!(
            run.args().join(" "),
            "-4 -r 30 -R 2000 -p 3 -b mac=00:0c:01:00:00:00 -u -l 198.18.0.2 198.18.0.1"
        );
        assert_eq!(
            Perfdhcp::direct("eth0").args().join(" "),
            "-4 -r 100 -R 500 -p 2 -l eth0"
        );
        let text = "***Statistics for: DISCOVER-OFFER***\nsent packets: 10\nreceived packets: 9\n\
                    drops: 1\n***Statistics for: REQUEST-ACK***\nsent packets: 9\n\
                    received packets: 9\ndrops: 0\nnon unique addresses: 0\n";
        assert_eq!(
            PerfdhcpReport::parse(text),
            PerfdhcpReport {
                sent: 19,
                received: 18,
                drops: 1,
                non_unique: 0
            }
        );
    }
}
