//! `netboot boot KERNEL [INITRD…] --cmdline "…"`: boot every client into one kernel (like
//! pixiecore's boot mode). The files are served over HTTP under `/boot/N/NAME`.

use std::path::PathBuf;

use anyhow::Context as _;
use pxe::policy::{
    BootEveryone, ClientFacts, ClientKind, LinuxBoot, MacAddr, ScriptDecision, SharedPolicy,
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
    #[command(flatten)]
    server: ServerFlags,
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
    tracing::info!(kernel = %args.kernel.display(), initrds = args.initrds.len(), cmdline = %args.cmdline, "booting every client into this kernel");
    let settings = args.server.resolve()?;
    let mut builder = allinone::builder(&settings, SharedPolicy::new(BootEveryone(linux)));
    for (at, file) in files {
        builder = builder.http_file(at, file);
    }
    allinone::run(&settings, builder).await
}
