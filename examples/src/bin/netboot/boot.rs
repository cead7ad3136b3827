//! `netboot boot KERNEL [INITRD…] --cmdline "…"`: boot every client into one kernel (like
//! pixiecore's boot mode). The files are served over HTTP under `/boot/N/NAME`.

use std::path::PathBuf;

use anyhow::Context as _;
use pxe::policy::{
    BootDecision, BootEveryone, ClientFacts, ClientKind, LinuxBoot, Loader, MacAddr, Policy,
    ScriptDecision, SharedPolicy,
};

use crate::allinone;
use crate::settings::ServerFlags;

/// Flags of `netboot boot`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The kernel every client boots.
    kernel: PathBuf,
    /// Initrds, in load order.
    initrds: Vec<PathBuf>,
    /// The kernel command line, passed to the kernel exactly. (iPXE on UEFI loads initrds as
    /// files, so there `initrd=NAME` for each initrd is appended: the EFI stub needs it.) A
    /// `${…}` is refused at start: iPXE would expand it.
    #[arg(long, default_value = "")]
    cmdline: String,
    /// The boot loader clients get: `ipxe`; `grub` (shim + GRUB, for x64 UEFI firmware PXE:
    /// the Secure Boot path); `pxelinux` (`pxelinux.0` for BIOS firmware PXE, and for a ROM
    /// iPXE with --chainload-ipxe-rom). A client whose firmware cannot run it keeps iPXE.
    #[arg(long, default_value = "ipxe")]
    loader: Loader,
    #[command(flatten)]
    loader_dirs: allinone::LoaderDirs,
    #[command(flatten)]
    server: ServerFlags,
}

/// Every client boots the same kernel through the loader chosen, where its firmware can run
/// that loader.
struct WithLoader {
    linux: BootEveryone,
    loader: Loader,
}

impl Policy for WithLoader {
    async fn boot(&self, client: &ClientFacts) -> BootDecision {
        match BootDecision::for_loader(self.loader, client.arch) {
            Ok(decision) => decision,
            Err((ipxe, loader)) => {
                tracing::info!(
                    client = %client.mac,
                    arch = ?client.arch,
                    "this client's firmware cannot run {loader}: it keeps iPXE"
                );
                ipxe
            }
        }
    }

    fn script<'a>(
        &'a self,
        client: &'a ClientFacts,
    ) -> impl std::future::Future<Output = ScriptDecision> + Send + 'a {
        self.linux.script(client)
    }
}

/// The URL path a file given on the command line is served at: its position keeps two files
/// of the same name apart, its name keeps the URL readable.
fn served_at(index: usize, path: &std::path::Path) -> anyhow::Result<String> {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .with_context(|| format!("{}: not a file name in UTF-8", path.display()))?;
    Ok(format!("/boot/{index}/{name}"))
}

pub(crate) async fn run(args: Args) -> anyhow::Result<()> {
    let kernel_at = served_at(0, &args.kernel)?;
    let mut files = vec![(kernel_at.clone(), &args.kernel)];
    let mut linux = LinuxBoot::new(kernel_at).cmdline(args.cmdline.clone());
    for (i, initrd) in args.initrds.iter().enumerate() {
        let at = served_at(i + 1, initrd)?;
        files.push((at.clone(), initrd));
        linux = linux.initrd(at);
    }
    // Refuse what iPXE cannot carry (a `${…}` in the command line) now, not at each boot.
    for arch in [pxe::policy::Arch::X86_BIOS, pxe::policy::Arch::X64_UEFI] {
        let mut probe = ClientFacts::new(MacAddr::default(), ClientKind::ChainloadedIpxe);
        probe.arch = Some(arch);
        pxe::http::render_decision(&ScriptDecision::Linux(linux.clone()), &probe).map_err(|e| {
            anyhow::anyhow!("--cmdline {:?} cannot be given to iPXE: {e}", args.cmdline)
        })?;
    }
    // And what the chosen loader cannot carry (a quote through GRUB, `initrd=` through
    // PXELINUX).
    let decision = ScriptDecision::Linux(linux.clone());
    let loader_check = match args.loader {
        Loader::Grub => pxe::policy::grub::render(&decision).map(drop),
        Loader::Pxelinux => {
            pxe::policy::pxelinux::render(&decision, &pxe::policy::pxelinux::Files::Tftp).map(drop)
        }
        _ => Ok(()),
    };
    loader_check.map_err(|e| {
        anyhow::anyhow!(
            "--cmdline {:?} cannot be given to {}: {e}",
            args.cmdline,
            args.loader
        )
    })?;
    tracing::info!(kernel = %args.kernel.display(), initrds = args.initrds.len(), cmdline = %args.cmdline, loader = %args.loader, "booting every client into this kernel");
    let settings = args.server.resolve()?;
    let policy = WithLoader {
        linux: BootEveryone(linux),
        loader: args.loader,
    };
    let mut builder = allinone::builder(&settings, SharedPolicy::new(policy));
    if let Some(files) = args.loader_dirs.files(&[args.loader]) {
        builder = builder.loaders(files);
    }
    for (at, file) in files {
        builder = builder.http_file(at, file);
    }
    allinone::run(&settings, builder).await
}
