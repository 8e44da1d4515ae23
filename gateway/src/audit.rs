//! The tamper-evident audit log (`audit_log`): one JSON line per mutating S3 request,
//! per denied or unauthenticated request, per admin action and per virus rejection.
//!
//! Each line carries `seq` (consecutive across rotations) and `prev`, the SHA-256 (hex) of
//! the line before it (the previous file's last line after a rotation; 64 zeros for the
//! very first). Every `CHECKPOINT_EVERY` lines, at each rotation and at shutdown a
//! checkpoint line is written whose `hmac` is HMAC-SHA256, under a key kept outside the
//! log (`audit_key_file`, by default `<data_dir>/audit-key`), of its `seq` and `prev`.
//! [`verify`] re-derives both: an edited byte breaks the next line's `prev`, a removed or
//! reordered line breaks `seq`, and a chain recomputed by someone without the key fails the
//! next checkpoint. Lines after the last checkpoint are only as safe as the file: a cut
//! tail is caught only by the next checkpoint that never came (`verify` says how many
//! lines follow the last one).
//!
//! The writer is one thread fed by a channel: a request never waits for the disk. Lines
//! are flushed after every batch, and synced at each checkpoint.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::time::Duration;

use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// Lines between checkpoints.
pub const CHECKPOINT_EVERY: u64 = 100;
/// A checkpoint is also written after this long without one while lines were written.
const CHECKPOINT_IDLE: Duration = Duration::from_secs(10);
const ZERO: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One audited event: the fields of its line (without `seq`, `prev`, `time`).
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Event {
    /// `s3`, `admin` or `scan`.
    pub kind: &'static str,
    /// The request id (S3), empty otherwise.
    pub request_id: String,
    /// The principal (`root`, a tenant, `anonymous`), or `admin`.
    pub tenant: String,
    /// The access key id the request named (empty when none).
    pub key_id: String,
    /// Client address.
    pub ip: String,
    /// The S3 operation, the admin method and path, or `VirusRejected`.
    pub operation: String,
    /// Bucket, object key and version id, when the request named them.
    pub bucket: String,
    /// Object key.
    pub key: String,
    /// Version id.
    pub version: String,
    /// HTTP status answered.
    pub status: u16,
    /// Request body bytes (declared).
    pub bytes: u64,
    /// Anything else (the S3 error code, the virus signature).
    pub detail: String,
}

enum Msg {
    Event(Box<Event>),
    /// Write a checkpoint, sync, and answer.
    Flush(Sender<()>),
}

static LOG: OnceLock<Sender<Msg>> = OnceLock::new();

/// Records `event` when an audit log is open (a no-op otherwise).
pub fn emit(event: Event) {
    if let Some(tx) = LOG.get() {
        let _ = tx.send(Msg::Event(Box::new(event)));
    }
}

/// Writes a checkpoint and syncs (at shutdown); waits up to 5 s.
pub fn flush() {
    if let Some(tx) = LOG.get() {
        let (done, wait) = channel();
        if tx.send(Msg::Flush(done)).is_ok() {
            let _ = wait.recv_timeout(Duration::from_secs(5));
        }
    }
}

/// The HMAC key: `key_file`, else `<data_dir>/audit-key` (created, 0600).
///
/// # Errors
/// The file cannot be read or created, or holds no key.
pub fn load_key(key_file: Option<&Path>, data_dir: &Path) -> std::io::Result<Vec<u8>> {
    let path = key_file.map_or_else(|| data_dir.join("audit-key"), Path::to_path_buf);
    match std::fs::read_to_string(&path) {
        Ok(t) => hex::decode(t.trim())
            .ok()
            .filter(|k| k.len() >= 32)
            .ok_or_else(|| {
                std::io::Error::other(format!("{}: expected 64+ hex digits", path.display()))
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && key_file.is_none() => {
            let key: [u8; 32] = rand::random();
            let mut f = std::fs::OpenOptions::new();
            f.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut f, 0o600);
            let mut f = f.open(&path)?;
            writeln!(f, "{}", hex::encode(key))?;
            f.sync_all()?;
            Ok(key.to_vec())
        }
        Err(e) => Err(std::io::Error::new(
            e.kind(),
            format!("{}: {e}", path.display()),
        )),
    }
}

fn sha_hex(line: &[u8]) -> String {
    hex::encode(Sha256::digest(line))
}

fn mac(key: &[u8], seq: u64, prev: &str) -> String {
    let mut m = <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC takes any key");
    m.update(format!("s3dedup audit checkpoint {seq} {prev}").as_bytes());
    hex::encode(m.finalize().into_bytes())
}

/// Where the chain stands: the next seq and the hash of the last line.
fn resume(path: &Path) -> (u64, String) {
    let Ok(f) = std::fs::File::open(path) else {
        return (0, ZERO.to_owned());
    };
    let mut last = None;
    for line in std::io::BufReader::new(f)
        .split(b'\n')
        .map_while(Result::ok)
    {
        if !line.is_empty() {
            last = Some(line);
        }
    }
    let Some(last) = last else {
        return (0, ZERO.to_owned());
    };
    let seq = serde_json::from_slice::<Value>(&last)
        .ok()
        .and_then(|v| v["seq"].as_u64())
        .map_or(0, |s| s + 1);
    (seq, sha_hex(&last))
}

struct Writer {
    path: PathBuf,
    max_size: u64,
    key: Vec<u8>,
    file: std::io::BufWriter<std::fs::File>,
    size: u64,
    seq: u64,
    prev: String,
    since_checkpoint: u64,
}

impl Writer {
    fn open(path: &Path, max_size: u64, key: Vec<u8>) -> std::io::Result<Self> {
        let (seq, prev) = resume(path);
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        let size = file.metadata()?.len();
        Ok(Writer {
            path: path.to_owned(),
            max_size,
            key,
            file: std::io::BufWriter::new(file),
            size,
            seq,
            prev,
            since_checkpoint: 0,
        })
    }

    fn line(&mut self, mut v: Value) -> std::io::Result<()> {
        let now = time::OffsetDateTime::now_utc();
        let time = now
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        if let Value::Object(m) = &mut v {
            m.insert("seq".into(), self.seq.into());
            m.insert("time".into(), time.into());
            m.insert("prev".into(), self.prev.clone().into());
        }
        let text = serde_json::to_vec(&v).map_err(std::io::Error::other)?;
        self.file.write_all(&text)?;
        self.file.write_all(b"\n")?;
        self.size += text.len() as u64 + 1;
        self.prev = sha_hex(&text);
        self.seq += 1;
        Ok(())
    }

    fn checkpoint(&mut self) -> std::io::Result<()> {
        let hmac = mac(&self.key, self.seq, &self.prev);
        self.line(json!({"kind": "checkpoint", "hmac": hmac}))?;
        self.since_checkpoint = 0;
        self.file.flush()?;
        self.file.get_ref().sync_data()
    }

    fn event(&mut self, e: &Event) -> std::io::Result<()> {
        self.line(serde_json::to_value(e).map_err(std::io::Error::other)?)?;
        self.since_checkpoint += 1;
        if self.since_checkpoint >= CHECKPOINT_EVERY {
            self.checkpoint()?;
        }
        if self.size >= self.max_size {
            self.rotate()?;
        }
        Ok(())
    }

    /// Closes the file with a checkpoint and starts a new one; the old one keeps its
    /// lines as `<path>.<first seq of the next file>`.
    fn rotate(&mut self) -> std::io::Result<()> {
        self.checkpoint()?;
        let mut rotated = self.path.clone().into_os_string();
        rotated.push(format!(".{:020}", self.seq));
        std::fs::rename(&self.path, &rotated)?;
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)?;
        self.file = std::io::BufWriter::new(file);
        self.size = 0;
        Ok(())
    }

    fn run(mut self, rx: &Receiver<Msg>) {
        let fail = |e: std::io::Error| {
            metrics::counter!(crate::metrics::AUDIT_ERRORS).increment(1);
            tracing::error!(error = %e, "audit log write failed");
        };
        loop {
            let msg = match rx.recv_timeout(CHECKPOINT_IDLE) {
                Ok(m) => m,
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                    if self.since_checkpoint > 0 {
                        self.checkpoint().unwrap_or_else(fail);
                    }
                    continue;
                }
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => return,
            };
            // One batch: what is queued now, then one flush.
            for m in std::iter::once(msg).chain(rx.try_iter()) {
                match m {
                    Msg::Event(e) => self.event(&e).unwrap_or_else(fail),
                    Msg::Flush(done) => {
                        self.checkpoint().unwrap_or_else(fail);
                        let _ = done.send(());
                    }
                }
            }
            self.file.flush().unwrap_or_else(fail);
        }
    }
}

/// Opens the audit log at `path` (continuing its chain) and starts its writer.
///
/// # Errors
/// The file cannot be opened.
pub fn open(path: &Path, max_size: u64, key: Vec<u8>) -> std::io::Result<()> {
    let writer = Writer::open(path, max_size, key)?;
    let (tx, rx) = channel();
    if LOG.set(tx).is_err() {
        return Err(std::io::Error::other("the audit log is already open"));
    }
    std::thread::Builder::new()
        .name("audit-log".into())
        .spawn(move || writer.run(&rx))?;
    Ok(())
}

/// What [`verify`] found.
#[derive(Debug, Default)]
pub struct Verified {
    /// Lines checked.
    pub lines: u64,
    /// Checkpoints whose HMAC verified.
    pub checkpoints: u64,
    /// Lines after the last checkpoint (not covered by one yet).
    pub unanchored: u64,
}

/// Checks `files` (in order: rotated ones first, the live one last) against `key`.
///
/// # Errors
/// The first problem, naming the file and line (1-based).
pub fn verify(files: &[PathBuf], key: &[u8]) -> Result<Verified, String> {
    let mut out = Verified::default();
    let mut expect: Option<(u64, String)> = None;
    let mut last_at = String::new();
    for file in files {
        let text = std::fs::read(file).map_err(|e| format!("{}: {e}", file.display()))?;
        for (i, line) in text.split(|&b| b == b'\n').enumerate() {
            if line.is_empty() {
                continue;
            }
            let at = format!("{} line {}", file.display(), i + 1);
            let v: Value = serde_json::from_slice(line)
                .map_err(|e| format!("{at}: not a JSON line ({e}): edited"))?;
            let seq = v["seq"].as_u64().ok_or(format!("{at}: no seq: edited"))?;
            let prev = v["prev"].as_str().ok_or(format!("{at}: no prev: edited"))?;
            match &expect {
                None if seq == 0 && prev != ZERO => {
                    return Err(format!("{at}: the first line's prev is not zero: edited"));
                }
                Some((want, _)) if seq != *want => {
                    return Err(if seq > *want {
                        format!(
                            "{at}: seq {seq} where {want} was due: {} line(s) removed before it",
                            seq - want
                        )
                    } else {
                        format!("{at}: seq {seq} where {want} was due: lines reordered or repeated")
                    });
                }
                Some((_, hash)) if prev != hash => {
                    return Err(format!(
                        "{last_at}: edited (its SHA-256 is not the prev recorded by the line after it)"
                    ));
                }
                _ => {}
            }
            if v["kind"] == "checkpoint" {
                let want = mac(key, seq, prev);
                if v["hmac"].as_str() != Some(want.as_str()) {
                    return Err(format!(
                        "{at}: checkpoint HMAC does not verify: lines before it were rewritten (or the key is wrong)"
                    ));
                }
                out.checkpoints += 1;
                out.unanchored = 0;
            } else {
                out.unanchored += 1;
            }
            out.lines += 1;
            expect = Some((seq + 1, sha_hex(line)));
            last_at = at;
        }
    }
    Ok(out)
}

/// What an S3 request's line needs from the request itself, taken before s3s consumes
/// it (`None` when no audit log is open: nothing is copied).
#[derive(Debug)]
pub struct S3Seen {
    path: String,
    query: Option<String>,
    key_id: String,
}

impl S3Seen {
    /// Takes what the line needs from the request.
    pub fn of(uri: &http::Uri, headers: &http::HeaderMap) -> Option<Self> {
        LOG.get()?;
        Some(S3Seen {
            path: uri.path().to_owned(),
            query: uri.query().map(str::to_owned),
            key_id: key_id_of(headers, uri.query()),
        })
    }

    /// Records the request's line when it is audited: a `write` (an operation that
    /// changes something, whatever its answer), or anything refused with 401/403
    /// (denied, unauthenticated, locked out).
    pub fn done(
        self,
        (request_id, ip): (&str, std::net::IpAddr),
        (operation, write): (&str, bool),
        principal: Option<&str>,
        (status, bytes): (u16, u64),
        error_body: Option<&[u8]>,
    ) {
        if !write && status != 401 && status != 403 {
            return;
        }
        let decode = |s: &str| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8_lossy()
                .into_owned()
        };
        let mut segs = self.path.trim_start_matches('/').splitn(2, '/');
        let bucket = segs.next().map(decode).unwrap_or_default();
        let key = segs.next().map(decode).unwrap_or_default();
        let version = self
            .query
            .as_deref()
            .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("versionId=")))
            .map(decode)
            .unwrap_or_default();
        let detail = error_body
            .and_then(|b| {
                let t = std::str::from_utf8(b).ok()?;
                let start = t.find("<Code>")? + 6;
                Some(t[start..start + t[start..].find("</Code>")?].to_owned())
            })
            .unwrap_or_default();
        emit(Event {
            kind: "s3",
            request_id: request_id.to_owned(),
            tenant: principal.unwrap_or("anonymous").to_owned(),
            key_id: self.key_id,
            ip: ip.to_string(),
            operation: operation.to_owned(),
            bucket,
            key,
            version,
            status,
            bytes,
            detail,
        });
    }
}

/// The key id an S3 request names (SigV4 header or presigned query), for its line.
pub fn key_id_of(headers: &http::HeaderMap, query: Option<&str>) -> String {
    let from_header = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|a| a.split("Credential=").nth(1))
        .and_then(|c| c.split('/').next());
    let from_query = || {
        query?.split('&').find_map(|kv| {
            let v = kv.strip_prefix("X-Amz-Credential=")?;
            let v = percent_encoding::percent_decode_str(v).decode_utf8().ok()?;
            v.split('/').next().map(str::to_owned)
        })
    };
    from_header
        .map(str::to_owned)
        .or_else(from_query)
        .unwrap_or_default()
}

/// `s3dedup audit …`
#[derive(clap::Subcommand, Debug, Clone)]
pub enum AuditCommand {
    /// Check audit log files (oldest first; rotated ones are FILE.<seq>): the hash chain
    /// and the HMAC checkpoints. Exits 1 naming the first edited, removed or reordered
    /// line.
    Verify {
        /// The files, in order.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// The HMAC key file (default: <data dir>/audit-key).
        #[arg(long, value_name = "FILE")]
        key_file: Option<PathBuf>,
        /// The data dir holding audit-key [env: S3DEDUP_DATA_DIR; default ./s3dedup-data].
        #[arg(long, value_name = "DIR")]
        data_dir: Option<PathBuf>,
    },
}

/// Runs `s3dedup audit …`.
///
/// # Errors
/// The files or the key cannot be read, or the log does not verify.
pub fn run_cli(cmd: AuditCommand) -> anyhow::Result<()> {
    let AuditCommand::Verify {
        files,
        key_file,
        data_dir,
    } = cmd;
    let key_path = key_file.unwrap_or_else(|| {
        data_dir
            .or_else(|| std::env::var_os("S3DEDUP_DATA_DIR").map(PathBuf::from))
            .unwrap_or_else(|| PathBuf::from("./s3dedup-data"))
            .join("audit-key")
    });
    let key = load_key(Some(&key_path), Path::new("."))?;
    match verify(&files, &key) {
        Ok(v) => {
            println!(
                "audit log verified: {} lines, {} checkpoints{}",
                v.lines,
                v.checkpoints,
                if v.unanchored > 0 {
                    format!(
                        "; the last {} lines follow the last checkpoint (not covered by one yet)",
                        v.unanchored
                    )
                } else {
                    String::new()
                }
            );
            Ok(())
        }
        Err(e) => anyhow::bail!("audit log does not verify: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_chain_verifies_and_any_change_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let key = vec![7u8; 32];
        let mut w = Writer::open(&path, 1 << 20, key.clone()).unwrap();
        for i in 0..5 {
            w.event(&Event {
                kind: "s3",
                operation: format!("PutObject{i}"),
                ..Event::default()
            })
            .unwrap();
        }
        w.checkpoint().unwrap();
        drop(w);
        let files = [path.clone()];
        let ok = verify(&files, &key).unwrap();
        assert_eq!((ok.lines, ok.checkpoints, ok.unanchored), (6, 1, 0));
        assert!(verify(&files, &[8u8; 32]).unwrap_err().contains("HMAC"));
        let lines: Vec<String> = std::fs::read_to_string(&path)
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect();
        let write = |ls: &[String]| std::fs::write(&path, ls.join("\n") + "\n").unwrap();
        let mut edited = lines.clone();
        edited[2] = edited[2].replace("PutObject2", "PutObjectX");
        write(&edited);
        let e = verify(&files, &key).unwrap_err();
        assert!(e.contains("line 3: edited"), "{e}");
        let mut removed = lines.clone();
        removed.remove(2);
        write(&removed);
        assert!(
            verify(&files, &key)
                .unwrap_err()
                .contains("line 3: seq 3 where 2")
        );
        let mut swapped = lines.clone();
        swapped.swap(1, 2);
        write(&swapped);
        assert!(
            verify(&files, &key)
                .unwrap_err()
                .contains("line 2: seq 2 where 1")
        );
    }
}
