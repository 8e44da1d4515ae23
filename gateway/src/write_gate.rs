//! The write gate: read-only mode and the capacity guard.
//!
//! - **Read-only mode** (`read_only` setting, or `s3dedup admin mode read-only` at run
//!   time): every S3 operation that changes something answers 503 with a message; reads
//!   continue. Scheduled GC and lifecycle runs are skipped and the admin API refuses to
//!   start GC, lifecycle or rekey runs, so nothing moves stored bytes during a
//!   maintenance window. The run-time mode is kept in `<data_dir>/read-only` so that a
//!   restart (a crash, a unit restart) keeps it.
//! - **Capacity guard**: when the data dir's file system has less than `min_free_space`
//!   free, uploads (operations that add data) answer 503 and `/health/ready` says why;
//!   deletes and configuration changes still work (they free space or cost none). The
//!   index lives on that file system and must never be starved: a full disk in the middle
//!   of an index commit is the one failure the gate exists to avoid.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use s3s::{S3Error, s3_error};

/// The run-time read-only marker in the data dir.
pub const READ_ONLY_MARKER: &str = "read-only";

/// How often free space is measured.
const FREE_SPACE_EVERY: Duration = Duration::from_secs(1);

/// Read-only mode and the capacity guard (module docs).
#[derive(Debug)]
pub struct WriteGate {
    data_dir: PathBuf,
    /// Set by the `read_only` setting: `admin mode read-write` cannot lift it.
    forced: bool,
    /// Set at run time (and kept in the marker file).
    runtime: AtomicBool,
    min_free: u64,
    /// Free bytes as last measured (`u64::MAX` until the first measurement).
    free: AtomicU64,
}

/// The current mode, as the admin API reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Mode {
    /// Writes are refused.
    pub read_only: bool,
    /// By the `read_only` setting (the admin command cannot lift it).
    pub forced_by_setting: bool,
}

/// S3 operations that add data: refused when the disk is low.
fn adds_data(operation: &str) -> bool {
    matches!(
        operation,
        "PutObject"
            | "PostObject"
            | "CopyObject"
            | "UploadPart"
            | "UploadPartCopy"
            | "CreateMultipartUpload"
            | "CompleteMultipartUpload"
    )
}

/// S3 operations that change nothing: served in read-only mode.
pub fn is_read(operation: &str) -> bool {
    operation.starts_with("Get")
        || operation.starts_with("List")
        || operation.starts_with("Head")
        || operation == "SelectObjectContent"
}

impl WriteGate {
    /// The gate of `data_dir`: read-only when `forced` or when the marker is there.
    pub fn open(data_dir: &Path, forced: bool, min_free: u64) -> Arc<Self> {
        let marked = data_dir.join(READ_ONLY_MARKER).exists();
        let gate = Arc::new(WriteGate {
            data_dir: data_dir.to_owned(),
            forced,
            runtime: AtomicBool::new(marked),
            min_free,
            free: AtomicU64::new(u64::MAX),
        });
        gate.publish_mode();
        // Measured now, so the first upload is already judged.
        if let Err(e) = gate.measure() {
            tracing::warn!(error = %e, dir = %data_dir.display(), "cannot measure free space");
        }
        gate
    }

    /// A gate that never refuses (tests, tools).
    pub fn open_always() -> Arc<Self> {
        Arc::new(WriteGate {
            data_dir: PathBuf::new(),
            forced: false,
            runtime: AtomicBool::new(false),
            min_free: 0,
            free: AtomicU64::new(u64::MAX),
        })
    }

    /// The current mode.
    pub fn mode(&self) -> Mode {
        Mode {
            read_only: self.read_only(),
            forced_by_setting: self.forced,
        }
    }

    /// Writes are refused.
    pub fn read_only(&self) -> bool {
        self.forced || self.runtime.load(Ordering::Acquire)
    }

    fn publish_mode(&self) {
        metrics::gauge!(crate::metrics::READ_ONLY).set(if self.read_only() { 1.0 } else { 0.0 });
    }

    /// Sets the run-time mode and keeps it in the marker file (written and synced
    /// before the mode changes, so a crash right after the answer keeps it).
    ///
    /// # Errors
    /// The marker cannot be written or removed; or read-write was asked while the
    /// setting forces read-only.
    pub fn set_read_only(&self, on: bool) -> Result<Mode, String> {
        if !on && self.forced {
            return Err(
                "read-only mode is set by the read_only setting (S3DEDUP_READ_ONLY); \
                 change the setting and restart"
                    .into(),
            );
        }
        let marker = self.data_dir.join(READ_ONLY_MARKER);
        let io = |e: std::io::Error| format!("{}: {e}", marker.display());
        if on {
            let text = format!(
                "read-only since {}\n",
                humantime::format_rfc3339_seconds(std::time::SystemTime::now())
            );
            let f = std::fs::File::create(&marker).map_err(io)?;
            std::io::Write::write_all(&mut &f, text.as_bytes()).map_err(io)?;
            f.sync_all().map_err(io)?;
        } else {
            match std::fs::remove_file(&marker) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io(e)),
            }
        }
        if let Ok(d) = std::fs::File::open(&self.data_dir) {
            let _ = d.sync_all();
        }
        self.runtime.store(on, Ordering::Release);
        self.publish_mode();
        tracing::warn!(read_only = on, "gateway mode changed");
        Ok(self.mode())
    }

    /// Measures the free space now.
    ///
    /// # Errors
    /// `statvfs` failed.
    pub fn measure(&self) -> std::io::Result<u64> {
        let st = rustix::fs::statvfs(&self.data_dir)?;
        let free = st.f_bavail.saturating_mul(st.f_frsize);
        self.free.store(free, Ordering::Release);
        metrics::gauge!(crate::metrics::DATA_DISK_FREE).set(free as f64);
        Ok(free)
    }

    /// Measures free space every second (a failure keeps the last value and is logged once).
    pub async fn watch(self: Arc<Self>) {
        let mut warned = false;
        loop {
            match self.measure() {
                Ok(_) => warned = false,
                Err(e) if !warned => {
                    warned = true;
                    tracing::warn!(error = %e, dir = %self.data_dir.display(), "cannot measure free space");
                }
                Err(_) => {}
            }
            tokio::time::sleep(FREE_SPACE_EVERY).await;
        }
    }

    /// Why uploads are refused now, if they are: free space below `min_free_space`.
    pub fn low_space(&self) -> Option<String> {
        let free = self.free.load(Ordering::Acquire);
        (free < self.min_free).then(|| {
            format!(
                "the data disk has {} free, below min_free_space ({})",
                bytesize::ByteSize(free),
                bytesize::ByteSize(self.min_free)
            )
        })
    }

    /// Refuses `operation` with 503 when read-only mode or the capacity guard says so.
    ///
    /// # Errors
    /// `ServiceUnavailable` with the reason.
    pub fn check(&self, operation: &str) -> Result<(), S3Error> {
        if is_read(operation) {
            return Ok(());
        }
        if self.read_only() {
            metrics::counter!(crate::metrics::WRITES_REFUSED, "reason" => "read_only").increment(1);
            return Err(s3_error!(
                ServiceUnavailable,
                "The gateway is in read-only mode for maintenance; reads work, writes are refused until it is lifted"
            ));
        }
        if adds_data(operation)
            && let Some(why) = self.low_space()
        {
            metrics::counter!(crate::metrics::WRITES_REFUSED, "reason" => "disk_full").increment(1);
            return Err(s3_error!(
                ServiceUnavailable,
                "Uploads are refused: {why}; delete data or add space"
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_pass_writes_wait_in_read_only_mode_and_the_mode_survives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let gate = WriteGate::open(dir.path(), false, 0);
        assert!(gate.check("PutObject").is_ok());
        gate.set_read_only(true).unwrap();
        for op in [
            "PutObject",
            "DeleteObject",
            "PutBucketPolicy",
            "AbortMultipartUpload",
        ] {
            let e = gate.check(op).unwrap_err();
            assert_eq!(e.code(), &s3s::S3ErrorCode::ServiceUnavailable, "{op}");
            assert!(e.message().unwrap().contains("read-only"), "{op}");
        }
        for op in ["GetObject", "HeadObject", "ListObjectsV2", "GetBucketAcl"] {
            assert!(gate.check(op).is_ok(), "{op}");
        }
        let again = WriteGate::open(dir.path(), false, 0);
        assert!(again.read_only(), "the marker keeps the mode");
        again.set_read_only(false).unwrap();
        assert!(!WriteGate::open(dir.path(), false, 0).read_only());
    }

    #[test]
    fn the_setting_cannot_be_lifted_at_run_time() {
        let dir = tempfile::tempdir().unwrap();
        let gate = WriteGate::open(dir.path(), true, 0);
        assert!(gate.read_only());
        assert!(
            gate.set_read_only(false)
                .unwrap_err()
                .contains("read_only setting")
        );
    }

    #[test]
    fn low_space_refuses_uploads_but_not_deletes() {
        let dir = tempfile::tempdir().unwrap();
        let gate = WriteGate::open(dir.path(), false, u64::MAX - 1);
        let e = gate.check("UploadPart").unwrap_err();
        assert!(e.message().unwrap().contains("min_free_space"));
        assert!(gate.check("DeleteObject").is_ok());
        assert!(gate.check("PutBucketLifecycleConfiguration").is_ok());
        assert!(gate.low_space().is_some());
    }
}
