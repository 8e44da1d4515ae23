//! End-to-end tests and benchmarks for s3dedup.
//!
//! [`Gateway`] starts the real `s3dedup` binary on free loopback ports with a fresh (or
//! given) data directory, reads the addresses it prints, and can kill it (SIGKILL) to
//! test crash safety. Tests drive it with real clients.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use anyhow::{Context, Result, bail};

pub mod clamd;
pub mod faultproxy;
mod procstat;
mod python;
pub mod s3server;
mod sdkerr;
mod signing;
mod tenants;
pub mod testca;

pub use procstat::{cpu_time, rss_bytes};
pub use python::{python, run_python_suite};
pub use sdkerr::{error_code, error_message, error_status, refusal};
pub use signing::sign_as_root;

/// Root credentials every test gateway is started with.
pub const ACCESS_KEY: &str = "S3DEDUPTESTKEY000001";
/// Secret for [`ACCESS_KEY`].
pub const SECRET_KEY: &str = "s3dedup-test-secret-0123456789abcdefghij";

/// Path of the `s3dedup` binary: `$S3DEDUP_BIN`, else `target/<profile>/s3dedup`, built
/// (or brought up to date) once per test process so a test never runs a stale binary.
pub fn binary() -> Result<PathBuf> {
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    if let Ok(p) = std::env::var("S3DEDUP_BIN") {
        return Ok(p.into());
    }
    BUILT
        .get_or_init(|| build_binary().map_err(|e| format!("{e:#}")))
        .clone()
        .map_err(anyhow::Error::msg)
}

fn build_binary() -> Result<PathBuf> {
    let exe = std::env::current_exe()?;
    // target/<profile>/deps/<test> → target/<profile>/s3dedup
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .context("unexpected test binary location")?;
    let bin = profile_dir.join("s3dedup");
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.args([
        "build",
        "--quiet",
        "-p",
        "s3dedup-gateway",
        "--bin",
        "s3dedup",
    ]);
    if profile_dir.ends_with("release") {
        cmd.arg("--release");
    }
    // `cargo test` gives this process the package's CARGO_MANIFEST_DIR, CARGO_PKG_* …;
    // build scripts (ring's) watch those, so passing them on would make this nested
    // build rebuild half the dependency tree, and the next plain build do it again.
    for (k, _) in std::env::vars_os().filter_map(|(k, v)| Some((k.into_string().ok()?, v))) {
        let per_package = [
            "CARGO_PKG_",
            "CARGO_MANIFEST_",
            "CARGO_CRATE_",
            "CARGO_BIN_",
        ]
        .iter()
        .any(|p| k.starts_with(p))
            || matches!(
                k.as_str(),
                "CARGO_PRIMARY_PACKAGE"
                    | "CARGO_TARGET_TMPDIR"
                    | "CARGO_RUSTC_CURRENT_DIR"
                    | "OUT_DIR"
            );
        if per_package {
            cmd.env_remove(k);
        }
    }
    let st = cmd.status().context("running cargo build for s3dedup")?;
    if !st.success() || !bin.exists() {
        bail!("could not build {}", bin.display());
    }
    Ok(bin)
}

/// A running gateway process.
#[derive(Debug)]
pub struct Gateway {
    child: Child,
    /// `http://127.0.0.1:PORT` of the S3 API.
    pub s3_url: String,
    /// `127.0.0.1:PORT` of the admin endpoints.
    pub admin_addr: String,
    /// The data directory.
    pub data_dir: PathBuf,
    /// The S3 server behind it, when the harness started one (see [`Gateway::start_with`]).
    pub backend: Option<s3server::S3Server>,
    _tmp: Option<tempfile::TempDir>,
}

/// Set `S3DEDUP_TEST_STORE=s3` to run every harness gateway over a real S3 server
/// instead of its local directory (the gateway suites run both ways).
pub fn testing_s3_store() -> bool {
    std::env::var("S3DEDUP_TEST_STORE").is_ok_and(|v| v == "s3")
}

/// Bucket the harness's S3 backing store uses.
pub const TEST_BUCKET: &str = "s3dedup-packs";
/// Key prefix in [`TEST_BUCKET`].
pub const TEST_PREFIX: &str = "gw/";

impl Gateway {
    /// Starts a gateway on a fresh temporary data directory.
    pub fn start() -> Result<Self> {
        let tmp = tempfile::Builder::new().prefix("s3dedup-e2e-").tempdir()?;
        let mut g = Self::start_in(tmp.path())?;
        g._tmp = Some(tmp);
        Ok(g)
    }

    /// Starts a gateway on `dir` (kept after the gateway stops).
    pub fn start_in(dir: &Path) -> Result<Self> {
        Self::start_with(dir, &[])
    }

    /// Starts a gateway on `dir` with extra environment variables. With
    /// [`testing_s3_store`] (and no `S3DEDUP_STORE` in `env`), an `s3s-fs` over
    /// `dir/backend-s3` is started first and selected as the backing store; restarting on
    /// the same `dir` finds the same bucket.
    pub fn start_with(dir: &Path, env: &[(&str, &str)]) -> Result<Self> {
        Self::start_wrapped(dir, env, &[])
    }

    /// [`Gateway::start_with`], run under `wrapper` (a command and its arguments that
    /// execs the rest, e.g. `["prlimit", "--nofile=256:256", "--"]`).
    pub fn start_wrapped(dir: &Path, env: &[(&str, &str)], wrapper: &[&str]) -> Result<Self> {
        std::fs::create_dir_all(dir)?;
        let backend = if testing_s3_store() && !env.iter().any(|(k, _)| *k == "S3DEDUP_STORE") {
            let server = s3server::S3Server::start(&dir.join("backend-s3"), None)?;
            server.create_bucket(TEST_BUCKET)?;
            Some(server)
        } else {
            None
        };
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("gateway.log"))?;
        let mut cmd = match wrapper.split_first() {
            None => Command::new(binary()?),
            Some((first, rest)) => {
                let mut c = Command::new(first);
                c.args(rest).arg(binary()?);
                c
            }
        };
        cmd.args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
        ])
        .arg("--data-dir")
        .arg(dir)
        .env("S3DEDUP_ROOT_ACCESS_KEY", ACCESS_KEY)
        .env("S3DEDUP_ROOT_SECRET_KEY", SECRET_KEY)
        .env("S3DEDUP_MIN_PART_SIZE", (5u64 << 20).to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log));
        if let Some(server) = &backend {
            for (k, v) in server.gateway_env(TEST_BUCKET, TEST_PREFIX) {
                cmd.env(k, v);
            }
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().context("starting s3dedup")?;
        let stdout = child.stdout.take().context("no stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let line = loop {
            match lines.next() {
                Some(Ok(l)) if l.starts_with("s3dedup listening:") => break l,
                Some(Ok(_)) => continue,
                _ => {
                    let _ = child.kill();
                    let log = std::fs::read_to_string(dir.join("gateway.log")).unwrap_or_default();
                    bail!("s3dedup exited before listening; log:\n{log}");
                }
            }
        };
        // Keep draining stdout so the gateway never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        let field = |name: &str| -> Result<String> {
            line.split_whitespace()
                .find_map(|w| w.strip_prefix(name))
                .map(str::to_owned)
                .with_context(|| format!("no {name} in {line:?}"))
        };
        if backend.is_some() {
            // Make sure the suites really run over the bucket.
            let location = std::fs::read_to_string(dir.join("store-location"))?;
            if !location.starts_with("s3://") {
                bail!("gateway on {} uses store {location:?}", dir.display());
            }
        }
        let s3_url = field("s3=")?;
        let admin_addr = field("admin=")?
            .trim_start_matches("http://")
            .trim_start_matches("https://")
            .to_owned();
        Ok(Gateway {
            child,
            s3_url,
            admin_addr,
            data_dir: dir.to_owned(),
            backend,
            _tmp: None,
        })
    }

    /// `127.0.0.1:PORT` of the S3 API.
    pub fn s3_addr(&self) -> &str {
        self.s3_url
            .trim_start_matches("http://")
            .trim_start_matches("https://")
    }

    /// The gateway's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kills the process with SIGKILL and waits for it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Stops the process with SIGTERM and waits for a clean exit.
    pub fn stop(&mut self) -> Result<std::process::ExitStatus> {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status()?;
        Ok(self.child.wait()?)
    }

    /// GET on the admin port; returns (status, body).
    pub fn admin_get(&self, path: &str) -> Result<(u16, String)> {
        let (status, body) = http_request(&self.admin_addr, "GET", path, &[], &[])?;
        Ok((status, String::from_utf8_lossy(&body).into_owned()))
    }

    /// One metric value from `/metrics` (first sample whose name and labels start with
    /// `series`).
    pub fn metric(&self, series: &str) -> Result<f64> {
        let (_, text) = self.admin_get("/metrics")?;
        text.lines()
            .filter(|l| !l.starts_with('#'))
            .find(|l| l.starts_with(series))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .with_context(|| format!("metric {series} not found"))
    }
}

impl Gateway {
    /// The settings selecting this gateway's backing store, for `s3dedup` commands run
    /// on its data directory (empty for the local store).
    pub fn store_env(&self) -> Vec<(String, String)> {
        self.backend
            .as_ref()
            .map(|b| b.gateway_env(TEST_BUCKET, TEST_PREFIX))
            .unwrap_or_default()
    }

    /// Sum of every sample of metric `name` whose labels contain each of `labels`
    /// (e.g. `op="put"`); 0 when there is none.
    pub fn metric_sum(&self, name: &str, labels: &[&str]) -> Result<f64> {
        let (_, text) = self.admin_get("/metrics")?;
        Ok(text
            .lines()
            .filter(|l| {
                l.strip_prefix(name)
                    .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
            })
            .filter(|l| labels.iter().all(|want| l.contains(want)))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum())
    }
}

impl Gateway {
    /// Bytes the backing store holds for data now: pack blobs (and the store's marker)
    /// in the local store directory, or the objects under the harness's prefix in the
    /// bucket; not the metadata journal (`journal/`, kept small by its own pruning).
    pub fn store_bytes(&self) -> Result<u64> {
        match &self.backend {
            Some(b) => Ok(b
                .objects(TEST_BUCKET, TEST_PREFIX)?
                .iter()
                .filter(|(name, _)| !name.contains("journal/"))
                .map(|(_, n)| n)
                .sum()),
            None => {
                let store = self.data_dir.join("store");
                Ok(dir_bytes(&store)? - dir_bytes(&store.join("blobs/journal"))?)
            }
        }
    }

    /// Pack blobs in the backing store now.
    pub fn store_packs(&self) -> Result<usize> {
        match &self.backend {
            Some(b) => Ok(b
                .objects(TEST_BUCKET, &format!("{TEST_PREFIX}packs/"))?
                .len()),
            None => {
                let mut n = 0;
                let dir = self.data_dir.join("store");
                for e in walk(&dir)? {
                    n += usize::from(e.extension().is_some_and(|x| x == "pack"));
                }
                Ok(n)
            }
        }
    }

    /// The file holding the first pack blob (by name), in the local store or, with the
    /// S3 store, in the S3 server's directory: for tests that damage stored bytes.
    pub fn first_pack_file(&self) -> Result<PathBuf> {
        let mut packs: Vec<PathBuf> = walk(&self.data_dir)?
            .into_iter()
            .filter(|p| p.extension().is_some_and(|x| x == "pack"))
            .filter(|p| {
                let rel = p.strip_prefix(&self.data_dir).unwrap_or(p);
                !rel.components().any(|c| c.as_os_str() == "tmp")
            })
            .collect();
        packs.sort_by_key(|p| p.file_name().map(std::ffi::OsStr::to_owned));
        packs.into_iter().next().context("no pack file")
    }

    /// Runs `s3dedup admin ARGS… --data-dir <its dir>` (the admin URL comes from the
    /// pid file the server wrote there, the token from its admin-token file).
    pub fn admin_cli(&self, args: &[&str]) -> Result<std::process::Output> {
        let mut cmd = Command::new(binary()?);
        cmd.arg("admin")
            .args(args)
            .arg("--data-dir")
            .arg(&self.data_dir);
        for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("S3DEDUP_")) {
            cmd.env_remove(k);
        }
        Ok(cmd.output()?)
    }

    /// Runs `s3dedup fsck` on this gateway's data dir (the gateway must be stopped or
    /// killed) and panics with its report unless it is clean.
    pub fn assert_fsck(&self, context: &str) {
        let o = Command::new(binary().expect("s3dedup binary"))
            .args(["fsck", "--data-dir"])
            .arg(&self.data_dir)
            .envs(self.store_env())
            .output()
            .expect("running s3dedup fsck");
        assert!(
            o.status.success(),
            "{context}: fsck:\n{}\n{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
    }

    /// [`Gateway::admin_cli`], asserting success; its stdout.
    pub fn admin_cli_ok(&self, args: &[&str]) -> String {
        let o = self.admin_cli(args).expect("running s3dedup admin");
        let out = String::from_utf8_lossy(&o.stdout).into_owned();
        assert!(
            o.status.success(),
            "s3dedup admin {args:?}: {out}{}",
            String::from_utf8_lossy(&o.stderr)
        );
        out
    }

    /// `s3dedup admin key create ARGS… --json` (e.g. `--tenant T`): the key's JSON
    /// (`access_key`, `secret_key`, `tenant` …).
    pub fn create_key(&self, args: &[&str]) -> serde_json::Value {
        let mut all = vec!["key", "create"];
        all.extend_from_slice(args);
        all.push("--json");
        let out = self.admin_cli_ok(&all);
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
    }

    /// An SDK client signing with the key `create_key` returned.
    pub fn client_for(&self, key: &serde_json::Value) -> aws_sdk_s3::Client {
        let creds = aws_sdk_s3::config::Credentials::new(
            key["access_key"].as_str().expect("access_key"),
            key["secret_key"].as_str().expect("secret_key"),
            None,
            None,
            "tenant",
        );
        sdk_client_with(&self.s3_url, |b| b.credentials_provider(creds))
    }

    /// An admin API request with the server's token: (status, JSON body).
    pub fn admin_api(&self, method: &str, path: &str) -> Result<(u16, serde_json::Value)> {
        let token = std::fs::read_to_string(self.data_dir.join("admin-token"))?;
        let auth = format!("Bearer {}", token.trim());
        let (status, body) = http_request(
            &self.admin_addr,
            method,
            path,
            &[("Authorization", auth)],
            &[],
        )?;
        Ok((status, serde_json::from_slice(&body).unwrap_or_default()))
    }
}

/// An aws CLI command (`cli`: the executable) aimed at `g` with the harness's
/// credentials, its configuration kept in `home` (nothing of the user's is read).
pub fn aws_command(cli: &str, g: &Gateway, home: &Path) -> Command {
    let mut c = Command::new(cli);
    c.args(["--endpoint-url", &g.s3_url, "--region", "us-east-1"])
        .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
        .env("AWS_CONFIG_FILE", home.join("config"))
        .env("AWS_SHARED_CREDENTIALS_FILE", home.join("credentials"))
        .env("HOME", home)
        .env_remove("AWS_CA_BUNDLE");
    c
}

/// Every file under `dir`.
fn walk(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    if !dir.exists() {
        return Ok(out);
    }
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        if e.file_type()?.is_dir() {
            out.extend(walk(&e.path())?);
        } else {
            out.push(e.path());
        }
    }
    Ok(out)
}

/// Sum of the sizes of the files under `dir` (apparent sizes, as `du -b` counts them
/// without directories).
pub fn dir_bytes(dir: &Path) -> Result<u64> {
    let mut total = 0;
    if !dir.exists() {
        return Ok(0);
    }
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        let t = e.file_type()?;
        if t.is_dir() {
            total += dir_bytes(&e.path())?;
        } else if t.is_file() {
            total += e.metadata()?.len();
        }
    }
    Ok(total)
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A minimal HTTP/1.1 client (one request per connection) for raw protocol tests:
/// returns status and body.
pub fn http_request(
    addr: &str,
    method: &str,
    path_and_query: &str,
    headers: &[(&str, String)],
    body: &[u8],
) -> Result<(u16, Vec<u8>)> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(60)))?;
    let mut req = format!("{method} {path_and_query} HTTP/1.1\r\nConnection: close\r\n");
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        req.push_str(&format!("Host: {addr}\r\n"));
    }
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if !headers
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("content-length"))
    {
        req.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes())?;
    s.write_all(body)?;
    let mut resp = Vec::new();
    s.read_to_end(&mut resp)?;
    let text = String::from_utf8_lossy(&resp);
    let status: u16 = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .context("no status line")?;
    let body_start = resp
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(resp.len(), |p| p + 4);
    Ok((status, resp[body_start..].to_vec()))
}

/// A TCP proxy in front of the gateway that cuts the first `cut` client connections
/// after forwarding `after_bytes` bytes of their request, to test client retries.
#[derive(Debug)]
pub struct CuttingProxy {
    /// `http://127.0.0.1:PORT` to point clients at.
    pub url: String,
    cut: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl CuttingProxy {
    /// Starts the proxy in front of `target` (`host:port`).
    pub fn start(target: &str, cut: usize, after_bytes: usize) -> Result<Self> {
        use std::sync::atomic::Ordering;
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        let url = format!("http://{}", listener.local_addr()?);
        let remaining = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(cut));
        let left = remaining.clone();
        let target = target.to_owned();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(mut client) = client else { continue };
                let Ok(mut server) = TcpStream::connect(&target) else {
                    continue;
                };
                let cut_this = left
                    .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                    .is_ok();
                let (mut c2, mut s2) = match (client.try_clone(), server.try_clone()) {
                    (Ok(c), Ok(s)) => (c, s),
                    _ => continue,
                };
                // server → client
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut s2, &mut c2);
                    let _ = c2.shutdown(std::net::Shutdown::Both);
                });
                // client → server, cut after `after_bytes` when this connection is marked
                std::thread::spawn(move || {
                    let mut buf = vec![0u8; 64 * 1024];
                    let mut sent = 0usize;
                    loop {
                        let n = match client.read(&mut buf) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => n,
                        };
                        if cut_this && sent + n >= after_bytes {
                            let _ = server.write_all(&buf[..after_bytes - sent]);
                            let _ = client.shutdown(std::net::Shutdown::Both);
                            let _ = server.shutdown(std::net::Shutdown::Both);
                            return;
                        }
                        if server.write_all(&buf[..n]).is_err() {
                            break;
                        }
                        sent += n;
                    }
                    let _ = server.shutdown(std::net::Shutdown::Write);
                });
            }
        });
        Ok(CuttingProxy {
            url,
            cut: remaining,
        })
    }

    /// Connections still to be cut.
    pub fn remaining_cuts(&self) -> usize {
        self.cut.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// An AWS SDK client (latest behaviour, default checksums, path style) for `endpoint`
/// with the test credentials.
/// GETs `bucket/key` whole; panics (naming the key) when that fails.
pub async fn get_bytes(c: &aws_sdk_s3::Client, bucket: &str, key: impl Into<String>) -> Vec<u8> {
    let key = key.into();
    c.get_object()
        .bucket(bucket)
        .key(&key)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{key}: {e:?}"))
        .body
        .collect()
        .await
        .unwrap_or_else(|e| panic!("{key}: {e:?}"))
        .into_bytes()
        .to_vec()
}

/// Asserts that every object of `model` in `bucket` reads back byte-exact.
pub async fn assert_objects(
    c: &aws_sdk_s3::Client,
    bucket: &str,
    model: &std::collections::BTreeMap<String, Vec<u8>>,
) {
    for (k, want) in model {
        let got = get_bytes(c, bucket, k).await;
        assert!(got == *want, "{bucket}/{k}: wrong bytes");
    }
}

/// Creates bucket `b` with versioning enabled.
pub async fn create_versioned_bucket(c: &aws_sdk_s3::Client, b: &str) {
    use aws_sdk_s3::types::{BucketVersioningStatus, VersioningConfiguration};
    c.create_bucket().bucket(b).send().await.unwrap();
    c.put_bucket_versioning()
        .bucket(b)
        .versioning_configuration(
            VersioningConfiguration::builder()
                .status(BucketVersioningStatus::Enabled)
                .build(),
        )
        .send()
        .await
        .unwrap();
}

pub fn sdk_client(endpoint: &str) -> aws_sdk_s3::Client {
    sdk_client_with(endpoint, |b| b)
}

/// [`sdk_client`] with extra configuration (retries, addressing style, credentials …).
pub fn sdk_client_with(
    endpoint: &str,
    f: impl FnOnce(aws_sdk_s3::config::Builder) -> aws_sdk_s3::config::Builder,
) -> aws_sdk_s3::Client {
    use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
    let b = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new(ACCESS_KEY, SECRET_KEY, None, None, "test"))
        .force_path_style(true);
    aws_sdk_s3::Client::from_conf(f(b).build())
}

/// An `rclone` command with a remote `s3d:` configured for gateway `g` through the
/// environment (config file under `dir`); `AWS_CA_BUNDLE` is removed because rclone's
/// SDK then refuses plain http.
pub fn rclone(g: &Gateway, dir: &Path) -> Command {
    let mut c = Command::new("rclone");
    c.env_remove("AWS_CA_BUNDLE")
        .env("RCLONE_CONFIG", dir.join("rclone.conf"))
        .env("RCLONE_CONFIG_S3D_TYPE", "s3")
        .env("RCLONE_CONFIG_S3D_PROVIDER", "Other")
        .env("RCLONE_CONFIG_S3D_ENDPOINT", &g.s3_url)
        .env("RCLONE_CONFIG_S3D_REGION", "us-east-1")
        .env("RCLONE_CONFIG_S3D_ACCESS_KEY_ID", ACCESS_KEY)
        .env("RCLONE_CONFIG_S3D_SECRET_ACCESS_KEY", SECRET_KEY)
        .env("RCLONE_CONFIG_S3D_FORCE_PATH_STYLE", "true");
    c
}
