//! The boot payload the firmware lab boots: Debian's stock kernel and a busybox initrd whose
//! `/init` prints [`BootPayload::marker`] and `/proc/cmdline` on the serial console, then
//! powers off.
//!
//! `scripts/lab/build-payload.sh` builds it (`apt-get download` + `dpkg -x`, cpio); this
//! module runs that script once and caches the result under the cargo target directory
//! (`lab-payload-<hash of the script>/`), so every test after the first reuses it.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The tools building the payload needs, for [`crate::prerequisites`].
pub const PAYLOAD_TOOLS: &[&str] = &["apt-get", "dpkg", "cpio", "gzip", "busybox"];

/// A kernel and initrd that print a marker and their command line to `ttyS0`.
#[derive(Clone, Debug)]
pub struct BootPayload {
    /// The kernel (bzImage with an EFI stub).
    pub kernel: PathBuf,
    /// The initrd (gzip'd newc cpio).
    pub initrd: PathBuf,
    /// What `/init` prints first; the line after it is `cmdline: <the kernel command line>`,
    /// then [`BootPayload::end_marker`].
    pub marker: String,
}

impl BootPayload {
    /// What `/init` prints last: once it is on the console, so is the command line.
    pub fn end_marker(&self) -> String {
        format!("{}-END", self.marker)
    }

    /// The kernel command line the guest printed after the marker, if it is on `console`.
    pub fn printed_cmdline(&self, console: &str) -> Option<String> {
        let after = &console[console.find(&self.marker)? + self.marker.len()..];
        let line = after
            .lines()
            .find_map(|line| line.strip_prefix("cmdline: "))?;
        Some(line.trim_end_matches('\r').to_string())
    }

    /// Waits for `vm` to boot this payload and checks that the kernel saw `cmdline` (within
    /// its command line, which may hold more). Panics with the console and `server_log()` (the
    /// serving side's story) when it does not. Returns the time from VM start to the marker.
    pub fn assert_boots(
        &self,
        vm: &mut crate::Vm,
        cmdline: &str,
        timeout: std::time::Duration,
        server_log: impl Fn() -> String,
    ) -> std::time::Duration {
        let seen = vm
            .wait_for_marker(&self.end_marker(), timeout)
            .unwrap_or_else(|missing| {
                panic!(
                    "the VM meant to boot {cmdline:?} did not: {missing}\n--- server ---\n{}",
                    server_log()
                )
            });
        let printed = self
            .printed_cmdline(&seen.console)
            .expect("the payload prints its command line after the marker");
        assert!(
            printed.contains(cmdline),
            "the kernel saw {printed:?}, not {cmdline:?}"
        );
        seen.elapsed
    }

    /// Copies kernel and initrd into `dir` as `vmlinuz` and `initrd.img` (for a server's file
    /// root).
    pub fn copy_to(&self, dir: &Path) -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        std::fs::copy(&self.kernel, dir.join("vmlinuz"))?;
        std::fs::copy(&self.initrd, dir.join("initrd.img"))?;
        Ok(())
    }
}

/// The cargo target directory: `CARGO_TARGET_DIR` when set, else the workspace's `target/`.
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"))
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("testkit lives inside the workspace")
        .to_path_buf()
}

/// The boot payload, built on first use (a few seconds plus a ~70 MB kernel package
/// download) and cached in `<target>/lab-payload-<hash>/`.
///
/// Panics with the script's output if it cannot be built (check [`PAYLOAD_TOOLS`] and root
/// with [`crate::prerequisites`] first).
pub fn boot_payload() -> &'static BootPayload {
    static PAYLOAD: OnceLock<BootPayload> = OnceLock::new();
    PAYLOAD.get_or_init(|| {
        let script = workspace_root().join("scripts/lab/build-payload.sh");
        let source = std::fs::read(&script)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", script.display()));
        // Keyed by the script's text, so a changed script never reuses an old payload.
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        source.hash(&mut hasher);
        let dir = target_dir().join(format!("lab-payload-{:016x}", hasher.finish()));
        if let Some(payload) = read_cached(&dir) {
            return payload;
        }
        // Build beside the cache and rename into place, so a concurrent test process never
        // sees half a payload.
        let staging = dir.with_extension(std::process::id().to_string());
        let output = Command::new("bash")
            .arg(&script)
            .arg(&staging)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
        assert!(
            output.status.success(),
            "{} failed ({}):\n{}",
            script.display(),
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        if std::fs::rename(&staging, &dir).is_err() {
            // Another process published first: use its copy.
            let _ = std::fs::remove_dir_all(&staging);
        }
        read_cached(&dir).unwrap_or_else(|| panic!("{} is incomplete", dir.display()))
    })
}

fn read_cached(dir: &Path) -> Option<BootPayload> {
    let marker = std::fs::read_to_string(dir.join("marker")).ok()?;
    let payload = BootPayload {
        kernel: dir.join("vmlinuz"),
        initrd: dir.join("initrd.img"),
        marker: marker.trim().to_string(),
    };
    (payload.kernel.is_file() && payload.initrd.is_file() && !payload.marker.is_empty())
        .then_some(payload)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printed_cmdline_is_the_line_after_the_marker() {
        let payload = BootPayload {
            kernel: PathBuf::new(),
            initrd: PathBuf::new(),
            marker: "MARK".into(),
        };
        let console =
            "firmware noise\r\n[ 1.0] kernel\r\nMARK\r\ncmdline: a \"b c\" #d\r\nMARK-END\r\n";
        assert_eq!(
            payload.printed_cmdline(console).as_deref(),
            Some("a \"b c\" #d")
        );
        assert_eq!(payload.printed_cmdline("no marker here"), None);
    }
}
