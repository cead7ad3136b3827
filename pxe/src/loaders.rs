//! Serving loaders other than iPXE over TFTP: shim + GRUB (x64 UEFI, Secure Boot) and
//! `pxelinux.0` (BIOS). The DHCP stage hands the loader's file (`ServedLoaders`); the TFTP
//! stage serves the loaders' files, each client's config rendered from the policy's decision
//! (`LoaderSource`), and the boot files the HTTP stage serves, under the same paths.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use bytes::Bytes;
use pxe_policy::pxelinux::{ConfigName, Files};
use pxe_policy::{
    grub, pxelinux, Arch, BootDecision, ClientFacts, ClientKind, ClientRecords, Loader, Policy,
    ScriptDecision, SharedPolicy,
};
use pxe_tftp::{Directory, FileSource};

/// The name shim is served under at the TFTP root (the DHCP reply's boot file).
pub const SHIM_FILE: &str = "shimx64.efi";
/// The name shim loads GRUB by, from the boot file's directory.
pub const GRUB_FILE: &str = "grubx64.efi";
/// The config Debian's signed network GRUB reads (its prefix is `/grub`).
pub const GRUB_CONFIG: &str = "grub/grub.cfg";
/// PXELINUX for BIOS firmware, over TFTP.
pub const PXELINUX_FILE: &str = "pxelinux.0";
/// PXELINUX's core module, loaded from `pxelinux.0`'s directory.
pub const LDLINUX_FILE: &str = "ldlinux.c32";
/// The URL path `lpxelinux.0` and its `ldlinux.c32` are served under over HTTP; its configs
/// are answered under `{PXELINUX_PREFIX}pxelinux.cfg/`.
pub const PXELINUX_PREFIX: &str = "/pxelinux/";

/// Where the loaders' files are on this machine: `None` leaves a loader out (its clients keep
/// iPXE). The default serves both, from Debian's paths.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoaderFiles {
    /// shim signed by Microsoft's UEFI CA (`shim-signed`) and GRUB for the network signed by
    /// Debian (`grub-efi-amd64-signed`).
    pub shim_grub: Option<ShimGrubFiles>,
    /// `pxelinux.0` (`pxelinux`) and `ldlinux.c32` of the same version (`syslinux-common`).
    pub pxelinux: Option<PxelinuxFiles>,
}

/// shim and the GRUB it loads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShimGrubFiles {
    /// `shimx64.efi.signed`.
    pub shim: PathBuf,
    /// `grubnetx64.efi.signed`.
    pub grub: PathBuf,
}

/// PXELINUX for TFTP and for HTTP, and its core module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PxelinuxFiles {
    /// `pxelinux.0`.
    pub pxelinux: PathBuf,
    /// `lpxelinux.0`, for iPXE clients, over HTTP.
    pub lpxelinux: PathBuf,
    /// `ldlinux.c32`.
    pub ldlinux: PathBuf,
}

impl Default for ShimGrubFiles {
    fn default() -> Self {
        Self::in_dirs(
            Path::new("/usr/lib/shim"),
            Path::new("/usr/lib/grub/x86_64-efi-signed"),
        )
    }
}

impl ShimGrubFiles {
    /// Debian's file names in these directories.
    pub fn in_dirs(shim_dir: &Path, grub_dir: &Path) -> Self {
        Self {
            shim: shim_dir.join("shimx64.efi.signed"),
            grub: grub_dir.join("grubnetx64.efi.signed"),
        }
    }
}

impl Default for PxelinuxFiles {
    fn default() -> Self {
        Self::in_dirs(
            Path::new("/usr/lib/PXELINUX"),
            Path::new("/usr/lib/syslinux/modules/bios"),
        )
    }
}

impl PxelinuxFiles {
    /// Debian's file names in these directories.
    pub fn in_dirs(pxelinux_dir: &Path, syslinux_dir: &Path) -> Self {
        Self {
            pxelinux: pxelinux_dir.join("pxelinux.0"),
            lpxelinux: pxelinux_dir.join("lpxelinux.0"),
            ldlinux: syslinux_dir.join("ldlinux.c32"),
        }
    }
}

impl Default for LoaderFiles {
    fn default() -> Self {
        Self {
            shim_grub: Some(ShimGrubFiles::default()),
            pxelinux: Some(PxelinuxFiles::default()),
        }
    }
}

impl LoaderFiles {
    /// Whether `loader` is served.
    pub fn serves(&self, loader: Loader) -> bool {
        match loader {
            Loader::Grub => self.shim_grub.is_some(),
            Loader::Pxelinux => self.pxelinux.is_some(),
            _ => true,
        }
    }

    /// Each file with the name it is served under and the Debian package that has it.
    fn entries(&self) -> Vec<(&'static str, &Path, &'static str)> {
        let mut entries = Vec::new();
        if let Some(files) = &self.shim_grub {
            entries.push((SHIM_FILE, files.shim.as_path(), "shim-signed"));
            entries.push((GRUB_FILE, files.grub.as_path(), "grub-efi-amd64-signed"));
        }
        if let Some(files) = &self.pxelinux {
            entries.push((PXELINUX_FILE, files.pxelinux.as_path(), "pxelinux"));
            entries.push((LDLINUX_FILE, files.ldlinux.as_path(), "syslinux-common"));
        }
        entries
    }

    /// Whether every file is a regular file, or the first one that is not, with its package.
    pub(crate) fn check(&self) -> Result<(), crate::Error> {
        let http = self
            .pxelinux
            .iter()
            .map(|files| ("", files.lpxelinux.as_path(), "pxelinux"));
        for (_, path, package) in self.entries().into_iter().chain(http) {
            if !path.is_file() {
                return Err(crate::Error::LoaderFile {
                    path: path.to_owned(),
                    package,
                    source: std::io::Error::from(std::io::ErrorKind::NotFound),
                });
            }
        }
        Ok(())
    }

    /// Reads every file (a few MB, shared by every transfer), or names the one missing.
    pub(crate) fn load(&self) -> Result<Vec<(&'static str, Bytes)>, crate::Error> {
        self.entries()
            .into_iter()
            .map(|(name, path, package)| {
                std::fs::read(path)
                    .map(|content| (name, Bytes::from(content)))
                    .map_err(|source| crate::Error::LoaderFile {
                        path: path.to_owned(),
                        package,
                        source,
                    })
            })
            .collect()
    }
}

/// The DHCP stage's policy: a client the policy gives shim + GRUB or PXELINUX gets the
/// loader's file when its firmware can load it from this server over TFTP, and keeps iPXE
/// otherwise, with a log line that says why.
pub(crate) struct ServedLoaders<P> {
    pub(crate) policy: P,
    /// The loaders' files the server has ([`crate::ServerBuilder::loaders`]).
    pub(crate) files: Option<LoaderFiles>,
    /// `chainload_rom_ipxe`: a ROM iPXE is treated as firmware and gets `pxelinux.0`.
    pub(crate) rom_ipxe_as_firmware: bool,
    /// The HTTP base URL (`http://host[:port]`) iPXE clients fetch `lpxelinux.0` under.
    pub(crate) http_base: String,
}

impl<P: Policy> Policy for ServedLoaders<P> {
    async fn boot(&self, client: &ClientFacts) -> BootDecision {
        let decision = self.policy.boot(client).await;
        let Some(loader) = decision.loader().filter(|l| *l != Loader::Ipxe) else {
            return decision;
        };
        let firmware = client.kind == ClientKind::FirmwarePxe
            || (self.rom_ipxe_as_firmware && client.kind == ClientKind::FirmwareIpxe);
        let lpxelinux = loader == Loader::Pxelinux && !firmware && client.kind.is_ipxe();
        let refusal = if !self.files.as_ref().is_some_and(|f| f.serves(loader)) {
            Some("this server was not given its files")
        } else if lpxelinux && self.http_base.contains("${") {
            Some("lpxelinux.0 needs the server's address in its URL (listen on one)")
        } else if !firmware && !lpxelinux {
            Some("only firmware PXE is handed shim")
        } else {
            None
        };
        match (refusal, &decision) {
            (None, BootDecision::Pxelinux) if lpxelinux => {
                let url = format!("{}{PXELINUX_PREFIX}lpxelinux.0", self.http_base);
                tracing::info!(client = %client.mac, "handing {loader}: {url}, its config over HTTP");
                BootDecision::File(url)
            }
            (None, BootDecision::ShimGrub) => {
                tracing::info!(client = %client.mac, "handing {loader}: {SHIM_FILE}, then {GRUB_FILE} and {GRUB_CONFIG} over TFTP");
                BootDecision::File(SHIM_FILE.to_string())
            }
            (None, BootDecision::Pxelinux) => {
                tracing::info!(client = %client.mac, "handing {loader}: {PXELINUX_FILE} over TFTP");
                BootDecision::File(PXELINUX_FILE.to_string())
            }
            (reason, _) => {
                // Once per DHCP request of such a client: info, not warn, so that a fleet of
                // them does not flood the log.
                tracing::info!(
                    client = %client.mac,
                    kind = %client.kind,
                    "the policy gives this client {loader}, but {}: it keeps iPXE",
                    reason.unwrap_or("this loader is not served")
                );
                BootDecision::chainload_for(client.arch.or(Some(Arch::X86_BIOS)))
            }
        }
    }

    fn script<'a>(
        &'a self,
        client: &'a ClientFacts,
    ) -> impl std::future::Future<Output = ScriptDecision> + Send + 'a {
        self.policy.script(client)
    }
}

/// The TFTP root when loaders are served: the loaders' files, each client's GRUB and
/// PXELINUX config, the HTTP stage's boot files under their URL paths (GRUB and `pxelinux.0`
/// read kernels over TFTP), then the iPXE directory.
pub(crate) struct LoaderSource {
    pub(crate) loaders: Vec<(&'static str, Bytes)>,
    /// Single files by path (no leading `/`): the directory holding each and its name there.
    pub(crate) files: Vec<(String, Directory, String)>,
    /// The HTTP file root, if any.
    pub(crate) root: Option<Directory>,
    pub(crate) ipxe: Directory,
    pub(crate) records: ClientRecords,
    pub(crate) policy: SharedPolicy,
    /// The runtime the policy's futures run on (the TFTP server runs on a thread of its own).
    pub(crate) runtime: tokio::runtime::Handle,
}

impl LoaderSource {
    /// The facts of the client at `addr`, from its DHCP record.
    fn client(&self, addr: SocketAddr, path: &str) -> Result<ClientFacts, pxe_tftp::Error> {
        let facts = match addr.ip() {
            IpAddr::V4(ip) => self
                .records
                .mac_of(ip)
                .and_then(|mac| self.records.get(mac)),
            IpAddr::V6(_) => None,
        };
        facts.ok_or_else(|| {
            // A peer's doing (or a client leased elsewhere): debug, as every refusal.
            tracing::debug!(client = %addr, path, "config asked by a client this server gave no address: not found");
            pxe_tftp::Error::NotFound {
                path: path.to_string(),
            }
        })
    }

    /// The policy's decision for `client`, rendered by `render`.
    fn config(
        &self,
        client: &ClientFacts,
        path: &str,
        render: impl FnOnce(&ScriptDecision) -> Result<String, pxe_policy::ConfigError>,
    ) -> Result<Bytes, pxe_tftp::Error> {
        let decision = self.runtime.block_on(self.policy.script(client));
        match render(&decision) {
            Ok(config) => {
                tracing::info!(client = %client.mac, path, "config rendered for this client");
                Ok(Bytes::from(config))
            }
            Err(e) => {
                tracing::warn!(client = %client.mac, path, "cannot write this client's config: {e}");
                Err(pxe_tftp::Error::NotFound {
                    path: path.to_string(),
                })
            }
        }
    }
}

impl FileSource for LoaderSource {
    fn open(&self, path: &str, client: SocketAddr) -> Result<Bytes, pxe_tftp::Error> {
        let relative = path.trim_start_matches('/');
        if let Some((_, content)) = self.loaders.iter().find(|(name, _)| *name == relative) {
            return Ok(content.clone());
        }
        if relative == GRUB_CONFIG {
            let facts = self.client(client, path)?;
            return self.config(&facts, path, grub::render);
        }
        if let Some(name) = ConfigName::parse(relative) {
            let facts = self.client(client, path)?;
            // Answer the first name this client asks for that is its own (01-<mac> on the
            // firmware here; a UUID first elsewhere): the lookups after it never come.
            let ip = match client.ip() {
                IpAddr::V4(ip) => Some(ip),
                IpAddr::V6(_) => None,
            };
            if matches!(name, ConfigName::Uuid(_) | ConfigName::Mac(_))
                && name.names(facts.mac, ip, facts.guid)
            {
                return self.config(&facts, path, |d| pxelinux::render(d, &Files::Tftp));
            }
            return Err(pxe_tftp::Error::NotFound {
                path: path.to_string(),
            });
        }
        if let Some((_, dir, name)) = self.files.iter().find(|(at, _, _)| at == relative) {
            return dir.open(name, client);
        }
        if let Some(root) = &self.root {
            match root.open(path, client) {
                Err(pxe_tftp::Error::NotFound { .. }) => {}
                other => return other,
            }
        }
        self.ipxe.open(path, client)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pxe_policy::{IpxeBinary, LinuxBoot, MacAddr};

    struct Wants(Loader);

    impl Policy for Wants {
        async fn boot(&self, client: &ClientFacts) -> BootDecision {
            BootDecision::for_loader(self.0, client.arch).unwrap_or_else(|(ipxe, _)| ipxe)
        }

        async fn script(&self, _client: &ClientFacts) -> ScriptDecision {
            ScriptDecision::Linux(LinuxBoot::new("vmlinuz"))
        }
    }

    fn served(loader: Loader, files: Option<LoaderFiles>, rom: bool) -> ServedLoaders<Wants> {
        ServedLoaders {
            policy: Wants(loader),
            files,
            rom_ipxe_as_firmware: rom,
            http_base: "http://192.0.2.1".into(),
        }
    }

    #[tokio::test]
    async fn a_loader_is_handed_only_where_it_is_served_and_can_run() {
        let mut client = ClientFacts::new(MacAddr([2, 0, 0, 0, 0, 1]), ClientKind::FirmwarePxe);
        client.arch = Some(Arch::X64_UEFI);
        let all = Some(LoaderFiles::default());
        assert_eq!(
            served(Loader::Grub, all.clone(), false).boot(&client).await,
            BootDecision::File(SHIM_FILE.into())
        );
        // Not given the files: iPXE.
        assert_eq!(
            served(Loader::Grub, None, false).boot(&client).await,
            BootDecision::Ipxe(IpxeBinary::SNPONLY_EFI)
        );
        let pxelinux_only = Some(LoaderFiles {
            shim_grub: None,
            pxelinux: Some(PxelinuxFiles::default()),
        });
        assert_eq!(
            served(Loader::Grub, pxelinux_only.clone(), false)
                .boot(&client)
                .await,
            BootDecision::Ipxe(IpxeBinary::SNPONLY_EFI)
        );
        // An iPXE client is not handed shim.
        client.kind = ClientKind::ChainloadedIpxe;
        assert_eq!(
            served(Loader::Grub, all.clone(), false).boot(&client).await,
            BootDecision::Ipxe(IpxeBinary::SNPONLY_EFI)
        );
        // BIOS: a ROM iPXE gets pxelinux.0 when taken as firmware, lpxelinux.0 otherwise.
        client.arch = Some(Arch::X86_BIOS);
        client.kind = ClientKind::FirmwareIpxe;
        assert_eq!(
            served(Loader::Pxelinux, pxelinux_only.clone(), false)
                .boot(&client)
                .await,
            BootDecision::File("http://192.0.2.1/pxelinux/lpxelinux.0".into())
        );
        assert_eq!(
            served(Loader::Pxelinux, pxelinux_only, true)
                .boot(&client)
                .await,
            BootDecision::File(PXELINUX_FILE.into())
        );
        assert_eq!(
            served(Loader::Ipxe, all, true).boot(&client).await,
            BootDecision::Ipxe(IpxeBinary::UNDIONLY)
        );
    }
}
