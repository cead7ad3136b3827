//! A ready policy from a TOML file: named profiles (what to boot) and groups (which clients
//! get which profile), in the manner of matchbox.
//!
//! ```toml
//! # What to boot. Exactly one of kernel / chain / sanboot / iscsi / action per profile.
//! [profiles.debian]
//! kernel = "debian/vmlinuz"          # absolute http:// URL, or relative to the script URL
//! initrds = ["debian/initrd.img"]
//! cmdline = "console=ttyS0 auto=true"
//!
//! [profiles.secure]                 # x64 UEFI with Secure Boot: shim, GRUB, a signed kernel
//! loader = "grub"                    # "ipxe" (the default), "grub" or "pxelinux"
//! kernel = "debian/vmlinuz"
//! cmdline = "console=ttyS0"
//!
//! [profiles.rescue]
//! chain = "http://192.0.2.1/rescue.ipxe"
//!
//! [profiles.diskless]                # an iSCSI disk (port 3260 and LUN 0 unless given)
//! iscsi.server = "192.0.2.1"
//! iscsi.target = "iqn.2026-12.example.san:disk1"
//! iscsi.lun = 0
//! iscsi.initiator = "iqn.2026-12.example.san:web1" # the name the client logs in with
//!
//! [profiles.disk]
//! action = "exit"                    # or "ignore": stay silent at DHCP, say so at HTTP
//!
//! # Which clients get which profile. A group matches when every selector it has matches
//! # (within one selector, any listed value); of all matching groups the one with the most
//! # selectors wins, and on a tie the one written first.
//! [[groups]]
//! name = "web"
//! profile = "debian"
//! mac = ["52:54:00:12:34:56"]
//! arch = [7, 16]
//! labels = { rack = "a1" }           # facts from the iPXE query or the application
//!
//! [[groups]]
//! name = "everyone else"
//! profile = "disk"                   # no selector: matches every client
//! ```
//!
//! Stages: a client is matched twice, at DHCP (what firmware and iPXE's DHCP tell: MAC, GUID,
//! arch) and when iPXE fetches its script (also serial, asset, hostname and labels from its
//! query). `arch` is the machine's PXE code at both (UEFI HTTP Boot's 16 counts as 7). A
//! group that selects by `serial` or `labels` cannot match at DHCP; a client it may still take
//! (its other selectors match, and its profile boots) is chainloaded to iPXE at DHCP even when
//! no other group matches, so that the script stage decides. A client that no group can take
//! gets no answer at DHCP.
//!
//! A group or profile may set `ipxe_binary = "ipxe.efi"` to replace the default iPXE build
//! for its clients. A profile may set `loader = "grub"` (shim + GRUB, for x64 UEFI clients:
//! the Secure Boot path) or `loader = "pxelinux"` (BIOS clients), default `"ipxe"`: its
//! clients get that loader at DHCP and the profile rendered as that loader's config
//! ([`crate::grub`], [`crate::pxelinux`]); a client whose firmware cannot run it keeps iPXE,
//! and the log says so. A top-level `[server]` table is left to the program that loads the file
//! (netboot keeps its server settings there), so one site file can hold both. Errors name the
//! file, the line and the field.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::Path;

use serde::Deserialize;
use toml::Spanned;

use crate::{
    Arch, BootDecision, ClientFacts, ClientGuid, IpxeBinary, IscsiBoot, LinuxBoot, Loader, MacAddr,
    Policy, ScriptDecision, TableError,
};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTable {
    #[serde(default)]
    profiles: BTreeMap<String, Spanned<RawProfile>>,
    #[serde(default)]
    groups: Vec<Spanned<RawGroup>>,
    /// The program's own settings (netboot's server settings), left to the program.
    #[serde(default)]
    #[allow(dead_code)]
    server: Option<toml::Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProfile {
    kernel: Option<String>,
    #[serde(default)]
    initrds: Vec<String>,
    #[serde(default)]
    cmdline: String,
    chain: Option<String>,
    sanboot: Option<String>,
    iscsi: Option<Spanned<RawIscsi>>,
    action: Option<Spanned<String>>,
    ipxe_binary: Option<String>,
    loader: Option<Spanned<String>>,
}

/// `iscsi = { server = "192.0.2.1", target = "iqn.…", lun = 0, initiator = "iqn.…" }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawIscsi {
    server: String,
    port: Option<u16>,
    #[serde(default)]
    lun: u8,
    target: String,
    initiator: Option<String>,
}

impl RawIscsi {
    fn disk(&self) -> Result<IscsiBoot, crate::IscsiError> {
        let mut disk = IscsiBoot::new(&self.server, &self.target)?.lun(self.lun);
        if let Some(port) = self.port {
            disk = disk.port(port);
        }
        match &self.initiator {
            Some(initiator) => disk.initiator(initiator),
            None => Ok(disk),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGroup {
    name: Option<String>,
    profile: Spanned<String>,
    #[serde(default)]
    mac: Vec<Spanned<String>>,
    #[serde(default)]
    guid: Vec<Spanned<String>>,
    #[serde(default)]
    serial: Vec<String>,
    #[serde(default)]
    arch: Vec<u16>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    ipxe_binary: Option<String>,
}

/// The boot target fields that a table profile and a delegate's answer share.
pub(crate) struct ProfileTarget<'a> {
    pub(crate) kernel: Option<&'a str>,
    pub(crate) initrds: &'a [String],
    pub(crate) cmdline: &'a str,
    pub(crate) chain: Option<&'a str>,
    pub(crate) sanboot: Option<&'a str>,
    pub(crate) iscsi: Option<IscsiBoot>,
    pub(crate) action: Option<&'a str>,
}

/// Why a [`ProfileTarget`] names no single decision.
pub(crate) enum ProfileError {
    /// `action` is not `exit` or `ignore`.
    UnknownAction(String),
    /// Zero or several of kernel / chain / sanboot / iscsi / action.
    NotExactlyOne(String),
}

impl ProfileTarget<'_> {
    /// The script decision, and whether the client is to be ignored at the DHCP stage too.
    pub(crate) fn decision(&self) -> Result<(ScriptDecision, bool), ProfileError> {
        let mut choices = Vec::new();
        if let Some(kernel) = self.kernel {
            let mut linux = LinuxBoot::new(kernel).cmdline(self.cmdline);
            linux.initrds = self.initrds.to_vec();
            choices.push((ScriptDecision::Linux(linux), false));
        }
        if let Some(url) = self.chain {
            choices.push((ScriptDecision::Chain(url.to_string()), false));
        }
        if let Some(url) = self.sanboot {
            choices.push((ScriptDecision::Sanboot(url.to_string()), false));
        }
        if let Some(disk) = &self.iscsi {
            choices.push((ScriptDecision::Iscsi(disk.clone()), false));
        }
        match self.action {
            None => {}
            Some("exit") => choices.push((ScriptDecision::ExitToDisk, false)),
            Some("ignore") => choices.push((ScriptDecision::Ignore, true)),
            Some(other) => {
                return Err(ProfileError::UnknownAction(format!(
                    "unknown action {other:?}; expected \"exit\" or \"ignore\""
                )))
            }
        }
        if choices.len() != 1 {
            return Err(ProfileError::NotExactlyOne(format!(
                "a profile needs exactly one of kernel, chain, sanboot, iscsi, action; found {}",
                choices.len()
            )));
        }
        Ok(choices.remove(0))
    }
}

/// What a profile boots.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Profile {
    script: ScriptDecision,
    /// `action = "ignore"`: stay silent at the DHCP stage too.
    ignore: bool,
    ipxe_binary: Option<IpxeBinary>,
    /// `loader = "grub" | "pxelinux" | "ipxe"`; `None` is iPXE.
    loader: Option<Loader>,
}

/// A group: selectors and the profile they lead to.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Group {
    name: String,
    profile: String,
    macs: Vec<MacAddr>,
    guids: Vec<ClientGuid>,
    serials: Vec<String>,
    arches: Vec<Arch>,
    labels: BTreeMap<String, String>,
    ipxe_binary: Option<IpxeBinary>,
}

impl Group {
    /// Each selector kind: whether the group has it, whether `client` matches it, and whether
    /// only iPXE's script request tells the fact (serial, labels: never known at DHCP).
    fn selectors(&self, client: &ClientFacts) -> [Selector; 5] {
        [
            Selector {
                present: !self.macs.is_empty(),
                matches: self.macs.contains(&client.mac),
                script_stage_only: false,
            },
            Selector {
                present: !self.guids.is_empty(),
                matches: client.guid.is_some_and(|g| self.guids.contains(&g)),
                script_stage_only: false,
            },
            Selector {
                present: !self.serials.is_empty(),
                matches: client
                    .serial
                    .as_ref()
                    .is_some_and(|s| self.serials.contains(s)),
                script_stage_only: true,
            },
            Selector {
                present: !self.arches.is_empty(),
                matches: client.arch.is_some_and(|a| self.arches.contains(&a)),
                script_stage_only: false,
            },
            Selector {
                present: !self.labels.is_empty(),
                matches: self
                    .labels
                    .iter()
                    .all(|(k, v)| client.extra.get(k) == Some(v)),
                script_stage_only: true,
            },
        ]
    }

    /// Whether the group selects by facts only iPXE's script request tells, and its other
    /// selectors (MAC, GUID, arch), known from DHCP on, match `client`: a client that may fall
    /// into it once the script stage knows more.
    fn may_match_later(&self, client: &ClientFacts) -> bool {
        let selectors = self.selectors(client);
        selectors.iter().any(|s| s.present && s.script_stage_only)
            && selectors
                .iter()
                .all(|s| !s.present || s.script_stage_only || s.matches)
    }

    /// The number of selectors this group has, or `None` when one of them does not match.
    fn score(&self, client: &ClientFacts) -> Option<usize> {
        let selectors = self.selectors(client);
        selectors
            .iter()
            .all(|s| !s.present || s.matches)
            .then(|| selectors.iter().filter(|s| s.present).count())
    }
}

/// One selector kind of a group, for one client.
#[derive(Debug, Clone, Copy)]
struct Selector {
    present: bool,
    matches: bool,
    script_stage_only: bool,
}

/// The static-table policy: profiles and groups loaded from TOML (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TablePolicy {
    profiles: BTreeMap<String, Profile>,
    groups: Vec<Group>,
}

impl TablePolicy {
    /// Loads and validates a table file.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, TableError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| TableError::Io {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// Parses table text; `path` only names the source in errors.
    pub fn parse(text: &str, path: impl AsRef<Path>) -> Result<Self, TableError> {
        let path = path.as_ref();
        let invalid = |span: Option<std::ops::Range<usize>>, field: String, message: String| {
            TableError::Invalid {
                path: path.to_owned(),
                line: span.map_or(0, |s| line_of(text, s.start)),
                field,
                message,
            }
        };
        let raw: RawTable = toml::from_str(text)
            .map_err(|e| invalid(e.span(), "-".into(), e.message().trim().to_string()))?;

        let mut profiles = BTreeMap::new();
        for (name, spanned) in &raw.profiles {
            let field = format!("profiles.{name}");
            let profile = spanned.get_ref();
            let action = profile.action.as_ref();
            let iscsi = match &profile.iscsi {
                Some(raw) => Some(raw.get_ref().disk().map_err(|e| {
                    invalid(Some(raw.span()), format!("{field}.iscsi"), e.to_string())
                })?),
                None => None,
            };
            let target = ProfileTarget {
                kernel: profile.kernel.as_deref(),
                initrds: &profile.initrds,
                cmdline: &profile.cmdline,
                chain: profile.chain.as_deref(),
                sanboot: profile.sanboot.as_deref(),
                iscsi,
                action: action.map(|a| a.get_ref().as_str()),
            };
            let (script, ignore) = target.decision().map_err(|e| match e {
                ProfileError::UnknownAction(message) => invalid(
                    action.map(Spanned::span),
                    format!("{field}.action"),
                    message,
                ),
                ProfileError::NotExactlyOne(message) => {
                    invalid(Some(spanned.span()), field.clone(), message)
                }
            })?;
            let loader = match &profile.loader {
                Some(loader) => Some(loader.get_ref().parse::<Loader>().map_err(|message| {
                    invalid(Some(loader.span()), format!("{field}.loader"), message)
                })?),
                None => None,
            };
            // A profile its loader cannot carry exactly is an error now, not at boot time.
            let check = match loader {
                Some(Loader::Grub) => crate::grub::render(&script).map(drop),
                Some(Loader::Pxelinux) => {
                    // lpxelinux's HTTP form accepts the most (absolute URLs as well).
                    let files = crate::pxelinux::Files::Http {
                        base: "http://pxe".into(),
                    };
                    crate::pxelinux::render(&script, &files).map(drop)
                }
                _ => Ok(()),
            };
            if let Err(e) = check {
                return Err(invalid(Some(spanned.span()), field, e.to_string()));
            }
            profiles.insert(
                name.clone(),
                Profile {
                    script,
                    ignore,
                    ipxe_binary: profile.ipxe_binary.clone().map(IpxeBinary::named),
                    loader,
                },
            );
        }

        let mut groups = Vec::new();
        for (index, spanned) in raw.groups.iter().enumerate() {
            let raw_group = spanned.get_ref();
            let field = format!("groups[{index}]");
            let profile = raw_group.profile.get_ref();
            if !profiles.contains_key(profile) {
                return Err(invalid(
                    Some(raw_group.profile.span()),
                    format!("{field}.profile"),
                    format!("no profile named {profile:?}"),
                ));
            }
            let macs = raw_group
                .mac
                .iter()
                .map(|m| {
                    m.get_ref()
                        .parse::<MacAddr>()
                        .map_err(|e| invalid(Some(m.span()), format!("{field}.mac"), e.to_string()))
                })
                .collect::<Result<_, _>>()?;
            let guids = raw_group
                .guid
                .iter()
                .map(|g| {
                    let guid = g.get_ref().parse::<ClientGuid>().map_err(|e| {
                        invalid(Some(g.span()), format!("{field}.guid"), e.to_string())
                    })?;
                    if guid.is_placeholder() {
                        // Clients never present placeholders (they are dropped from the
                        // facts), so such a selector could never match: say so now.
                        return Err(invalid(
                            Some(g.span()),
                            format!("{field}.guid"),
                            format!("{guid} is a placeholder GUID that identifies no machine"),
                        ));
                    }
                    Ok(guid)
                })
                .collect::<Result<_, _>>()?;
            groups.push(Group {
                name: raw_group
                    .name
                    .clone()
                    .unwrap_or_else(|| format!("group {index}")),
                profile: profile.clone(),
                macs,
                guids,
                serials: raw_group.serial.clone(),
                arches: raw_group.arch.iter().copied().map(Arch).collect(),
                labels: raw_group.labels.clone(),
                ipxe_binary: raw_group.ipxe_binary.clone().map(IpxeBinary::named),
            });
        }
        Ok(Self { profiles, groups })
    }

    /// The group that matches `client` best (most selectors; the first written on a tie) and
    /// its profile, or `None` when no group matches.
    fn lookup(&self, client: &ClientFacts) -> Option<(&Group, &Profile)> {
        let (_, _, group) = self.best(client)?;
        Some((group, self.profiles.get(&group.profile)?))
    }

    /// The matching group with the most selectors (the first written on a tie), with its
    /// position and score.
    fn best(&self, client: &ClientFacts) -> Option<(usize, usize, &Group)> {
        let mut best: Option<(usize, usize, &Group)> = None;
        for (index, group) in self.groups.iter().enumerate() {
            if let Some(score) = group.score(client) {
                if best.is_none_or(|(_, best_score, _)| score > best_score) {
                    best = Some((index, score, group));
                }
            }
        }
        best
    }

    /// Whether a group selecting by script-stage facts (serial, labels) may still take
    /// `client` from the group that matches now, to a profile that boots: it may match
    /// later, and it would win (more selectors, or as many and written first).
    fn may_boot_later(&self, client: &ClientFacts) -> bool {
        let best = self.best(client);
        self.groups.iter().enumerate().any(|(index, group)| {
            let wins = best.is_none_or(|(best_index, best_score, _)| {
                // What its score would be once it matches: every selector it has.
                let score = group.selectors(client).iter().filter(|s| s.present).count();
                score > best_score || (score == best_score && index < best_index)
            });
            wins && group.may_match_later(client)
                && self
                    .profiles
                    .get(&group.profile)
                    .is_some_and(|profile| !profile.ignore)
        })
    }

    /// Each profile's name and what it boots, in name order: for checks at start-up (for
    /// example, that relative kernel URLs have a directory to be served from).
    pub fn profile_decisions(&self) -> impl Iterator<Item = (&str, &ScriptDecision)> + '_ {
        self.profiles
            .iter()
            .map(|(name, profile)| (name.as_str(), &profile.script))
    }

    /// The loaders other than iPXE that profiles name (`loader = …`), each once, for a server
    /// to know which loaders' files it needs.
    pub fn loaders(&self) -> Vec<Loader> {
        let mut loaders: Vec<Loader> = Vec::new();
        for loader in self.profiles.values().filter_map(|p| p.loader) {
            if loader != Loader::Ipxe && !loaders.contains(&loader) {
                loaders.push(loader);
            }
        }
        loaders
    }

    /// The name of the group `client` falls into, for logs.
    pub fn group_of(&self, client: &ClientFacts) -> Option<&str> {
        self.lookup(client).map(|(group, _)| group.name.as_str())
    }
}

impl Policy for TablePolicy {
    fn boot<'a>(
        &'a self,
        client: &'a ClientFacts,
    ) -> impl Future<Output = BootDecision> + Send + 'a {
        // At DHCP the serial and labels are not known yet: a client that a group selecting by
        // them may still take (to a profile that boots) gets iPXE, so that the script stage
        // can decide, rather than the silence its DHCP-stage facts alone would earn.
        let decision = match self.lookup(client) {
            Some((group, profile)) if !profile.ignore => {
                let ipxe = match group.ipxe_binary.as_ref().or(profile.ipxe_binary.as_ref()) {
                    Some(binary) => BootDecision::Ipxe(binary.clone()),
                    None => BootDecision::chainload_for(client.arch),
                };
                match profile.loader {
                    None | Some(Loader::Ipxe) => ipxe,
                    Some(loader) => match BootDecision::for_loader(loader, client.arch) {
                        Ok(decision) => decision,
                        Err(_) => {
                            tracing::info!(
                                client = %client.mac,
                                arch = ?client.arch,
                                group = %group.name,
                                "profile {} asks for {loader}, which this client's firmware cannot run: it keeps iPXE",
                                group.profile
                            );
                            ipxe
                        }
                    },
                }
            }
            _ if self.may_boot_later(client) => BootDecision::chainload_for(client.arch),
            _ => BootDecision::Ignore,
        };
        std::future::ready(decision)
    }

    fn script<'a>(
        &'a self,
        client: &'a ClientFacts,
    ) -> impl Future<Output = ScriptDecision> + Send + 'a {
        let decision = self
            .lookup(client)
            .map_or(ScriptDecision::Ignore, |(_, profile)| {
                profile.script.clone()
            });
        std::future::ready(decision)
    }
}

/// The 1-based line that byte `offset` of `text` is on.
fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()
        .iter()
        .take(offset)
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block_on_ready as run;
    use crate::ClientKind;

    #[test]
    fn groups_by_serial_chainload_at_dhcp_and_decide_at_the_script() {
        let table = TablePolicy::parse(
            r#"
[profiles.install]
kernel = "vmlinuz"
cmdline = "install"
[profiles.quiet]
action = "ignore"
[[groups]]
profile = "install"
serial = ["SN-1"]
[[groups]]
profile = "install"
serial = ["SN-2"]
arch = [0]
[[groups]]
profile = "quiet"
labels = { rack = "r9" }
"#,
            "t.toml",
        )
        .unwrap();
        let mut uefi = ClientFacts::new(MacAddr([2, 0, 0, 0, 0, 1]), ClientKind::FirmwarePxe);
        uefi.arch = Some(Arch::X64_UEFI);
        // No group matches at DHCP, but the serial group may: iPXE, so the script decides.
        assert_eq!(
            run(table.boot(&uefi)),
            BootDecision::chainload_for(uefi.arch)
        );
        let mut ipxe = uefi.clone();
        ipxe.kind = ClientKind::ChainloadedIpxe;
        ipxe.serial = Some("SN-1".into());
        assert!(
            matches!(run(table.script(&ipxe)), ScriptDecision::Linux(l) if l.cmdline == "install")
        );
        ipxe.serial = Some("SN-3".into());
        assert_eq!(run(table.script(&ipxe)), ScriptDecision::Ignore);
        // A group that may take the client only to ignore it does not chainload it.
        let quiet = TablePolicy::parse(
            "[profiles.quiet]\naction = \"ignore\"\n[[groups]]\nprofile = \"quiet\"\nserial = [\"SN-1\"]\n",
            "q.toml",
        )
        .unwrap();
        assert_eq!(run(quiet.boot(&uefi)), BootDecision::Ignore);
        // Selectors known at DHCP still rule out: the BIOS-only serial group and the UEFI
        // client never meet, so only the first group keeps it.
        let bios_only = TablePolicy::parse(
            "[profiles.install]\nkernel = \"vmlinuz\"\n[[groups]]\nprofile = \"install\"\nserial = [\"SN-2\"]\narch = [0]\n",
            "b.toml",
        )
        .unwrap();
        assert_eq!(run(bios_only.boot(&uefi)), BootDecision::Ignore);
    }

    const TABLE: &str = r#"
[profiles.debian]
kernel = "debian/vmlinuz"
initrds = ["debian/initrd.img"]
cmdline = "console=ttyS0"

[profiles.disk]
action = "exit"

[profiles.quiet]
action = "ignore"

[profiles.efi-special]
chain = "http://192.0.2.1/special.ipxe"
ipxe_binary = "ipxe.efi"

[[groups]]
name = "web"
profile = "debian"
mac = ["52:54:00:00:00:01"]
arch = [7]

[[groups]]
name = "web-any-arch"
profile = "disk"
mac = ["52:54:00:00:00:01"]

[[groups]]
name = "rack a1"
profile = "efi-special"
labels = { rack = "a1" }

[[groups]]
name = "lab guid"
profile = "quiet"
guid = ["9e0c1ab0-0000-4000-8000-000000000001"]

[[groups]]
name = "everyone"
profile = "disk"
"#;

    fn client(last: u8) -> ClientFacts {
        ClientFacts::new(
            MacAddr([0x52, 0x54, 0, 0, 0, last]),
            ClientKind::FirmwarePxe,
        )
    }

    #[test]
    fn most_specific_group_wins() {
        let table = TablePolicy::parse(TABLE, "t.toml").unwrap();
        let mut web = client(1);
        web.arch = Some(Arch::X64_UEFI);
        assert_eq!(table.group_of(&web), Some("web"));
        assert!(matches!(run(table.script(&web)), ScriptDecision::Linux(l)
            if l.kernel == "debian/vmlinuz" && l.initrds == ["debian/initrd.img"]
                && l.cmdline == "console=ttyS0"));
        assert_eq!(
            run(table.boot(&web)),
            BootDecision::Ipxe(IpxeBinary::SNPONLY_EFI)
        );

        web.arch = Some(Arch::X86_BIOS);
        assert_eq!(table.group_of(&web), Some("web-any-arch"));
        assert_eq!(run(table.script(&web)), ScriptDecision::ExitToDisk);

        let mut racked = client(9);
        racked.extra.insert("rack".into(), "a1".into());
        assert_eq!(
            run(table.boot(&racked)),
            BootDecision::Ipxe(IpxeBinary::named("ipxe.efi"))
        );

        let mut lab = client(7);
        lab.guid = "9e0c1ab0-0000-4000-8000-000000000001".parse().ok();
        // "rack a1" (as many selectors, written first) may still take it at the script
        // stage: iPXE at DHCP, and the script stage decides.
        assert_eq!(
            run(table.boot(&lab)),
            BootDecision::Ipxe(IpxeBinary::UNDIONLY)
        );
        assert_eq!(run(table.script(&lab)), ScriptDecision::Ignore);
        lab.extra.insert("rack".into(), "a1".into());
        assert_eq!(table.group_of(&lab), Some("rack a1"));

        assert_eq!(table.group_of(&client(42)), Some("everyone"));
    }

    #[test]
    fn no_match_is_ignored() {
        let table = TablePolicy::parse(
            "[profiles.a]\naction = \"exit\"\n[[groups]]\nprofile = \"a\"\nmac = [\"52:54:00:00:00:02\"]\n",
            "t.toml",
        )
        .unwrap();
        assert_eq!(run(table.boot(&client(1))), BootDecision::Ignore);
        assert_eq!(run(table.script(&client(1))), ScriptDecision::Ignore);
        assert_eq!(run(table.script(&client(2))), ScriptDecision::ExitToDisk);
    }

    fn error_of(text: &str) -> (usize, String, String) {
        match TablePolicy::parse(text, "site.toml").unwrap_err() {
            TableError::Invalid {
                path,
                line,
                field,
                message,
            } => {
                assert_eq!(path, Path::new("site.toml"));
                (line, field, message)
            }
            other => panic!("unexpected {other}"),
        }
    }

    #[test]
    fn errors_name_line_and_field() {
        let (line, field, message) =
            error_of("[profiles.a]\naction = \"exit\"\n\n[[groups]]\nprofile = \"b\"\n");
        assert_eq!((line, field.as_str()), (5, "groups[0].profile"));
        assert!(message.contains("no profile named \"b\""), "{message}");

        let (line, field, _) = error_of(
            "[profiles.a]\naction = \"exit\"\n[[groups]]\nprofile = \"a\"\nmac = [\"zz\"]\n",
        );
        assert_eq!((line, field.as_str()), (5, "groups[0].mac"));

        let (line, field, message) = error_of("[profiles.a]\naction = \"reboot\"\n");
        assert_eq!((line, field.as_str()), (2, "profiles.a.action"));
        assert!(message.contains("unknown action"), "{message}");

        let (line, _, message) = error_of("[profiles.a]\nkernal = \"x\"\n");
        assert_eq!(line, 2);
        assert!(message.contains("kernal"), "{message}");

        let (_, field, message) = error_of("[profiles.a]\nkernel = \"k\"\nchain = \"http://x/\"\n");
        assert_eq!(field, "profiles.a");
        assert!(message.contains("exactly one"), "{message}");

        let (line, field, message) = error_of(
            "[profiles.a]\naction = \"exit\"\n[[groups]]\nprofile = \"a\"\nguid = [\"ffffffff-ffff-ffff-ffff-ffffffffffff\"]\n",
        );
        assert_eq!((line, field.as_str()), (5, "groups[0].guid"));
        assert!(message.contains("placeholder"), "{message}");
    }

    #[test]
    fn iscsi_profiles_carry_target_lun_and_initiator() {
        let table = TablePolicy::parse(
            r#"
[profiles.san]
iscsi = { server = "192.0.2.1", target = "iqn.2026-12.test.pxe:disk", lun = 2, initiator = "iqn.2026-12.test.pxe:web1" }
[[groups]]
profile = "san"
"#,
            "t.toml",
        )
        .unwrap();
        let expected = IscsiBoot::new("192.0.2.1", "iqn.2026-12.test.pxe:disk")
            .unwrap()
            .lun(2)
            .initiator("iqn.2026-12.test.pxe:web1")
            .unwrap();
        assert_eq!(
            run(table.script(&client(1))),
            ScriptDecision::Iscsi(expected)
        );

        let (line, field, message) = error_of(
            "[profiles.a]\n\niscsi = { server = \"192.0.2.1\", target = \"IQN.2026-12.x\" }\n",
        );
        assert_eq!((line, field.as_str()), (3, "profiles.a.iscsi"));
        assert!(message.contains("not an iSCSI name"), "{message}");
        let (_, _, message) =
            error_of("[profiles.a]\niscsi = { server = \"192.0.2.1\", target = \"iqn.2026-12.x\", lun = 256 }\n");
        assert!(
            message.contains("lun") || message.contains("256"),
            "{message}"
        );
        let (_, field, message) = error_of(
            "[profiles.a]\nloader = \"grub\"\niscsi = { server = \"192.0.2.1\", target = \"iqn.2026-12.x\" }\n",
        );
        assert_eq!(field, "profiles.a");
        assert!(message.contains("iSCSI"), "{message}");
    }

    #[test]
    fn profiles_choose_their_loader() {
        let table = TablePolicy::parse(
            r#"
[profiles.secure]
loader = "grub"
kernel = "vmlinuz"
cmdline = "console=ttyS0 pxe.hash=#x"
[profiles.legacy]
loader = "pxelinux"
kernel = "vmlinuz"
[[groups]]
profile = "secure"
mac = ["52:54:00:00:00:01"]
[[groups]]
profile = "legacy"
mac = ["52:54:00:00:00:02"]
"#,
            "t.toml",
        )
        .unwrap();
        let mut secure = client(1);
        secure.arch = Some(Arch::X64_UEFI);
        assert_eq!(run(table.boot(&secure)), BootDecision::ShimGrub);
        // BIOS firmware cannot run shim: it keeps iPXE.
        secure.arch = Some(Arch::X86_BIOS);
        assert_eq!(
            run(table.boot(&secure)),
            BootDecision::Ipxe(IpxeBinary::UNDIONLY)
        );
        assert_eq!(table.loaders(), [Loader::Pxelinux, Loader::Grub]);
        let mut legacy = client(2);
        assert_eq!(run(table.boot(&legacy)), BootDecision::Pxelinux);
        legacy.arch = Some(Arch::X64_UEFI);
        assert_eq!(
            run(table.boot(&legacy)),
            BootDecision::Ipxe(IpxeBinary::SNPONLY_EFI)
        );

        let (line, field, message) =
            error_of("[profiles.a]\nloader = \"syslinux\"\nkernel = \"k\"\n");
        assert_eq!((line, field.as_str()), (2, "profiles.a.loader"));
        assert!(message.contains("ipxe, grub or pxelinux"), "{message}");
        // What GRUB would alter is refused when the table is read.
        let (_, field, message) =
            error_of("[profiles.a]\nloader = \"grub\"\nkernel = \"k\"\ncmdline = \"a='b'\"\n");
        assert_eq!(field, "profiles.a");
        assert!(message.contains("grub"), "{message}");
    }

    #[test]
    fn missing_file_names_the_path() {
        let err = TablePolicy::load("/nonexistent/pxe-table.toml").unwrap_err();
        assert_eq!(err.to_string(), "cannot read /nonexistent/pxe-table.toml");
        // The cause stays attached, for `{:#}` and error reporters.
        let source = std::error::Error::source(&err).expect("the io error");
        assert!(source.to_string().contains("No such file"), "{source}");
    }
}
