//! GRUB configs from a [`ScriptDecision`]: what shim's GRUB reads as `grub/grub.cfg`.
//!
//! How GRUB reads a config (GRUB 2.06 as Debian 12 signs it, to 2.12; `grub-core/lib/getline.c`, `normal/main.c`,
//! `script/yylex.l`): line by line, every `\r` dropped, a line starting with `#` skipped; a
//! line is split on blanks (space, tab) into words; `{ } | & $ ; < >` are syntax outside
//! quotes, `$` expands a variable, `\` escapes, `"…"` expands `$` and escapes, and `'…'` keeps
//! everything but `'` literally (a quote left open continues on the next line). The `linux`
//! command then rebuilds the kernel's command line from its arguments
//! (`lib/cmdline.c`): `BOOT_IMAGE=` and the kernel's path, then each argument after one space,
//! with `\`, `'` and `"` preceded by a backslash, and an argument holding a space wrapped in
//! double quotes.
//!
//! So the renderer writes every argument that is not plain between single quotes, splits the
//! command line on single spaces, and refuses what GRUB would change on the way: `'`, `"`, `\`,
//! NUL, CR, LF, and leading, trailing or repeated spaces (GRUB joins arguments with one
//! space). The kernel sees `BOOT_IMAGE=/path/of/kernel` followed by the command line.
//!
//! Files are read from GRUB's root, the TFTP server it was loaded from (Debian's signed
//! network GRUB has no HTTP): a decision's references must be relative (to the server's file
//! root) and are written as absolute paths (`debian/vmlinuz` → `/debian/vmlinuz`).

use crate::{ConfigError, LinuxBoot, ScriptDecision};

const LOADER: &str = "grub";

/// The words GRUB's lexer reads as reserved when unquoted.
const RESERVED: [&str; 15] = [
    "case", "do", "done", "elif", "else", "esac", "fi", "for", "if", "in", "select", "then",
    "until", "while", "function",
];

/// Writes `decision` as a `grub.cfg` that GRUB runs top to bottom.
///
/// - `Linux`: `linux PATH ARGS…`, `initrd PATHS…`, `boot`.
/// - `Chain`: `chainloader PATH`, `boot` (an EFI application from the TFTP server).
/// - `ExitToDisk` and `Ignore`: `exit 1`, back to the firmware with a failure, so that the
///   boot manager tries its next boot option (GRUB 2.12 and later). GRUB 2.06 (Debian 12)
///   ignores the status and leaves with `EFI_SUCCESS`, after which EDK2 (OVMF) opens its boot
///   manager menu instead (seen in the lab; docs/FIRMWARE.md): firmware that goes on down its
///   boot order reaches the disk, OVMF does not.
/// - `Sanboot`, `Iscsi` and `Custom` (an iPXE script) are refused: GRUB cannot do them.
pub fn render(decision: &ScriptDecision) -> Result<String, ConfigError> {
    if let Some(asked) = decision.ipxe_only() {
        return Err(ConfigError::Unsupported {
            loader: LOADER,
            decision: asked,
        });
    }
    let mut config = String::from("# pxe: this client's boot, for GRUB\n");
    match decision {
        ScriptDecision::Linux(linux) => render_linux(&mut config, linux)?,
        ScriptDecision::Chain(target) => {
            let path = server_path(LOADER, "chain target", target)?;
            config.push_str("chainloader ");
            push_word(&mut config, &path);
            config.push_str("\nboot\n");
        }
        // `ExitToDisk`, `Ignore`, and decisions this version does not know: leave, with a
        // failure status so that the UEFI boot manager tries its next boot option (after a
        // success EDK2 opens its menu). GRUB 2.12 and later return it; Debian 12's 2.06
        // takes no status and ignores it, leaving with success.
        _ => config.push_str("exit 1\n"),
    }
    Ok(config)
}

fn render_linux(config: &mut String, linux: &LinuxBoot) -> Result<(), ConfigError> {
    let kernel = server_path(LOADER, "kernel", &linux.kernel)?;
    let initrds = linux
        .initrds
        .iter()
        .map(|initrd| server_path(LOADER, "initrd", initrd))
        .collect::<Result<Vec<_>, _>>()?;
    let args = cmdline_args(&linux.cmdline)?;
    config.push_str("linux ");
    push_word(config, &kernel);
    for arg in args {
        config.push(' ');
        push_word(config, arg);
    }
    config.push('\n');
    if !initrds.is_empty() {
        config.push_str("initrd");
        for initrd in &initrds {
            config.push(' ');
            push_word(config, initrd);
        }
        config.push('\n');
    }
    config.push_str("boot\n");
    Ok(())
}

/// The command line as `linux` arguments, which GRUB joins back with single spaces.
fn cmdline_args(cmdline: &str) -> Result<Vec<&str>, ConfigError> {
    let refuse = |reason| {
        Err(ConfigError::Value {
            loader: LOADER,
            what: "command line",
            value: cmdline.to_string(),
            reason,
        })
    };
    if cmdline.contains(['\'', '"', '\\']) {
        return refuse("GRUB's `linux` puts a backslash before every `'`, `\"` and `\\`");
    }
    if cmdline.contains(['\0', '\r', '\n']) {
        return refuse("NUL, CR and LF end or split a GRUB config line");
    }
    if cmdline.is_empty() {
        return Ok(Vec::new());
    }
    if cmdline.starts_with(' ') || cmdline.ends_with(' ') || cmdline.contains("  ") {
        return refuse(
            "GRUB joins arguments with one space: leading, trailing or repeated spaces are lost",
        );
    }
    Ok(cmdline.split(' ').collect())
}

/// Whether GRUB reads `word` unquoted as exactly itself.
fn is_plain(word: &str) -> bool {
    !word.is_empty()
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=,:+@%^~".contains(&b))
        && !RESERVED.contains(&word)
}

/// Appends `word` as one GRUB word: plain, or between single quotes (the callers have
/// refused `'`, NUL, CR and LF).
fn push_word(config: &mut String, word: &str) {
    if is_plain(word) {
        config.push_str(word);
    } else {
        config.push('\'');
        config.push_str(word);
        config.push('\'');
    }
}

/// A decision's file reference as an absolute path on the loader's TFTP server: relative
/// references are taken from the server's file root, where the HTTP stage serves them too.
/// Only printable ASCII without blanks, quotes, `\`, `%`, `?`, `#`, `,` and `:` (which either
/// loader or the URL form would read differently), and no `.` or `..` segment.
pub(crate) fn server_path(
    loader: &'static str,
    what: &'static str,
    reference: &str,
) -> Result<String, ConfigError> {
    let refuse = |reason| {
        Err(ConfigError::Value {
            loader,
            what,
            value: reference.to_string(),
            reason,
        })
    };
    if reference.contains("://") {
        return refuse("this loader reads files from its TFTP server: use a path relative to the server's file root");
    }
    if reference.is_empty()
        || !reference
            .bytes()
            .all(|b| b.is_ascii_graphic() && !b"'\"\\%?#,:".contains(&b))
    {
        return refuse("a file path must be printable ASCII without blanks, quotes, `\\`, `%`, `?`, `#`, `,` or `:`");
    }
    let path = reference.trim_start_matches('/');
    if path.is_empty()
        || path
            .split('/')
            .any(|s| s.is_empty() || s == "." || s == "..")
    {
        return refuse("empty, `.` and `..` path segments name no file");
    }
    Ok(format!("/{path}"))
}

/// A model of how GRUB reads a config and what the kernel then sees: written from GRUB's
/// source (see the module text) for the tests and the fuzz target, which check every rendered
/// config against it. Public only under `cfg(fuzzing)`.
#[cfg(any(test, fuzzing))]
pub mod model {
    /// One command GRUB runs: its words after quoting and escapes are removed.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct Run {
        /// The command's name and arguments.
        pub argv: Vec<String>,
    }

    /// Reads a config the way GRUB's getline and lexer do, for the subset a renderer may
    /// write; anything outside it (a variable, an operator, an open quote, a reserved word) is
    /// an error naming it, since GRUB would not read it as plain words.
    pub fn read(config: &str) -> Result<Vec<Run>, String> {
        let mut runs = Vec::new();
        for raw in config.split('\n') {
            // getline: every CR dropped; a line starting with `#` skipped whole.
            let line: Vec<u8> = raw.bytes().filter(|&b| b != b'\r').collect();
            if line.first() == Some(&b'#') {
                continue;
            }
            if line.contains(&0) {
                return Err("NUL in a line".into());
            }
            let argv = words(&line)?;
            if let Some(first) = argv.first() {
                if super::RESERVED.contains(&first.0.as_str()) && !first.1 {
                    return Err(format!("reserved word {:?}", first.0));
                }
            }
            for (word, quoted) in &argv {
                if !quoted && super::RESERVED.contains(&word.as_str()) {
                    return Err(format!("reserved word {word:?} unquoted"));
                }
            }
            if !argv.is_empty() {
                runs.push(Run {
                    argv: argv.into_iter().map(|(w, _)| w).collect(),
                });
            }
        }
        Ok(runs)
    }

    /// The words of one line, each with whether any of it was quoted.
    fn words(line: &[u8]) -> Result<Vec<(String, bool)>, String> {
        let mut out = Vec::new();
        let mut i = 0;
        while i < line.len() {
            match line[i] {
                b' ' | b'\t' => i += 1,
                // COMMENT: `#` where a word would start runs to the end of the line.
                b'#' => break,
                b'{' | b'}' | b'|' | b'&' | b'$' | b';' | b'<' | b'>' | b'"' => {
                    return Err(format!("syntax or expansion {:?}", line[i] as char))
                }
                _ => {
                    let mut word = Vec::new();
                    let mut quoted = false;
                    while i < line.len() {
                        match line[i] {
                            b' ' | b'\t' => break,
                            b'\'' => {
                                let end = line[i + 1..]
                                    .iter()
                                    .position(|&b| b == b'\'')
                                    .ok_or("a quote left open continues on the next line")?;
                                word.extend_from_slice(&line[i + 1..i + 1 + end]);
                                quoted = true;
                                i += end + 2;
                            }
                            b'\\' => {
                                let &next = line.get(i + 1).ok_or("a line continued")?;
                                word.push(next);
                                quoted = true;
                                i += 2;
                            }
                            b'{' | b'}' | b'|' | b'&' | b'$' | b';' | b'<' | b'>' | b'"' => {
                                return Err(format!(
                                    "syntax or expansion {:?} in a word",
                                    line[i] as char
                                ))
                            }
                            b => {
                                word.push(b);
                                i += 1;
                            }
                        }
                    }
                    let word = String::from_utf8(word).map_err(|e| e.to_string())?;
                    // Flex takes the longest match: only a bare `[[` or `]]` is the token.
                    if !quoted && (word == "[[" || word == "]]") {
                        return Err("`[[` or `]]`".into());
                    }
                    out.push((word, quoted));
                }
            }
        }
        Ok(out)
    }

    /// The command line the kernel gets from `linux ARGV…` (`grub_create_loader_cmdline`
    /// after `BOOT_IMAGE=`; the `\xHH` sequences it leaves alone are not modelled, as the
    /// renderer never writes a `\`).
    pub fn kernel_cmdline(linux_argv: &[String]) -> String {
        let mut out = String::from("BOOT_IMAGE=");
        for (i, arg) in linux_argv.iter().enumerate() {
            if i > 0 {
                out.push(' ');
            }
            let space = arg.contains(' ');
            if space {
                out.push('"');
            }
            for c in arg.chars() {
                if matches!(c, '\\' | '\'' | '"') {
                    out.push('\\');
                }
                out.push(c);
            }
            if space {
                out.push('"');
            }
        }
        out
    }

    /// What booting the config does, for the subset the renderer writes.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub enum Outcome {
        /// `linux` + `initrd` + `boot`: the kernel's path, what it sees, the initrds' paths.
        Linux {
            /// The kernel's path.
            kernel: String,
            /// The command line the kernel sees.
            cmdline: String,
            /// The initrds' paths.
            initrds: Vec<String>,
        },
        /// `chainloader PATH` + `boot`.
        Chain(String),
        /// `exit`.
        Exit,
    }

    /// Runs the config's commands as GRUB would for the subset the renderer writes.
    pub fn outcome(config: &str) -> Result<Outcome, String> {
        let (mut kernel, mut initrds, mut chain) = (None, Vec::new(), None);
        for run in read(config)? {
            match run.argv[0].as_str() {
                "linux" => {
                    let argv = &run.argv[1..];
                    let path = argv.first().ok_or("linux without a kernel")?;
                    kernel = Some((path.clone(), kernel_cmdline(argv)));
                }
                "initrd" => initrds = run.argv[1..].to_vec(),
                "chainloader" => chain = Some(run.argv.get(1).ok_or("no file")?.clone()),
                "boot" => {
                    return match (kernel, chain) {
                        (Some((kernel, cmdline)), None) => Ok(Outcome::Linux {
                            kernel,
                            cmdline,
                            initrds,
                        }),
                        (None, Some(path)) => Ok(Outcome::Chain(path)),
                        _ => Err("boot without one image".into()),
                    }
                }
                "exit" => return Ok(Outcome::Exit),
                other => return Err(format!("unexpected command {other:?}")),
            }
        }
        Err("the config ends without booting".into())
    }
}

#[cfg(test)]
mod tests {
    use super::model::{outcome, Outcome};
    use super::*;
    use proptest::prelude::*;

    /// What GRUB can carry: no quotes, backslash, NUL, CR or LF, and single spaces inside.
    fn carriable(cmdline: &str) -> bool {
        !cmdline.contains(['\'', '"', '\\', '\0', '\r', '\n'])
            && !cmdline.starts_with(' ')
            && !cmdline.ends_with(' ')
            && !cmdline.contains("  ")
    }

    /// Text rich in what GRUB's lexer treats specially.
    fn hostile() -> impl Strategy<Value = String> {
        let atom = prop_oneof![
            Just("$".to_string()),
            Just("${x}".to_string()),
            Just("{".to_string()),
            Just("}".to_string()),
            Just("#".to_string()),
            Just(" ".to_string()),
            Just("\t".to_string()),
            Just("\n".to_string()),
            Just("\r".to_string()),
            Just("\\".to_string()),
            Just("'".to_string()),
            Just("\"".to_string()),
            Just("||".to_string()),
            Just("&&".to_string()),
            Just(";".to_string()),
            Just("|".to_string()),
            Just("<".to_string()),
            Just("[[".to_string()),
            Just("if".to_string()),
            Just("fi".to_string()),
            "[a-z=.]{1,4}",
            any::<char>().prop_map(|c| c.to_string()),
        ];
        prop_oneof![
            prop::collection::vec(atom, 0..10).prop_map(|atoms| atoms.concat()),
            any::<String>(),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1000))]

        #[test]
        fn the_kernel_sees_the_command_line_exactly(cmdline in hostile()) {
            let linux = LinuxBoot::new("debian/vmlinuz").initrd("initrd.img").cmdline(&cmdline);
            match render(&ScriptDecision::Linux(linux)) {
                Ok(config) => {
                    prop_assert!(carriable(&cmdline), "accepted {:?}", cmdline);
                    let seen = outcome(&config).map_err(|e| TestCaseError::fail(format!("{e}\n{config}")))?;
                    let expected = if cmdline.is_empty() {
                        "BOOT_IMAGE=/debian/vmlinuz".to_string()
                    } else {
                        format!("BOOT_IMAGE=/debian/vmlinuz {cmdline}")
                    };
                    prop_assert_eq!(seen, Outcome::Linux {
                        kernel: "/debian/vmlinuz".into(),
                        cmdline: expected,
                        initrds: vec!["/initrd.img".into()],
                    });
                }
                Err(e) => {
                    prop_assert!(!carriable(&cmdline), "refused {:?}: {}", cmdline, e);
                    prop_assert!(matches!(e, ConfigError::Value { what: "command line", .. }), "{}", e);
                }
            }
        }

        #[test]
        fn file_paths_arrive_exactly_or_are_refused(kernel in hostile(), initrd in hostile()) {
            let linux = LinuxBoot::new(kernel.clone()).initrd(initrd.clone());
            let path_ok = |p: &str| {
                let t = p.trim_start_matches('/');
                !p.contains("://")
                    && !t.is_empty()
                    && p.bytes().all(|b| b.is_ascii_graphic() && !b"'\"\\%?#,:".contains(&b))
                    && t.split('/').all(|s| !s.is_empty() && s != "." && s != "..")
            };
            match render(&ScriptDecision::Linux(linux)) {
                Ok(config) => {
                    let Outcome::Linux { kernel: k, initrds, .. } = outcome(&config).unwrap() else {
                        panic!("not a linux boot: {config}");
                    };
                    prop_assert_eq!(k, format!("/{}", kernel.trim_start_matches('/')));
                    prop_assert_eq!(initrds, vec![format!("/{}", initrd.trim_start_matches('/'))]);
                }
                Err(_) => prop_assert!(!path_ok(&kernel) || !path_ok(&initrd)),
            }
        }

        #[test]
        fn chain_targets_arrive_exactly_or_are_refused(target in hostile()) {
            match render(&ScriptDecision::Chain(target.clone())) {
                Ok(config) => prop_assert_eq!(
                    outcome(&config).unwrap(),
                    Outcome::Chain(format!("/{}", target.trim_start_matches('/')))
                ),
                Err(e) => prop_assert!(matches!(e, ConfigError::Value { what: "chain target", .. }), "{}", e),
            }
        }
    }

    #[test]
    fn a_linux_boot_reads_naturally() {
        let linux = LinuxBoot::new("vmlinuz")
            .initrd("initrd.img")
            .initrd("/extra/firmware.cpio")
            .cmdline("console=ttyS0,115200 quiet pxe.hash=#x a;b $HOME if");
        assert_eq!(
            render(&ScriptDecision::Linux(linux)).unwrap(),
            "# pxe: this client's boot, for GRUB\n\
             linux /vmlinuz console=ttyS0,115200 quiet 'pxe.hash=#x' 'a;b' '$HOME' 'if'\n\
             initrd /initrd.img /extra/firmware.cpio\n\
             boot\n"
        );
    }

    #[test]
    fn what_grub_cannot_do_is_refused_clearly() {
        let quote = LinuxBoot::new("vmlinuz").cmdline("pxe.quote='single'");
        let error = render(&ScriptDecision::Linux(quote)).unwrap_err();
        assert!(error.to_string().contains("backslash"), "{error}");
        let http = LinuxBoot::new("http://192.0.2.1/vmlinuz");
        let error = render(&ScriptDecision::Linux(http)).unwrap_err();
        assert!(error.to_string().contains("TFTP"), "{error}");
        assert!(matches!(
            render(&ScriptDecision::Sanboot("http://192.0.2.1/disk.img".into())),
            Err(ConfigError::Unsupported { .. })
        ));
        assert!(matches!(
            render(&ScriptDecision::Custom(crate::Script::new())),
            Err(ConfigError::Unsupported { .. })
        ));
        assert_eq!(
            outcome(&render(&ScriptDecision::ExitToDisk).unwrap()).unwrap(),
            Outcome::Exit
        );
        assert_eq!(
            outcome(&render(&ScriptDecision::Ignore).unwrap()).unwrap(),
            Outcome::Exit
        );
    }

    #[test]
    fn the_model_reads_what_grub_reads() {
        // Quotes join, a `#` inside a word is text, `\` escapes, CRs vanish.
        let runs = model::read("echo a'b c'd e#f \\$x\r\n# comment\n\necho '' #tail\n").unwrap();
        assert_eq!(runs[0].argv, ["echo", "ab cd", "e#f", "$x"]);
        assert_eq!(runs[1].argv, ["echo", ""]);
        for bad in ["echo $x", "echo a;b", "echo 'open", "if x", "echo \"q\""] {
            assert!(model::read(bad).is_err(), "{bad}");
        }
        assert_eq!(
            model::kernel_cmdline(&["/k".into(), "a b".into(), "q'".into()]),
            "BOOT_IMAGE=/k \"a b\" q\\'"
        );
    }
}
