//! GRUB's own reader as the peer of `pxe_policy::grub`: grub-emu (Debian's `grub-emu`, GRUB's
//! real lexer and script engine in a process) reads rendered configs and prints, one line
//! each, the words the `linux` and `initrd` lines give their commands. They must be exactly the
//! command line split at its spaces and the paths given. (What `linux` then makes of its
//! words, `BOOT_IMAGE=` and backslashes before quotes, is the unit tests' model of
//! `lib/cmdline.c`; the renderer refuses the characters it would change.)
//!
//! Only printable ASCII is sent: GRUB's terminal wraps and transcodes what it prints, which
//! would blur the comparison, not the lexer's reading.

use std::path::Path;
use std::process::Command;

use pxe_policy::{grub, LinuxBoot, ScriptDecision};

/// What GRUB's lexer treats specially outside quotes, and words it reserves.
const ATOMS: [&str; 27] = [
    "$", "${x}", "$HOME", "{", "}", "#", ";", "|", "&", "<", ">", "[[", "]]", "if", "do", "*", "?",
    "@", "!", "=", "(", ")", "%", "^", "~", "a", "$1",
];

/// Rewrites a rendered config so that GRUB prints the words of each `linux` and `initrd` line
/// instead of running it: the words themselves are left exactly as rendered.
fn printing(config: &str, case: usize) -> String {
    let mut out = format!("echo PXE-CASE-{case}\n");
    for line in config.lines() {
        for command in ["linux ", "initrd "] {
            if let Some(words) = line.strip_prefix(command) {
                out.push_str(&format!(
                    "echo PXE-{}\nfor pxe_a in {words}; do echo \"PXE-ARG[$pxe_a]\"; done\n",
                    command.trim()
                ));
            }
        }
    }
    out
}

/// Runs grub-emu on `config` (bounded to 60 s) and returns what it printed, escape sequences
/// and carriage returns removed.
fn run_grub_emu(config: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink("/usr/lib/grub/x86_64-emu", dir.path().join("x86_64-emu")).unwrap();
    std::fs::write(dir.path().join("grub.cfg"), config).unwrap();
    let output = Command::new("timeout")
        .arg("60")
        .arg("grub-emu")
        .arg("-d")
        .arg(dir.path())
        .args(["-m", "/dev/null"])
        .stdin(std::process::Stdio::null())
        .output()
        .expect("grub-emu runs");
    assert!(output.status.success(), "grub-emu: {output:?}");
    let text = String::from_utf8_lossy(&output.stdout);
    let mut clean = String::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            // ESC [ parameters, up to the final letter.
            '\u{1b}' => {
                for c in chars.by_ref() {
                    if c.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
            '\r' => {}
            c => clean.push(c),
        }
    }
    clean
}

/// The words GRUB printed per case, per command.
fn printed(output: &str, cases: usize) -> Vec<(Vec<String>, Vec<String>)> {
    let mut seen = vec![(Vec::new(), Vec::new()); cases];
    let (mut case, mut command) = (None, "");
    for line in output.lines() {
        if let Some(n) = line.strip_prefix("PXE-CASE-") {
            case = n.trim().parse::<usize>().ok();
        } else if line == "PXE-linux" || line == "PXE-initrd" {
            command = line;
        } else if let Some(word) = line
            .strip_prefix("PXE-ARG[")
            .and_then(|w| w.strip_suffix(']'))
        {
            let entry = &mut seen[case.expect("a case first")];
            match command {
                "PXE-linux" => entry.0.push(word.to_string()),
                _ => entry.1.push(word.to_string()),
            }
        }
    }
    seen
}

#[test]
fn grub_reads_every_rendered_word_exactly() {
    if !Path::new("/usr/lib/grub/x86_64-emu").is_dir() {
        let reason = "SKIP grub_reads_every_rendered_word_exactly: needs `grub-emu` (Debian's \
                      grub-emu; scripts/test installs it)";
        assert!(std::env::var_os("CI").is_none(), "{reason}");
        eprintln!("{reason}");
        return;
    }
    // Every pair of atoms as a word, a row of them per command line; and the iPXE cases'
    // syntax command line without its quotes, which GRUB cannot carry.
    let mut cases: Vec<(String, String, String)> = ATOMS
        .iter()
        .map(|a| {
            let words: Vec<String> = ATOMS.iter().map(|b| format!("{a}{b}")).collect();
            (
                "debian/vmlinuz".to_string(),
                "initrd.img".to_string(),
                words.join(" "),
            )
        })
        .collect();
    cases.push((
        "k$1/vm;linuz".into(),
        "i{n}itrd|img".into(),
        "#not-a-comment pxe.hash=#x && || ; pxe.amp=a&b pxe.pipe=a|b pxe.tail=end".into(),
    ));
    cases.push(("vmlinuz".into(), "if".into(), "quiet".into()));
    let mut config = String::new();
    for (index, (kernel, initrd, cmdline)) in cases.iter().enumerate() {
        let linux = LinuxBoot::new(kernel.as_str())
            .initrd(initrd.as_str())
            .cmdline(cmdline.as_str());
        let rendered = grub::render(&ScriptDecision::Linux(linux))
            .unwrap_or_else(|e| panic!("{cmdline:?}: {e}"));
        config.push_str(&printing(&rendered, index));
    }
    config.push_str("echo PXE-DONE\nhalt\n");
    let output = run_grub_emu(&config);
    assert!(
        output.contains("PXE-DONE"),
        "grub-emu did not finish:\n{output}"
    );
    for ((kernel, initrd, cmdline), (linux_words, initrd_words)) in
        cases.iter().zip(printed(&output, cases.len()))
    {
        let mut expected = vec![format!("/{kernel}")];
        expected.extend(cmdline.split(' ').map(str::to_string));
        assert_eq!(
            linux_words, expected,
            "the words of `linux` for {cmdline:?}"
        );
        assert_eq!(initrd_words, vec![format!("/{initrd}")]);
    }
}
