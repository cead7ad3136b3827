//! PXELINUX configs from a [`ScriptDecision`]: what `pxelinux.0` and `lpxelinux.0` read from
//! `pxelinux.cfg/`.
//!
//! How PXELINUX reads a config (syslinux 6, `com32/elflink/ldlinux/readconfig.c`,
//! `execute.c`, `kernel.c`): line by line with `fgets` into 4096 bytes (a longer line is cut
//! in two), the line ended at its first CR or LF; leading white space skipped; a keyword
//! matched without case and followed by white space. `APPEND` keeps the rest of the line as
//! it is, except leading white space, and a lone `-` means no command line. There is no
//! quoting and no expansion. When the label boots, PXELINUX builds `.linux KERNEL APPEND
//! initrd=A,B` (refusing 2048 bytes or more), splits the kernel's name off at the first
//! blank or control character, skips those after it, and hands the kernel `BOOT_IMAGE=KERNEL`
//! and the rest after one space. It then loads the initrds named by the first `initrd=` it
//! finds anywhere in that line, up to a space or comma each.
//!
//! So the renderer writes the command line as it is on the `APPEND` line and refuses what
//! PXELINUX would read differently: NUL, CR, LF, a leading blank or control character, a lone
//! `-`, any `initrd=` (the initrds are the decision's list), and lines too long. The kernel
//! sees `BOOT_IMAGE=KERNEL CMDLINE initrd=A,B`.
//!
//! Files: `pxelinux.0` fetches over TFTP only, so relative references are written as `::path`
//! (absolute on its TFTP server, whatever directory it was loaded from); `lpxelinux.0` is
//! given full `http://` URLs under the server's base URL, and absolute `http://` references
//! as they are.

use std::net::Ipv4Addr;

use crate::grub::server_path;
use crate::{ClientGuid, ConfigError, LinuxBoot, MacAddr, ScriptDecision};

const LOADER: &str = "pxelinux";

/// What `fgets` reads of a line: 4096 bytes with the NUL.
const MAX_LINE: usize = 4095;
/// PXELINUX refuses to run a label's command of this many bytes or more.
const MAX_CMDLINE: usize = 2048;

/// How the PXELINUX that reads the config fetches files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Files {
    /// `pxelinux.0`: TFTP from the server it was loaded from.
    Tftp,
    /// `lpxelinux.0`: HTTP; relative references are taken below this base URL
    /// (`http://host[:port]`, no trailing slash).
    Http {
        /// The server's base URL.
        base: String,
    },
}

/// Writes `decision` as a PXELINUX config: one label, booted at once.
///
/// - `Linux`: `LINUX KERNEL`, `INITRD A,B`, `APPEND CMDLINE`.
/// - `Chain`: `KERNEL FILE` (PXELINUX picks the image type by the file's extension: `.0` a
///   PXE program, `.c32` a module, `.bin` a boot sector, anything else a Linux kernel).
/// - `ExitToDisk` and `Ignore`: `LOCALBOOT 0`, back to the BIOS, which boots its next device.
/// - `Sanboot`, `Iscsi` and `Custom` (an iPXE script) are refused: PXELINUX cannot do them.
pub fn render(decision: &ScriptDecision, files: &Files) -> Result<String, ConfigError> {
    if let Some(asked) = decision.ipxe_only() {
        return Err(ConfigError::Unsupported {
            loader: LOADER,
            decision: asked,
        });
    }
    let mut config = String::from("DEFAULT pxe\nLABEL pxe\n");
    match decision {
        ScriptDecision::Linux(linux) => render_linux(&mut config, linux, files)?,
        ScriptDecision::Chain(target) => {
            let target = reference(files, "chain target", target)?;
            config.push_str(&format!("KERNEL {target}\n"));
        }
        _ => config.push_str("LOCALBOOT 0\n"),
    }
    Ok(config)
}

fn render_linux(config: &mut String, linux: &LinuxBoot, files: &Files) -> Result<(), ConfigError> {
    let kernel = reference(files, "kernel", &linux.kernel)?;
    let initrds = linux
        .initrds
        .iter()
        .map(|initrd| reference(files, "initrd", initrd))
        .collect::<Result<Vec<_>, _>>()?;
    let cmdline = linux.cmdline.as_str();
    let refuse = |reason| {
        Err(ConfigError::Value {
            loader: LOADER,
            what: "command line",
            value: cmdline.to_string(),
            reason,
        })
    };
    if cmdline.contains(['\0', '\r', '\n']) {
        return refuse("NUL, CR and LF end a PXELINUX config line");
    }
    if cmdline.bytes().next().is_some_and(is_blank) {
        return refuse("PXELINUX drops leading blanks and control characters");
    }
    if cmdline == "-" {
        return refuse("PXELINUX reads a lone `-` as no command line");
    }
    if cmdline.contains("initrd=") {
        return refuse("PXELINUX loads whatever the first `initrd=` names: list initrds in the decision instead");
    }
    let initrd_option = if initrds.is_empty() {
        String::new()
    } else {
        format!(" initrd={}", initrds.join(","))
    };
    let separator = if cmdline.is_empty() { "" } else { " " };
    let command = format!(".linux {kernel}{separator}{cmdline}{initrd_option}");
    if command.len() >= MAX_CMDLINE || "APPEND ".len() + cmdline.len() + 1 > MAX_LINE {
        return refuse("PXELINUX refuses a kernel, command line and initrds of 2048 bytes or more");
    }
    config.push_str(&format!("LINUX {kernel}\n"));
    if !initrds.is_empty() {
        config.push_str(&format!("INITRD {}\n", initrds.join(",")));
    }
    if !cmdline.is_empty() {
        config.push_str(&format!("APPEND {cmdline}\n"));
    }
    Ok(())
}

/// What PXELINUX takes for white space when it splits a command (`my_isspace`).
fn is_blank(byte: u8) -> bool {
    byte <= b' ' || byte == 0x7f
}

/// A decision's file reference as this PXELINUX names it.
fn reference(files: &Files, what: &'static str, reference: &str) -> Result<String, ConfigError> {
    let refuse = |reason| {
        Err(ConfigError::Value {
            loader: LOADER,
            what,
            value: reference.to_string(),
            reason,
        })
    };
    if reference.contains("initrd=") {
        return refuse("PXELINUX loads whatever the first `initrd=` names, and file names are on the kernel's command line");
    }
    match files {
        Files::Tftp => {
            // `::path`: from the TFTP server's root, not the directory pxelinux.0 came from.
            let path = server_path(LOADER, what, reference)?;
            Ok(format!("::{}", &path[1..]))
        }
        Files::Http { base } => {
            let url = match reference.get(..7) {
                Some(scheme) if scheme.eq_ignore_ascii_case("http://") => reference.to_string(),
                _ => format!("{base}{}", server_path(LOADER, what, reference)?),
            };
            // A URL is one word up to a blank, and names in `initrd=` end at a comma.
            if !url.bytes().all(|b| b.is_ascii_graphic() && b != b',') {
                return refuse("a URL must be printable ASCII without blanks or `,`");
            }
            Ok(url)
        }
    }
}

/// A file PXELINUX asks for under `pxelinux.cfg/`, by what its name says about the client.
///
/// PXELINUX asks, first found wins: `pxelinux.cfg/<uuid>` (its SMBIOS UUID, lower-case
/// canonical text), `01-<mac>` (ARP type 1, lower-case, dashes), its IPv4 address in
/// upper-case hex shortened one digit at a time (`C000028E` … `C`), then `default`; each name
/// after the directory of its boot file (`core/fs/pxe/pxe.c`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigName {
    /// `pxelinux.cfg/<uuid>`.
    Uuid(ClientGuid),
    /// `pxelinux.cfg/01-aa-bb-cc-dd-ee-ff`.
    Mac(MacAddr),
    /// `pxelinux.cfg/<hex>`: the first `digits` (1–8) hex digits of an IPv4 address, `prefix`
    /// holding their value.
    AddressPrefix {
        /// The digits' value (`C0` is 0xc0).
        prefix: u32,
        /// How many hex digits (8: the whole address).
        digits: u8,
    },
    /// `pxelinux.cfg/default`.
    Default,
}

impl ConfigName {
    /// Reads a request path (a TFTP file name or an HTTP path, with or without a leading `/`
    /// and a directory before `pxelinux.cfg/`); `None` when it names no config file.
    pub fn parse(path: &str) -> Option<Self> {
        let at = path.rfind("pxelinux.cfg/")?;
        if at > 0 && !path[..at].ends_with('/') {
            return None;
        }
        let name = &path[at + "pxelinux.cfg/".len()..];
        if name == "default" {
            return Some(Self::Default);
        }
        if let Some(mac) = name.strip_prefix("01-") {
            let bytes = mac.as_bytes();
            let dashed = bytes.len() == 17
                && bytes.iter().enumerate().all(|(i, &b)| {
                    if i % 3 == 2 {
                        b == b'-'
                    } else {
                        b.is_ascii_hexdigit()
                    }
                });
            return dashed.then(|| mac.parse().ok()).flatten().map(Self::Mac);
        }
        if name.len() == 36 && name.matches('-').count() == 4 {
            return name.parse().ok().map(Self::Uuid);
        }
        if (1..=8).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Some(Self::AddressPrefix {
                prefix: u32::from_str_radix(name, 16).ok()?,
                digits: name.len() as u8,
            });
        }
        None
    }

    /// Whether this name is one the client with these facts asks for.
    pub fn names(&self, mac: MacAddr, ip: Option<Ipv4Addr>, guid: Option<ClientGuid>) -> bool {
        match *self {
            Self::Uuid(uuid) => guid == Some(uuid),
            Self::Mac(named) => named == mac,
            Self::AddressPrefix { prefix, digits } => {
                ip.is_some_and(|ip| u32::from(ip) >> (4 * (8 - u32::from(digits))) == prefix)
            }
            Self::Default => true,
        }
    }
}

/// The client's MAC from the cookies `lpxelinux.0` sends with every HTTP request
/// (`Cookie: _Syslinux_BOOTIF=01-aa-bb-cc-dd-ee-ff;_Syslinux_IP=…`, `core/fs/pxe/http.c`).
pub fn bootif_cookie(cookie: &[u8]) -> Option<MacAddr> {
    cookie.split(|&b| b == b';').find_map(|pair| {
        let pair = std::str::from_utf8(pair).ok()?.trim();
        let value = pair.strip_prefix("_Syslinux_BOOTIF=")?;
        match ConfigName::parse(&format!("pxelinux.cfg/{value}"))? {
            ConfigName::Mac(mac) => Some(mac),
            _ => None,
        }
    })
}

/// A model of how PXELINUX reads a config and boots its default label, written from
/// syslinux's source (see the module text) for the tests and the fuzz target, which check
/// every rendered config against it. Public only under `cfg(fuzzing)`.
#[cfg(any(test, fuzzing))]
pub mod model {
    /// What booting the default label does.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub enum Outcome {
        /// A Linux kernel: its file, the command line it sees, the initrds loaded.
        Linux {
            /// The kernel's file name.
            kernel: String,
            /// What the kernel sees.
            cmdline: String,
            /// The initrds' file names.
            initrds: Vec<String>,
        },
        /// Another image, typed by its extension.
        Image(String),
        /// `LOCALBOOT`.
        Localboot,
    }

    #[derive(Default)]
    struct Label {
        name: String,
        kernel: String,
        linux: bool,
        localboot: bool,
        initrd: Option<String>,
        append: Option<String>,
    }

    /// C's `isspace` (space, `\t \n \v \f \r`), which `skipspace` uses.
    fn isspace(b: u8) -> bool {
        matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
    }

    fn skipspace(s: &[u8]) -> &[u8] {
        let start = s.iter().position(|&b| !isspace(b)).unwrap_or(s.len());
        &s[start..]
    }

    fn my_isspace(b: u8) -> bool {
        b <= b' ' || b == 0x7f
    }

    /// `looking_at`: the keyword without case, then white space or the end.
    fn looking_at<'a>(line: &'a [u8], keyword: &str) -> Option<&'a [u8]> {
        let k = keyword.as_bytes();
        if line.len() < k.len() || !line[..k.len()].eq_ignore_ascii_case(k) {
            return None;
        }
        let rest = &line[k.len()..];
        (rest.is_empty() || my_isspace(rest[0])).then_some(rest)
    }

    /// Reads `config` and boots its default label as PXELINUX does.
    pub fn outcome(config: &str) -> Result<Outcome, String> {
        let bytes = config.as_bytes();
        // fgets: lines of at most 4095 bytes with their LF; a longer one continues as the next.
        let mut lines = Vec::new();
        let mut rest = bytes;
        while !rest.is_empty() {
            let end = rest
                .iter()
                .position(|&b| b == b'\n')
                .map_or(rest.len(), |i| i + 1)
                .min(super::MAX_LINE);
            lines.push(&rest[..end]);
            rest = &rest[end..];
        }
        let mut default = None;
        let mut labels: Vec<Label> = Vec::new();
        for line in lines {
            // The line ends at its first CR, then at its first LF; NUL ends the C string.
            let line = line.split(|&b| b == b'\r').next().unwrap_or_default();
            let line = line.split(|&b| b == b'\n').next().unwrap_or_default();
            let line = line.split(|&b| b == 0).next().unwrap_or_default();
            let p = skipspace(line);
            let text = |s: &[u8]| String::from_utf8_lossy(skipspace(s)).into_owned();
            if let Some(r) = looking_at(p, "default") {
                default = Some(text(r));
            } else if let Some(r) = looking_at(p, "label") {
                let name = text(r);
                labels.push(Label {
                    kernel: name.clone(),
                    name,
                    ..Label::default()
                });
            } else if let Some(label) = labels.last_mut() {
                if let Some(r) = looking_at(p, "linux") {
                    label.kernel = text(r);
                    label.linux = true;
                } else if let Some(r) = looking_at(p, "kernel") {
                    label.kernel = text(r);
                } else if let Some(r) = looking_at(p, "localboot") {
                    label.kernel = text(r);
                    label.localboot = true;
                } else if let Some(r) = looking_at(p, "initrd") {
                    label.initrd = Some(text(r));
                } else if let Some(r) = looking_at(p, "append") {
                    label.append = Some(text(r));
                } else if !p.is_empty() {
                    return Err(format!("unexpected line {:?}", String::from_utf8_lossy(p)));
                }
            } else if !p.is_empty() {
                return Err(format!("unexpected line {:?}", String::from_utf8_lossy(p)));
            }
        }
        let default = default.ok_or("no DEFAULT")?;
        let label = labels
            .iter()
            .find(|l| l.name == default)
            .ok_or("DEFAULT names no label")?;
        if label.localboot {
            return Ok(Outcome::Localboot);
        }
        // record(): the label's command.
        let mut ipoptions = String::new();
        if let Some(initrd) = &label.initrd {
            ipoptions = format!(" initrd={initrd}");
        }
        let append = match label.append.as_deref() {
            None | Some("-") => "",
            Some(a) => a,
        };
        let s = if append.is_empty() { "" } else { " " };
        let command = if label.linux {
            format!(".linux {}{s}{append}{ipoptions}", label.kernel)
        } else {
            format!("{}{s}{append}{ipoptions}", label.kernel)
        };
        if command.len() >= super::MAX_CMDLINE {
            return Err("cmdline too long".into());
        }
        // execute(): a type prefix is stripped, the kernel split off at the first blank.
        let (linux, command) = match command.strip_prefix(".linux") {
            Some(rest) if rest.bytes().next().is_some_and(my_isspace) => (
                true,
                rest.trim_start_matches(|c: char| c.is_ascii() && my_isspace(c as u8)),
            ),
            _ => (false, command.as_str()),
        };
        let split = command
            .bytes()
            .position(my_isspace)
            .unwrap_or(command.len());
        let kernel = &command[..split];
        let args =
            command[split..].trim_start_matches(|c: char| c.is_ascii() && my_isspace(c as u8));
        if !linux {
            return Ok(Outcome::Image(kernel.to_string()));
        }
        // new_linux_kernel(): BOOT_IMAGE, then the first `initrd=` anywhere.
        let cmdline = format!("BOOT_IMAGE={kernel} {args}");
        let mut initrds = Vec::new();
        if let Some(at) = cmdline.find("initrd=") {
            let list = &cmdline[at + "initrd=".len()..];
            let list = list.split(' ').next().unwrap_or_default();
            initrds = list.split(',').map(str::to_string).collect();
        }
        Ok(Outcome::Linux {
            kernel: kernel.to_string(),
            cmdline,
            initrds,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::model::{outcome, Outcome};
    use super::*;
    use proptest::prelude::*;

    fn carriable(cmdline: &str) -> bool {
        !cmdline.contains(['\0', '\r', '\n'])
            && !cmdline.bytes().next().is_some_and(is_blank)
            && cmdline != "-"
            && !cmdline.contains("initrd=")
            && cmdline.len() < 1900
    }

    /// Text rich in what a config reader might treat specially.
    fn hostile() -> impl Strategy<Value = String> {
        let atom = prop_oneof![
            Just("$".to_string()),
            Just("#".to_string()),
            Just(" ".to_string()),
            Just("\t".to_string()),
            Just("\n".to_string()),
            Just("\r".to_string()),
            Just("\u{1}".to_string()),
            Just("\\".to_string()),
            Just("'".to_string()),
            Just("\"".to_string()),
            Just("-".to_string()),
            Just(",".to_string()),
            Just("^".to_string()),
            Just("initrd=".to_string()),
            Just("append ".to_string()),
            Just("LABEL x".to_string()),
            Just("quiet".to_string()),
            "[a-z=.]{1,4}",
            any::<char>().prop_map(|c| c.to_string()),
        ];
        prop_oneof![
            prop::collection::vec(atom, 0..10).prop_map(|atoms| atoms.concat()),
            any::<String>(),
            "[a-z ]{2000,2100}",
        ]
    }

    fn http() -> Files {
        Files::Http {
            base: "http://192.0.2.1:8080".into(),
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1000))]

        #[test]
        fn the_kernel_sees_the_command_line_exactly(cmdline in hostile(), over_http in any::<bool>()) {
            let files = if over_http { http() } else { Files::Tftp };
            let linux = LinuxBoot::new("debian/vmlinuz")
                .initrd("initrd.img")
                .initrd("/more/fw.cpio")
                .cmdline(&cmdline);
            let (kernel, initrds) = if over_http {
                ("http://192.0.2.1:8080/debian/vmlinuz", vec![
                    "http://192.0.2.1:8080/initrd.img".to_string(),
                    "http://192.0.2.1:8080/more/fw.cpio".to_string(),
                ])
            } else {
                ("::debian/vmlinuz", vec!["::initrd.img".to_string(), "::more/fw.cpio".to_string()])
            };
            match render(&ScriptDecision::Linux(linux), &files) {
                Ok(config) => {
                    prop_assert!(!cmdline.contains(['\0', '\r', '\n']) && !cmdline.contains("initrd="));
                    let seen = outcome(&config).map_err(|e| TestCaseError::fail(format!("{e}\n{config}")))?;
                    let words: Vec<String> = [cmdline.clone(), format!("initrd={}", initrds.join(","))]
                        .into_iter()
                        .filter(|w| !w.is_empty())
                        .collect();
                    prop_assert_eq!(seen, Outcome::Linux {
                        kernel: kernel.to_string(),
                        cmdline: format!("BOOT_IMAGE={kernel} {}", words.join(" ")),
                        initrds,
                    });
                }
                Err(e) => {
                    prop_assert!(!carriable(&cmdline), "refused {:?}: {}", cmdline, e);
                }
            }
        }

        #[test]
        fn an_empty_command_line_and_no_initrd(kernel in "[a-z]{1,8}") {
            let config = render(&ScriptDecision::Linux(LinuxBoot::new(kernel.clone())), &Files::Tftp).unwrap();
            prop_assert_eq!(outcome(&config).unwrap(), Outcome::Linux {
                kernel: format!("::{kernel}"),
                cmdline: format!("BOOT_IMAGE=::{kernel} "),
                initrds: Vec::new(),
            });
        }

        #[test]
        fn file_names_arrive_exactly_or_are_refused(kernel in hostile(), initrd in hostile()) {
            let linux = LinuxBoot::new(kernel.clone()).initrd(initrd.clone()).cmdline("quiet");
            if let Ok(config) = render(&ScriptDecision::Linux(linux), &Files::Tftp) {
                let Outcome::Linux { kernel: k, initrds, .. } = outcome(&config).unwrap() else {
                    panic!("not a linux boot: {config}");
                };
                prop_assert_eq!(k, format!("::{}", kernel.trim_start_matches('/')));
                prop_assert_eq!(initrds, vec![format!("::{}", initrd.trim_start_matches('/'))]);
            }
            let linux = LinuxBoot::new(kernel.clone()).initrd(initrd.clone());
            if let Ok(config) = render(&ScriptDecision::Linux(linux), &http()) {
                let Outcome::Linux { kernel: k, initrds, .. } = outcome(&config).unwrap() else {
                    panic!("not a linux boot: {config}");
                };
                prop_assert!(k.starts_with("http://"));
                prop_assert_eq!(initrds.len(), 1);
                prop_assert!(k.ends_with(kernel.trim_start_matches('/')));
                prop_assert!(initrds[0].ends_with(initrd.trim_start_matches('/')));
            }
        }
    }

    #[test]
    fn config_names_are_read_as_pxelinux_writes_them() {
        let mac = MacAddr([0x52, 0x54, 0, 0x12, 0x34, 0xab]);
        let address = Ipv4Addr::new(192, 0, 2, 142);
        let ip = Some(address);
        let guid: ClientGuid = "9e0c1ab0-0000-4000-8000-000000000001".parse().unwrap();
        let named = |path: &str| ConfigName::parse(path);
        assert_eq!(
            named("pxelinux.cfg/01-52-54-00-12-34-ab"),
            Some(ConfigName::Mac(mac))
        );
        assert_eq!(
            named("/boot/pxelinux.cfg/01-52-54-00-12-34-AB"),
            Some(ConfigName::Mac(mac))
        );
        assert_eq!(named("pxelinux.cfg/default"), Some(ConfigName::Default));
        assert_eq!(
            named("pxelinux.cfg/9e0c1ab0-0000-4000-8000-000000000001"),
            Some(ConfigName::Uuid(guid))
        );
        // `%08X` of 192.0.2.142, shortened one digit at a time: every one names the client.
        let full = format!("{:08X}", u32::from(address));
        for digits in (1..=8).rev() {
            let name = named(&format!("pxelinux.cfg/{}", &full[..digits])).unwrap();
            assert!(name.names(mac, ip, None), "{name:?}");
            assert!(!name.names(mac, Some(Ipv4Addr::new(10, 0, 0, 1)), None));
        }
        assert!(ConfigName::Uuid(guid).names(mac, None, Some(guid)));
        assert!(!ConfigName::Mac(MacAddr([2, 0, 0, 0, 0, 1])).names(mac, ip, Some(guid)));
        for other in [
            "pxelinux.cfg/01-52-54-00-12-34",
            "pxelinux.cfg/01-52:54:00:12:34:ab",
            "pxelinux.cfg/01-52-54-00-12-34-zz",
            "pxelinux.cfg/C000028E0",
            "pxelinux.cfg/",
            "pxelinux.cfg/sub/default",
            "xpxelinux.cfg/default",
            "grub/grub.cfg",
        ] {
            assert_eq!(named(other), None, "{other}");
        }
        assert_eq!(
            bootif_cookie(
                b"_Syslinux_IP=192.0.2.142:192.0.2.1;_Syslinux_BOOTIF=01-52-54-00-12-34-ab;"
            ),
            Some(mac)
        );
        assert_eq!(
            bootif_cookie(b"_Syslinux_BOOTIF=02-52-54-00-12-34-ab"),
            None
        );
        assert_eq!(bootif_cookie(b"\xff;;="), None);
    }

    proptest! {
        #[test]
        fn names_pxelinux_writes_read_back(octets in any::<[u8; 6]>(), ip in any::<u32>(), digits in 1usize..=8) {
            let mac = MacAddr(octets);
            let name = format!("pxelinux.cfg/01-{}", mac.to_hyphenated().to_lowercase());
            prop_assert_eq!(ConfigName::parse(&name), Some(ConfigName::Mac(mac)));
            let hex = format!("{ip:08X}");
            let name = ConfigName::parse(&format!("pxelinux.cfg/{}", &hex[..digits])).unwrap();
            prop_assert!(name.names(mac, Some(Ipv4Addr::from(ip)), None));
        }

        #[test]
        fn any_path_parses_or_not_without_panicking(path in any::<String>()) {
            let _ = ConfigName::parse(&path);
            let _ = ConfigName::parse(&format!("pxelinux.cfg/{path}"));
            let _ = bootif_cookie(path.as_bytes());
        }
    }

    #[test]
    fn the_syntax_command_line_is_carried() {
        let cmdline = r#"#not-a-comment pxe.hash=#x && || ; pxe.quote='single' "pxe.note=two words" pxe.amp=a&b pxe.pipe=a|b pxe.tail=end"#;
        let linux = LinuxBoot::new("vmlinuz")
            .initrd("initrd.img")
            .cmdline(cmdline);
        let config = render(&ScriptDecision::Linux(linux), &Files::Tftp).unwrap();
        assert_eq!(
            config,
            format!(
                "DEFAULT pxe\nLABEL pxe\nLINUX ::vmlinuz\nINITRD ::initrd.img\nAPPEND {cmdline}\n"
            )
        );
        let Outcome::Linux { cmdline: seen, .. } = outcome(&config).unwrap() else {
            panic!()
        };
        assert_eq!(
            seen,
            format!("BOOT_IMAGE=::vmlinuz {cmdline} initrd=::initrd.img")
        );
    }

    #[test]
    fn what_pxelinux_cannot_do_is_refused_clearly() {
        let linux = LinuxBoot::new("vmlinuz").cmdline("root=/dev/sda initrd=other.img");
        let error = render(&ScriptDecision::Linux(linux), &Files::Tftp).unwrap_err();
        assert!(error.to_string().contains("initrd="), "{error}");
        let linux = LinuxBoot::new("http://192.0.2.1/vmlinuz");
        assert!(render(&ScriptDecision::Linux(linux.clone()), &Files::Tftp).is_err());
        assert_eq!(
            outcome(&render(&ScriptDecision::Linux(linux), &http()).unwrap()).unwrap(),
            Outcome::Linux {
                kernel: "http://192.0.2.1/vmlinuz".into(),
                cmdline: "BOOT_IMAGE=http://192.0.2.1/vmlinuz ".into(),
                initrds: Vec::new(),
            }
        );
        assert!(matches!(
            render(&ScriptDecision::Sanboot("x".into()), &Files::Tftp),
            Err(ConfigError::Unsupported { .. })
        ));
        assert_eq!(
            outcome(&render(&ScriptDecision::ExitToDisk, &Files::Tftp).unwrap()).unwrap(),
            Outcome::Localboot
        );
        assert_eq!(
            outcome(
                &render(
                    &ScriptDecision::Chain("ipxe/undionly.kpxe".into()),
                    &Files::Tftp
                )
                .unwrap()
            )
            .unwrap(),
            Outcome::Image("::ipxe/undionly.kpxe".into())
        );
    }
}
