//! A policy's [`ScriptDecision`] as an iPXE script: the one place that knows how each decision
//! is spelled in iPXE, and how to leave network boot on each firmware.

use std::cell::RefCell;

use bytes::Bytes;
use pxe_policy::{ClientFacts, Command, LinuxBoot, Script, ScriptDecision, ScriptError, Setting};

/// The first BIOS hard disk, as `sanboot --drive` numbers it.
const FIRST_BIOS_DISK: u32 = 0x80;
/// The status an EFI iPXE leaves with to reach the local disk. A UEFI boot manager goes on
/// to the next boot option only when one returns a failure; after `EFI_SUCCESS` EDK2 (OVMF)
/// opens its boot manager menu instead (UEFI 2.x §3.1.1, EDK2's `BootBootOptions`). iPXE
/// returns a non-zero `exit` status to the firmware as an EFI error.
const UEFI_EXIT_TO_NEXT_OPTION: u32 = 1;

/// Builds the script for `decision`, given what is known about the client.
///
/// - `Linux`: `kernel`, one `initrd --name initrdN` per initrd, `boot`. UEFI kernels (and
///   clients of unknown firmware) also get `initrd=initrdN` on the command line, which the
///   EFI stub needs to find them; the command line is otherwise passed exactly.
/// - `ExitToDisk`: `sanboot --no-describe --drive 0x80` on BIOS, `exit 1` on UEFI (a failure,
///   so that the boot manager tries its next boot option rather than its menu); when the
///   firmware is unknown, the script asks iPXE's `${platform}`.
/// - `Iscsi`: `set initiator-iqn NAME` (when the decision names one), `sanboot iscsi:…`.
/// - `Ignore`: says so and exits, so the firmware tries its next boot device (`exit 1` on
///   UEFI, as for the local disk).
///
/// Fails when a value cannot be carried to iPXE verbatim (a `${` in a command line).
pub fn render_decision(
    decision: &ScriptDecision,
    client: &ClientFacts,
) -> Result<String, ScriptError> {
    render_for(decision, Firmware::of(client))
}

/// All that rendering reads of a client: the script is a function of the decision and this.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Firmware {
    /// [`ClientFacts::is_uefi`].
    uefi: Option<bool>,
    /// Whether `https://` URLs may be handed out (see [`refuse_https`]).
    https: bool,
}

impl Firmware {
    fn of(client: &ClientFacts) -> Self {
        Self {
            uefi: client.is_uefi(),
            // An iPXE that did not list its features is trusted with the policy's URLs.
            https: client.ipxe.is_none() || client.supports_https(),
        }
    }
}

/// [`render_decision`] as the bytes of a response body, from this thread's memo of recent
/// scripts when the same decision was rendered for the same kind of firmware before.
///
/// A fleet gets few distinct scripts (one per profile and firmware), and rendering one means
/// quoting and checking every word; the policy is still asked on every request, only the
/// spelling of an identical answer is reused. Failures are not kept: they are rare, and
/// each is logged where it happens.
// The service (the `server` feature) is its one caller.
#[cfg_attr(not(feature = "server"), allow(dead_code))]
pub(crate) fn render_shared(
    decision: &ScriptDecision,
    client: &ClientFacts,
) -> Result<Bytes, ScriptError> {
    let firmware = Firmware::of(client);
    RECENT_SCRIPTS.with_borrow_mut(|recent| {
        if let Some(script) = recent.find(decision, firmware) {
            return Ok(script);
        }
        let script = Bytes::from(render_for(decision, firmware)?);
        recent.keep(decision, firmware, script.clone());
        Ok(script)
    })
}

/// How many rendered scripts each thread keeps.
const RECENT_SCRIPTS_KEPT: usize = 16;

thread_local! {
    /// Per thread, so that the workers of a runtime never wait on one another for it.
    static RECENT_SCRIPTS: RefCell<RecentScripts> = const {
        RefCell::new(RecentScripts { entries: Vec::new(), next: 0 })
    };
}

/// The last [`RECENT_SCRIPTS_KEPT`] distinct scripts rendered, replaced oldest first.
struct RecentScripts {
    entries: Vec<(ScriptDecision, Firmware, Bytes)>,
    /// The entry to replace next once full.
    next: usize,
}

impl RecentScripts {
    fn find(&self, decision: &ScriptDecision, firmware: Firmware) -> Option<Bytes> {
        self.entries
            .iter()
            .find(|(d, f, _)| *f == firmware && d == decision)
            .map(|(_, _, script)| script.clone())
    }

    fn keep(&mut self, decision: &ScriptDecision, firmware: Firmware, script: Bytes) {
        let entry = (decision.clone(), firmware, script);
        if self.entries.len() < RECENT_SCRIPTS_KEPT {
            self.entries.push(entry);
        } else {
            self.entries[self.next] = entry;
            self.next = (self.next + 1) % RECENT_SCRIPTS_KEPT;
        }
    }
}

fn render_for(decision: &ScriptDecision, firmware: Firmware) -> Result<String, ScriptError> {
    if !firmware.https {
        refuse_https(decision)?;
    }
    let mut script = Script::new();
    match decision {
        ScriptDecision::Linux(linux) => linux_boot(&mut script, linux, firmware.uefi),
        ScriptDecision::Chain(url) => {
            script.push(Command::chain(url));
        }
        ScriptDecision::Sanboot(url) => {
            script.push(Command::sanboot(url));
        }
        ScriptDecision::Iscsi(disk) => {
            if let Some(initiator) = disk.initiator_name() {
                script.push(Command::set("initiator-iqn", initiator)?);
            }
            script.push(Command::sanboot(disk.root_path()));
        }
        ScriptDecision::ExitToDisk => exit_to_disk(&mut script, firmware.uefi)?,
        ScriptDecision::Custom(custom) => return custom.render(),
        // `Ignore`, and decisions this version does not know: boot nothing, and leave so that
        // the firmware tries its next boot device (on UEFI with a failure status, as for the
        // local disk: after a success EDK2 opens its menu instead).
        _ => {
            script.push(
                Command::echo("pxe:").args(["nothing", "to", "boot", "for", "this", "client"]),
            );
            leave(&mut script, firmware.uefi)?;
        }
    }
    script.render()
}

/// An iPXE that told us its features (option 175) and lacks HTTPS must never be sent to an
/// `https://` URL. When the features are unknown (the HTTP stage alone does not learn them),
/// the policy's URLs are trusted ([`Firmware::https`]).
fn refuse_https(decision: &ScriptDecision) -> Result<(), ScriptError> {
    let urls: Vec<&str> = match decision {
        ScriptDecision::Linux(linux) => std::iter::once(linux.kernel.as_str())
            .chain(linux.initrds.iter().map(String::as_str))
            .collect(),
        ScriptDecision::Chain(url) | ScriptDecision::Sanboot(url) => vec![url.as_str()],
        _ => Vec::new(),
    };
    match urls.into_iter().find(|url| {
        url.get(..8)
            .is_some_and(|scheme| scheme.eq_ignore_ascii_case("https://"))
    }) {
        Some(url) => Err(ScriptError::HttpsUnsupported {
            url: url.to_string(),
        }),
        None => Ok(()),
    }
}

/// The script for a request that does not say who the client is: chain to the script path
/// with every fact in the query ([`crate::facts_url`]).
// The service (the `server` feature) is its one caller.
#[cfg_attr(not(feature = "server"), allow(dead_code))]
pub(crate) fn bootstrap(script_path: &str) -> Result<String, ScriptError> {
    let mut script = Script::new();
    script.push(Command::chain(crate::facts_url(script_path)?));
    script.render()
}

fn linux_boot(script: &mut Script, linux: &LinuxBoot, uefi: Option<bool>) {
    let names: Vec<String> = (0..linux.initrds.len())
        .map(|i| format!("initrd{i}"))
        .collect();
    let mut cmdline = linux.cmdline.clone();
    if uefi != Some(false) {
        for name in &names {
            if !cmdline.is_empty() {
                cmdline.push(' ');
            }
            cmdline.push_str("initrd=");
            cmdline.push_str(name);
        }
    }
    script.push(Command::kernel(&linux.kernel).cmdline(&cmdline));
    for (url, name) in linux.initrds.iter().zip(&names) {
        script.push(
            Command::initrd(url)
                .name(name)
                .expect("initrdN is a valid image name"),
        );
    }
    script.push(Command::boot());
}

fn exit_to_disk(script: &mut Script, uefi: Option<bool>) -> Result<(), ScriptError> {
    per_platform(
        script,
        uefi,
        Command::sanboot_drive(FIRST_BIOS_DISK).no_describe(),
    )
}

/// Leaves network boot for the firmware's next boot device: a plain `exit` on BIOS.
fn leave(script: &mut Script, uefi: Option<bool>) -> Result<(), ScriptError> {
    per_platform(script, uefi, Command::exit(None))
}

/// `exit 1` on UEFI (see [`UEFI_EXIT_TO_NEXT_OPTION`]), `bios` on BIOS; when the firmware is
/// unknown, the script asks iPXE's `${platform}`.
fn per_platform(script: &mut Script, uefi: Option<bool>, bios: Command) -> Result<(), ScriptError> {
    match uefi {
        Some(true) => script.push(Command::exit(Some(UEFI_EXIT_TO_NEXT_OPTION))),
        Some(false) => script.push(bios),
        None => script
            .push(
                Command::iseq(Setting::named("platform")?, "efi")
                    .and(Command::exit(Some(UEFI_EXIT_TO_NEXT_OPTION)))
                    .or_continue(),
            )
            .push(bios),
    };
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use pxe_policy::{Arch, ClientKind, IpxeFeature, IpxeFeatures, MacAddr};

    fn client(arch: Option<Arch>) -> ClientFacts {
        let mut facts = ClientFacts::new(MacAddr([2, 0, 0, 0, 0, 1]), ClientKind::ChainloadedIpxe);
        facts.arch = arch;
        facts
    }

    #[test]
    fn https_only_for_an_ipxe_that_has_it() {
        let linux = ScriptDecision::Linux(
            LinuxBoot::new("http://192.0.2.1/vmlinuz").initrd("HTTPS://192.0.2.1/initrd.img"),
        );
        // Features unknown: the policy's URLs are trusted.
        assert!(render_decision(&linux, &client(Some(Arch::X86_BIOS))).is_ok());
        // An iPXE that listed its features without HTTPS (Debian's builds) is refused.
        let mut debian = client(Some(Arch::X86_BIOS));
        debian.ipxe = Some(IpxeFeatures::new().with(IpxeFeature::HTTP));
        assert!(matches!(
            render_decision(&linux, &debian),
            Err(ScriptError::HttpsUnsupported { url }) if url == "HTTPS://192.0.2.1/initrd.img"
        ));
        let chain = ScriptDecision::Chain("https://192.0.2.1/x.ipxe".into());
        assert!(render_decision(&chain, &debian).is_err());
        assert!(render_decision(&ScriptDecision::ExitToDisk, &debian).is_ok());
        // With HTTPS it goes through.
        let mut modern = debian.clone();
        modern.ipxe = Some(IpxeFeatures::new().with(IpxeFeature::HTTPS));
        assert!(render_decision(&linux, &modern).is_ok());
    }

    #[test]
    fn linux_on_uefi_names_its_initrds() {
        let linux = LinuxBoot::new("http://192.0.2.1/vmlinuz")
            .initrd("http://192.0.2.1/initrd.img")
            .cmdline("console=ttyS0 quiet");
        let decision = ScriptDecision::Linux(linux.clone());
        assert_eq!(
            render_decision(&decision, &client(Some(Arch::X64_UEFI))).unwrap(),
            "#!ipxe\n\
             kernel http://192.0.2.1/vmlinuz console=ttyS0 quiet initrd=initrd0\n\
             initrd --name initrd0 http://192.0.2.1/initrd.img\n\
             boot\n"
        );
        assert_eq!(
            render_decision(&decision, &client(Some(Arch::X86_BIOS))).unwrap(),
            "#!ipxe\n\
             kernel http://192.0.2.1/vmlinuz console=ttyS0 quiet\n\
             initrd --name initrd0 http://192.0.2.1/initrd.img\n\
             boot\n"
        );
    }

    #[test]
    fn remembered_scripts_follow_the_firmware() {
        let linux = ScriptDecision::Linux(
            LinuxBoot::new("http://192.0.2.1/vmlinuz").initrd("https://192.0.2.1/initrd.img"),
        );
        let uefi = client(Some(Arch::X64_UEFI));
        let bios = client(Some(Arch::X86_BIOS));
        let mut debian = bios.clone();
        debian.ipxe = Some(IpxeFeatures::new().with(IpxeFeature::HTTP));
        // Twice each, interleaved: the second answer comes from the memo, and must still be
        // the one for this client's firmware.
        for _ in 0..2 {
            for facts in [&uefi, &bios, &debian, &client(None)] {
                let shared = render_shared(&linux, facts).map(|b| b.to_vec());
                match render_decision(&linux, facts) {
                    Ok(script) => assert_eq!(shared.unwrap(), script.into_bytes()),
                    Err(error) => assert_eq!(shared.unwrap_err().to_string(), error.to_string()),
                }
            }
        }
        assert!(render_shared(&linux, &debian).is_err());
        // Many distinct decisions: older ones are replaced, answers stay right.
        for round in 0..2 {
            for n in 0..(RECENT_SCRIPTS_KEPT * 2) {
                let chain = ScriptDecision::Chain(format!("http://192.0.2.1/{n}.ipxe"));
                let script = render_shared(&chain, &uefi).unwrap();
                assert_eq!(
                    script,
                    format!("#!ipxe\nchain http://192.0.2.1/{n}.ipxe\n"),
                    "round {round}"
                );
            }
        }
    }

    #[test]
    fn iscsi_sets_the_initiator_then_boots_the_root_path() {
        let disk = pxe_policy::IscsiBoot::new("192.0.2.1", "iqn.2026-12.test.pxe:disk")
            .unwrap()
            .lun(1)
            .initiator("iqn.2026-12.test.pxe:client")
            .unwrap();
        assert_eq!(
            render_decision(&ScriptDecision::Iscsi(disk), &client(None)).unwrap(),
            "#!ipxe\nset initiator-iqn iqn.2026-12.test.pxe:client\n\
             sanboot iscsi:192.0.2.1:::1:iqn.2026-12.test.pxe:disk\n"
        );
        let plain = pxe_policy::IscsiBoot::new("san.example", "eui.02004567a425678d").unwrap();
        assert_eq!(
            render_decision(&ScriptDecision::Iscsi(plain), &client(None)).unwrap(),
            "#!ipxe\nsanboot iscsi:san.example:::0:eui.02004567a425678d\n"
        );
    }

    #[test]
    fn exit_to_disk_per_firmware() {
        let exit = ScriptDecision::ExitToDisk;
        assert_eq!(
            render_decision(&exit, &client(Some(Arch::X86_BIOS))).unwrap(),
            "#!ipxe\nsanboot --drive 0x80 --no-describe\n"
        );
        assert_eq!(
            render_decision(&exit, &client(Some(Arch::X64_UEFI))).unwrap(),
            "#!ipxe\nexit 1\n"
        );
        assert_eq!(
            render_decision(&exit, &client(None)).unwrap(),
            "#!ipxe\niseq -- ${platform} efi && exit 1 ||\nsanboot --drive 0x80 --no-describe\n"
        );
    }

    #[test]
    fn expansions_in_a_command_line_are_refused() {
        let linux = LinuxBoot::new("vmlinuz").cmdline("root=${root}");
        assert!(matches!(
            render_decision(&ScriptDecision::Linux(linux), &client(None)),
            Err(ScriptError::Expansion { .. })
        ));
    }

    #[test]
    fn other_decisions() {
        let c = client(None);
        assert_eq!(
            render_decision(&ScriptDecision::Chain("http://192.0.2.1/x.ipxe".into()), &c).unwrap(),
            "#!ipxe\nchain http://192.0.2.1/x.ipxe\n"
        );
        assert_eq!(
            render_decision(
                &ScriptDecision::Sanboot("http://192.0.2.1/d.iso".into()),
                &c
            )
            .unwrap(),
            "#!ipxe\nsanboot http://192.0.2.1/d.iso\n"
        );
        let ignore = render_decision(&ScriptDecision::Ignore, &c).unwrap();
        assert!(ignore.starts_with("#!ipxe\n") && ignore.ends_with("exit\n"));
        // Ignored clients leave for the next boot device: on UEFI with a failure status.
        let said = "#!ipxe\necho pxe: nothing to boot for this client\n";
        assert_eq!(
            render_decision(&ScriptDecision::Ignore, &client(Some(Arch::X64_UEFI))).unwrap(),
            format!("{said}exit 1\n")
        );
        assert_eq!(
            render_decision(&ScriptDecision::Ignore, &client(Some(Arch::X86_BIOS))).unwrap(),
            format!("{said}exit\n")
        );
        assert_eq!(
            render_decision(&ScriptDecision::Ignore, &client(None)).unwrap(),
            format!("{said}iseq -- ${{platform}} efi && exit 1 ||\nexit\n")
        );
    }
}
