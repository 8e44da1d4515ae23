//! A real S3 server process for the S3 backing store: `s3s-fs` (crates.io, the same s3s
//! stack the gateway uses, storing objects as files), on a free loopback port.
//!
//! The binary is `$S3S_FS_BIN`, else this package's `s3-test-server` (the s3s-fs library
//! served by `src/bin/s3-test-server.rs`, built with the workspace: `cargo test` builds it
//! for this package's tests).

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// Access key the test S3 server accepts (distinct from the gateway's, so a test cannot
/// pass by mixing them up).
pub const BACKEND_ACCESS_KEY: &str = "BACKENDTESTKEY000001";
/// Secret for [`BACKEND_ACCESS_KEY`].
pub const BACKEND_SECRET_KEY: &str = "backend-test-secret-0123456789abcdefghij";

/// A running `s3s-fs`; killed on drop (its files stay in `root`).
#[derive(Debug)]
pub struct S3Server {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// `127.0.0.1:PORT`.
    pub addr: String,
    /// Directory holding the buckets (one subdirectory each).
    pub root: PathBuf,
}

/// Path of the `s3s-fs` binary.
///
/// # Errors
/// When it is not installed, saying how to install it.
pub fn binary() -> Result<PathBuf> {
    if let Ok(p) = std::env::var("S3S_FS_BIN") {
        return Ok(p.into());
    }
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .context("workspace root")?;
    let p = workspace.join("target/debug/s3-test-server");
    if !p.exists() {
        bail!(
            "{} not found: build it with `cargo build -p s3dedup-conformance --bin s3-test-server`",
            p.display()
        );
    }
    Ok(p)
}

impl S3Server {
    /// Starts a server over `root` (created if needed), on `port` or a free one.
    ///
    /// # Errors
    /// If it cannot be started or does not listen within 10 s.
    pub fn start(root: &Path, port: Option<u16>) -> Result<Self> {
        Self::start_tls(root, port, None)
    }

    /// [`S3Server::start`] serving HTTPS with `tls` = (certificate chain, key) PEM files.
    ///
    /// # Errors
    /// If it cannot be started or does not listen within 10 s.
    pub fn start_tls(root: &Path, port: Option<u16>, tls: Option<(&Path, &Path)>) -> Result<Self> {
        std::fs::create_dir_all(root)?;
        let port = match port {
            Some(p) => p,
            None => std::net::TcpListener::bind("127.0.0.1:0")?
                .local_addr()?
                .port(),
        };
        let addr = format!("127.0.0.1:{port}");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(root.with_extension("log"))?;
        let mut cmd = Command::new(binary()?);
        if let Some((cert, key)) = tls {
            cmd.arg("--tls-cert").arg(cert).arg("--tls-key").arg(key);
        }
        let mut child = cmd
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--access-key", BACKEND_ACCESS_KEY])
            .args(["--secret-key", BACKEND_SECRET_KEY])
            .arg(root)
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .context("starting s3s-fs")?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(&addr).is_err() {
            if let Some(st) = child.try_wait()? {
                bail!(
                    "s3s-fs exited ({st}); see {}",
                    root.with_extension("log").display()
                );
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                bail!("s3s-fs did not listen on {addr} within 10 s");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(S3Server {
            child,
            url: format!("{}://{addr}", if tls.is_some() { "https" } else { "http" }),
            addr,
            root: root.to_owned(),
        })
    }

    /// Creates a bucket (s3s-fs keeps one directory per bucket).
    ///
    /// # Errors
    /// If the directory cannot be created.
    pub fn create_bucket(&self, name: &str) -> Result<()> {
        std::fs::create_dir_all(self.root.join(name))?;
        Ok(())
    }

    /// Every object in `bucket` under `prefix`, as (key, size), sorted.
    ///
    /// # Errors
    /// If the directory cannot be walked.
    pub fn objects(&self, bucket: &str, prefix: &str) -> Result<Vec<(String, u64)>> {
        let base = self.root.join(bucket);
        let mut out = Vec::new();
        let mut stack = vec![base.clone()];
        while let Some(dir) = stack.pop() {
            let entries = match std::fs::read_dir(&dir) {
                Ok(e) => e,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e.into()),
            };
            for entry in entries {
                let entry = entry?;
                let meta = entry.metadata()?;
                if meta.is_dir() {
                    stack.push(entry.path());
                    continue;
                }
                let key = entry
                    .path()
                    .strip_prefix(&base)?
                    .to_string_lossy()
                    .into_owned();
                // s3s-fs keeps its own metadata and upload state in dot-files.
                if key.starts_with(prefix) && !key.split('/').any(|s| s.starts_with('.')) {
                    out.push((key, meta.len()));
                }
            }
        }
        out.sort();
        Ok(out)
    }

    /// Kills the process and waits for it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The gateway settings that select this server's `bucket` (under `prefix`) as the
    /// backing store.
    pub fn gateway_env(&self, bucket: &str, prefix: &str) -> Vec<(String, String)> {
        self.gateway_env_via(&self.url, bucket, prefix)
    }

    /// [`S3Server::gateway_env`] reaching the server through `endpoint` (a proxy).
    pub fn gateway_env_via(
        &self,
        endpoint: &str,
        bucket: &str,
        prefix: &str,
    ) -> Vec<(String, String)> {
        [
            ("S3DEDUP_STORE", format!("s3://{bucket}/{prefix}")),
            ("S3DEDUP_STORE_ENDPOINT", endpoint.to_owned()),
            ("S3DEDUP_STORE_REGION", "us-east-1".to_owned()),
            ("S3DEDUP_STORE_ACCESS_KEY", BACKEND_ACCESS_KEY.to_owned()),
            ("S3DEDUP_STORE_SECRET_KEY", BACKEND_SECRET_KEY.to_owned()),
            ("S3DEDUP_STORE_PATH_STYLE", "true".to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        self.kill();
    }
}
