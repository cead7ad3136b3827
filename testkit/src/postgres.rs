//! A real PostgreSQL for a test: a fresh cluster made with Debian's `initdb` in a scratch
//! directory, run with `pg_ctl` as the `postgres` user, listening only on a Unix socket in
//! that directory (no TCP port), stopped and removed when dropped.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A running PostgreSQL cluster of the test's own.
#[derive(Debug)]
pub struct Postgres {
    bin: PathBuf,
    dir: tempfile::TempDir,
}

/// The newest `/usr/lib/postgresql/N/bin` that has `initdb` and `pg_ctl`.
fn server_bin() -> Option<PathBuf> {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            (bin.join("initdb").exists() && bin.join("pg_ctl").exists()).then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin)
}

impl Postgres {
    /// Creates and starts a cluster, or, when PostgreSQL's server programs, root or the
    /// `postgres` user are missing, prints `SKIP <test>: …` and returns `None` (in CI it
    /// panics instead, as [`crate::prerequisites`] does).
    pub fn start(test: &str) -> Option<Self> {
        if !crate::prerequisites(test, true, &["runuser"]) {
            return None;
        }
        let Some(bin) = server_bin() else {
            let reason = format!(
                "SKIP {test}: needs PostgreSQL's server (Debian package postgresql: initdb and \
                 pg_ctl in /usr/lib/postgresql/N/bin)"
            );
            assert!(!crate::in_ci(), "{reason}; CI must run every test");
            eprintln!("{reason}");
            return None;
        };
        let dir = tempfile::Builder::new()
            .prefix("pxe-pg-")
            .tempdir()
            .expect("scratch directory");
        // The cluster's files belong to `postgres`, which must also reach the directory.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
            .expect("chmod scratch directory");
        crate::run_checked("chown", &["postgres:", dir.path().to_str().expect("utf-8")]);
        let postgres = Self { bin, dir };
        let data = postgres.data();
        postgres.as_postgres(
            "initdb",
            &[
                "-D",
                data.to_str().expect("utf-8"),
                "-U",
                "postgres",
                "--auth=trust",
                "--no-sync",
                "-E",
                "UTF8",
            ],
        );
        postgres.start_again();
        Some(postgres)
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The directory of the server's Unix socket.
    pub fn socket_dir(&self) -> &Path {
        self.dir.path()
    }

    /// A connection string for the `postgres` database as the `postgres` user, over the
    /// Unix socket.
    pub fn url(&self) -> String {
        format!(
            "host={} user=postgres dbname=postgres",
            self.socket_dir().display()
        )
    }

    /// Starts the server (again, after [`Self::stop`]) and waits until it accepts
    /// connections.
    pub fn start_again(&self) {
        let options = format!(
            "-c listen_addresses='' -c unix_socket_directories='{}' -c fsync=off",
            self.socket_dir().display()
        );
        let log = self.dir.path().join("postgres.log");
        self.as_postgres(
            "pg_ctl",
            &[
                "-D",
                self.data().to_str().expect("utf-8"),
                "-l",
                log.to_str().expect("utf-8"),
                "-o",
                &options,
                "-w",
                "-t",
                "30",
                "start",
            ],
        );
    }

    /// Stops the server (fast shutdown: connections are closed at once), as an outage.
    pub fn stop(&self) {
        self.as_postgres(
            "pg_ctl",
            &[
                "-D",
                self.data().to_str().expect("utf-8"),
                "-m",
                "fast",
                "-w",
                "-t",
                "30",
                "stop",
            ],
        );
    }

    /// Runs `sql` with `psql` (unaligned, tuples only) and returns its output.
    pub fn psql(&self, sql: &str) -> String {
        let psql = self.bin.join("psql");
        let psql = if psql.exists() {
            psql
        } else {
            PathBuf::from("psql")
        };
        let output = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(psql)
            .args(["-h", self.socket_dir().to_str().expect("utf-8")])
            .args([
                "-U",
                "postgres",
                "-d",
                "postgres",
                "-At",
                "-v",
                "ON_ERROR_STOP=1",
                "-c",
                sql,
            ])
            .output()
            .expect("psql runs");
        assert!(
            output.status.success(),
            "psql {sql:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    fn as_postgres(&self, program: &str, args: &[&str]) -> Output {
        let output = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(self.bin.join(program))
            .args(args)
            .current_dir(self.dir.path())
            .output()
            .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
        assert!(
            output.status.success(),
            "{program} {args:?} failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        output
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        // Immediate: the cluster is thrown away with its directory.
        let _ = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(self.bin.join("pg_ctl"))
            .args(["-D"])
            .arg(self.data())
            .args(["-m", "immediate", "-w", "stop"])
            .output();
    }
}
