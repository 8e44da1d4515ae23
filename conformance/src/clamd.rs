//! A private clamd for tests: Debian's `clamav-daemon` (installed by `scripts/test.sh`)
//! with its own clamd.conf on a free loopback port and its own one-line signature
//! database matching the EICAR test string. No internet, no freshclam.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// The 68-byte EICAR anti-virus test string.
pub const EICAR: &[u8] = b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*";
/// Name of the test signature (clamd reports it with an `.UNOFFICIAL` suffix).
pub const SIGNATURE: &str = "S3dedup.Test.EICAR";

/// A running private clamd.
#[derive(Debug)]
pub struct Clamd {
    child: Option<Child>,
    dir: tempfile::TempDir,
    port: u16,
}

fn clamd_binary() -> PathBuf {
    std::env::var_os("S3DEDUP_CLAMD_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/sbin/clamd"))
}

impl Clamd {
    /// Writes the config and signature database and starts clamd; returns once it
    /// answers PING.
    pub fn start() -> Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("s3dedup-clamd-")
            .tempdir()?;
        let db = dir.path().join("db");
        std::fs::create_dir_all(&db)?;
        let hex: String = EICAR.iter().map(|b| format!("{b:02x}")).collect();
        std::fs::write(
            db.join("s3dedup-test.ndb"),
            format!("{SIGNATURE}:0:*:{hex}\n"),
        )?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let conf = format!(
            "Foreground yes\nTCPAddr 127.0.0.1\nTCPSocket {port}\nLocalSocket {sock}\n\
             DatabaseDirectory {db}\n\
             LogFile {log}\nTemporaryDirectory {tmp}\nStreamMaxLength 64M\nMaxFileSize 64M\n\
             MaxScanSize 256M\nAlertExceedsMax yes\n",
            db = db.display(),
            sock = dir.path().join("clamd.sock").display(),
            log = dir.path().join("clamd.log").display(),
            tmp = dir.path().display(),
        );
        std::fs::write(dir.path().join("clamd.conf"), conf)?;
        let mut c = Clamd {
            child: None,
            dir,
            port,
        };
        c.spawn()?;
        Ok(c)
    }

    fn spawn(&mut self) -> Result<()> {
        let child = Command::new(clamd_binary())
            .arg("-c")
            .arg(self.dir.path().join("clamd.conf"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| {
                format!(
                    "starting {} (scripts/test.sh installs clamav-daemon)",
                    clamd_binary().display()
                )
            })?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(120);
        while Instant::now() < deadline {
            if self.answers() {
                return Ok(());
            }
            if let Some(c) = self.child.as_mut()
                && let Ok(Some(status)) = c.try_wait()
            {
                let log =
                    std::fs::read_to_string(self.dir.path().join("clamd.log")).unwrap_or_default();
                bail!("clamd exited with {status}; log:\n{log}");
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        bail!("clamd did not answer PING within 120 s")
    }

    /// `tcp://127.0.0.1:PORT`, for `S3DEDUP_CLAMD`.
    pub fn address(&self) -> String {
        format!("tcp://127.0.0.1:{}", self.port)
    }

    /// `unix:///…/clamd.sock` (clamd listens on both).
    pub fn unix_address(&self) -> String {
        format!("unix://{}", self.dir.path().join("clamd.sock").display())
    }

    /// Whether clamd answers PING now.
    pub fn answers(&self) -> bool {
        let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
        let mut reply = Vec::new();
        s.write_all(b"zPING\0").is_ok() && s.read_to_end(&mut reply).is_ok() && reply == b"PONG\0"
    }

    /// Kills clamd (it stops answering at once).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts clamd again on the same port.
    pub fn restart(&mut self) -> Result<()> {
        self.stop();
        self.spawn()
    }
}

impl Drop for Clamd {
    fn drop(&mut self) {
        self.stop();
    }
}
