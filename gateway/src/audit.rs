//! The tamper-evident audit log (`audit_log`): one JSON line per mutating S3 request,
//! per denied or unauthenticated request, per admin action, per lockout and per virus
//! rejection.
//!
//! Each line carries `seq` (consecutive across rotations), `prev`, the SHA-256 (hex) of the
//! line before it (the previous file's last line after a rotation; 64 zeros for the very
//! first), and ends with `mac`, an HMAC-SHA256 of the line before that field under a key
//! kept outside the log (`audit_key_file`, by default `<data_dir>/audit-key`). Every
//! `CHECKPOINT_EVERY` lines, at most `CHECKPOINT_IDLE` after a line, at each rotation and at
//! shutdown a `checkpoint` line is written and the file synced. [`verify`] re-derives all
//! three: an edited line fails its MAC (even with every later `prev` recomputed: that needs
//! the key), a removed or reordered line breaks `seq` and `prev`. What no local scheme can
//! show is lines cut from the end of the newest file (or whole files from either end):
//! `verify` prints the range of `seq` and time it covered, to compare with what is expected.
//!
//! The writer is one thread fed by a bounded channel: a request never waits for the disk;
//! when the writer falls behind by `QUEUE` lines, further events are dropped, counted, and
//! the count written as a line when it catches up. Lines are flushed after every batch.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, Sender, SyncSender, channel, sync_channel};
use std::time::{Duration, Instant};

mod verify;
pub use verify::{AuditCommand, Verified, run_cli, verify};

use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// Lines between checkpoints.
pub const CHECKPOINT_EVERY: u64 = 100;
/// A line waits at most this long for a checkpoint.
const CHECKPOINT_IDLE: Duration = Duration::from_secs(10);
/// Events queued for the writer before more are dropped (and counted).
const QUEUE: usize = 100_000;
pub(crate) const ZERO: &str = "0000000000000000000000000000000000000000000000000000000000000000";

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

static LOG: OnceLock<SyncSender<Msg>> = OnceLock::new();
/// Events dropped because the writer fell behind, not yet reported in the log.
static DROPPED: AtomicU64 = AtomicU64::new(0);

/// Records `event` when an audit log is open (a no-op otherwise).
pub fn emit(event: Event) {
    if let Some(tx) = LOG.get()
        && tx.try_send(Msg::Event(Box::new(event))).is_err()
    {
        DROPPED.fetch_add(1, Ordering::Relaxed);
        metrics::counter!(crate::metrics::AUDIT_ERRORS).increment(1);
    }
}

/// Writes a checkpoint and syncs (at shutdown); waits up to 5 s.
pub fn flush() {
    if let Some(tx) = LOG.get() {
        let (done, wait): (Sender<()>, _) = channel();
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

pub(crate) fn sha_hex(line: &[u8]) -> String {
    hex::encode(Sha256::digest(line))
}

pub(crate) fn mac(key: &[u8], body: &[u8]) -> String {
    let mut m = <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC takes any key");
    m.update(body);
    hex::encode(m.finalize().into_bytes())
}

/// A line's body (what its `mac` covers) and the `mac`, when it ends as the writer
/// ends lines: `…,"mac":"<64 hex>"}`.
pub(crate) fn split_mac(line: &[u8]) -> Option<(&[u8], &str)> {
    const TAIL: usize = r#","mac":""}"#.len() + 64;
    let cut = line.len().checked_sub(TAIL)?;
    let (body, tail) = line.split_at(cut);
    let tail = std::str::from_utf8(tail).ok()?;
    let mac = tail.strip_prefix(r#","mac":""#)?.strip_suffix(r#""}"#)?;
    (mac.len() == 64).then_some((body, mac))
}

/// The last complete line of `path`, cutting a partial one left by a crash (it was
/// never whole, so never flushed as a line).
fn last_line(path: &Path) -> std::io::Result<Option<Vec<u8>>> {
    let text = match std::fs::read(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let whole = text.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    if whole < text.len() {
        tracing::warn!(file = %path.display(), bytes = text.len() - whole,
            "audit log ends with a partial line (a crash); it is cut");
        std::fs::OpenOptions::new()
            .write(true)
            .open(path)?
            .set_len(whole as u64)?;
    }
    Ok(text[..whole]
        .split(|&b| b == b'\n')
        .rfind(|l| !l.is_empty())
        .map(<[u8]>::to_vec))
}

/// Rotated files of `path` (`path.<seq>`), oldest first.
fn rotated(path: &Path) -> Vec<PathBuf> {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return Vec::new();
    };
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let prefix = format!("{}.", name.to_string_lossy());
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_prefix(&prefix))
                .is_some_and(|rest| !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_digit()))
        })
        .collect();
    out.sort();
    out
}

/// Where the chain stands: the next seq and the hash of the last line (of the live
/// file, else of the newest rotated one).
fn resume(path: &Path) -> std::io::Result<(u64, String)> {
    let mut last = last_line(path)?;
    if last.is_none()
        && let Some(newest) = rotated(path).pop()
    {
        last = last_line(&newest)?;
    }
    let Some(last) = last else {
        return Ok((0, ZERO.to_owned()));
    };
    let seq = serde_json::from_slice::<Value>(&last)
        .ok()
        .and_then(|v| v["seq"].as_u64())
        .ok_or_else(|| {
            std::io::Error::other(format!(
                "{}: the last line has no seq; the chain cannot be continued (move the file aside)",
                path.display()
            ))
        })?;
    Ok((seq + 1, sha_hex(&last)))
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
    /// When the oldest line not covered by a checkpoint was written.
    uncovered_since: Option<Instant>,
}

impl Writer {
    fn open(path: &Path, max_size: u64, key: Vec<u8>) -> std::io::Result<Self> {
        let (seq, prev) = resume(path)?;
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
            uncovered_since: None,
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
        let mut text = serde_json::to_vec(&v).map_err(std::io::Error::other)?;
        // The MAC covers everything before it; it is the line's last field.
        if text.pop() != Some(b'}') {
            return Err(std::io::Error::other("an audit line is not a JSON object"));
        }
        let tag = mac(&self.key, &text);
        text.extend_from_slice(format!(r#","mac":"{tag}"}}"#).as_bytes());
        self.file.write_all(&text)?;
        self.file.write_all(b"\n")?;
        self.size += text.len() as u64 + 1;
        self.prev = sha_hex(&text);
        self.seq += 1;
        Ok(())
    }

    fn checkpoint(&mut self) -> std::io::Result<()> {
        self.line(json!({"kind": "checkpoint"}))?;
        self.since_checkpoint = 0;
        self.uncovered_since = None;
        self.file.flush()?;
        self.file.get_ref().sync_data()
    }

    fn event(&mut self, e: &Event) -> std::io::Result<()> {
        let dropped = DROPPED.swap(0, Ordering::Relaxed);
        if dropped > 0 {
            self.line(json!({"kind": "dropped", "lines": dropped}))?;
        }
        self.line(serde_json::to_value(e).map_err(std::io::Error::other)?)?;
        self.since_checkpoint += 1;
        self.uncovered_since.get_or_insert_with(Instant::now);
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
        let rotated = PathBuf::from(rotated);
        // Never over an older file (history is never overwritten); a failed rotation is
        // tried again only after another max_size of lines.
        if rotated.exists() {
            self.max_size = self.size.saturating_add(self.max_size);
            return Err(std::io::Error::other(format!(
                "{} exists; not rotating over it",
                rotated.display()
            )));
        }
        if let Err(e) = std::fs::rename(&self.path, &rotated) {
            self.max_size = self.size.saturating_add(self.max_size);
            return Err(e);
        }
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
            // Wake up when the oldest uncovered line is due its checkpoint.
            let wait = self.uncovered_since.map_or(CHECKPOINT_IDLE, |t| {
                CHECKPOINT_IDLE.saturating_sub(t.elapsed())
            });
            let msg = match rx.recv_timeout(wait) {
                Ok(m) => Some(m),
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => None,
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => return,
            };
            if self
                .uncovered_since
                .is_some_and(|t| t.elapsed() >= CHECKPOINT_IDLE)
            {
                self.checkpoint().unwrap_or_else(fail);
            }
            let Some(msg) = msg else { continue };
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
    let (tx, rx) = sync_channel(QUEUE);
    if LOG.set(tx).is_err() {
        return Err(std::io::Error::other("the audit log is already open"));
    }
    std::thread::Builder::new()
        .name("audit-log".into())
        .spawn(move || writer.run(&rx))?;
    Ok(())
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
        (principal, target): (Option<&str>, Option<&(String, Option<String>)>),
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
        // What s3s resolved (virtual-hosted style included), else the path's segments.
        let (bucket, key) = match target {
            Some((b, k)) => (b.clone(), k.clone().unwrap_or_default()),
            None => {
                let mut segs = self.path.trim_start_matches('/').splitn(2, '/');
                (
                    segs.next().map(decode).unwrap_or_default(),
                    segs.next().map(decode).unwrap_or_default(),
                )
            }
        };
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
        assert_eq!(ok.seqs, (0, 5));
        assert!(
            verify(&files, &[8u8; 32])
                .unwrap_err()
                .contains("line 1: edited")
        );
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
        // A crash mid-line: the partial line is cut and the chain continues.
        let mut partial = lines.clone().join("\n") + "\n";
        partial.push_str(r#"{"kind":"s3","seq":6,"#);
        std::fs::write(&path, partial).unwrap();
        let mut w = Writer::open(&path, 1 << 20, key.clone()).unwrap();
        w.event(&Event::default()).unwrap();
        w.checkpoint().unwrap();
        drop(w);
        let ok = verify(&files, &key).unwrap();
        assert_eq!((ok.lines, ok.seqs.1), (8, 7));
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
