//! `s3dedup audit verify`: the chain, the MACs and the sequence of audit log files.

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::{ZERO, load_key, mac, sha_hex, split_mac};

/// What [`verify`] found.
#[derive(Debug, Default)]
pub struct Verified {
    /// Lines checked.
    pub lines: u64,
    /// Checkpoints among them.
    pub checkpoints: u64,
    /// Lines after the last checkpoint.
    pub unanchored: u64,
    /// First and last `seq` seen.
    pub seqs: (u64, u64),
    /// First and last `time` seen.
    pub times: (String, String),
}

/// Checks `files` (in order: rotated ones first, the live one last) against `key`.
///
/// # Errors
/// The first problem, naming the file and line (1-based).
pub fn verify(files: &[PathBuf], key: &[u8]) -> Result<Verified, String> {
    let mut out = Verified::default();
    let mut expect: Option<(u64, String)> = None;
    for file in files {
        let text = std::fs::read(file).map_err(|e| format!("{}: {e}", file.display()))?;
        if !text.is_empty() && !text.ends_with(b"\n") {
            return Err(format!(
                "{}: ends with a partial line: cut or edited",
                file.display()
            ));
        }
        for (i, line) in text.split(|&b| b == b'\n').enumerate() {
            if line.is_empty() {
                continue;
            }
            let at = format!("{} line {}", file.display(), i + 1);
            let (body, tag) = split_mac(line).ok_or(format!("{at}: no MAC at its end: edited"))?;
            if mac(key, body) != tag {
                return Err(format!(
                    "{at}: edited (its MAC does not verify; or the key is not the log's)"
                ));
            }
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
                        "{at}: its prev is not the SHA-256 of the line before it: lines removed or reordered"
                    ));
                }
                _ => {}
            }
            let time = v["time"].as_str().unwrap_or("").to_owned();
            if expect.is_none() {
                out.seqs.0 = seq;
                out.times.0.clone_from(&time);
            }
            out.seqs.1 = seq;
            out.times.1 = time;
            if v["kind"] == "checkpoint" {
                out.checkpoints += 1;
                out.unanchored = 0;
            } else {
                out.unanchored += 1;
            }
            out.lines += 1;
            expect = Some((seq + 1, sha_hex(line)));
        }
    }
    Ok(out)
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
                "audit log verified: {} lines, seq {}..={}, {} to {}, {} checkpoints{}",
                v.lines,
                v.seqs.0,
                v.seqs.1,
                v.times.0,
                v.times.1,
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
