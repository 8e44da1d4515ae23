//! `GET /admin/v1/backup-index`: a consistent copy of the live index, streamed.
//!
//! The copy is the same logical snapshot the periodic local snapshots are (every table
//! copied from one read transaction into a new redb file), written to a temporary file
//! in `<data_dir>/index-snapshots/`, unlinked as soon as it is open, and streamed from
//! the open file: memory stays at one read buffer whatever the index size, and nothing
//! is left behind if the client goes away.

use bytes::Bytes;
use http_body_util::{BodyExt, StreamBody, combinators::UnsyncBoxBody};
use hyper::body::Frame;
use hyper::{Response, StatusCode};
use tokio::io::AsyncReadExt;

use s3dedup_storage::Store;

/// The admin API's response body: JSON in one piece, or a streamed file.
pub type AdminBody = UnsyncBoxBody<Bytes, std::io::Error>;

/// Boxes a whole-body response.
pub fn boxed(r: Response<http_body_util::Full<Bytes>>) -> Response<AdminBody> {
    r.map(|b| b.map_err(|never| match never {}).boxed_unsync())
}

const PIECE: usize = 1 << 20;

/// Writes the copy and streams it (`application/octet-stream`, with its length).
pub async fn backup_index(store: &Store, data_dir: &std::path::Path) -> Response<AdminBody> {
    let dir = s3dedup_storage::snapshot_dir(data_dir);
    let path = dir.join(format!(
        "backup-{}-{:08x}.redb",
        std::process::id(),
        rand::random::<u32>()
    ));
    let fail = |e: String| {
        tracing::warn!(error = %e, "backup-index failed");
        boxed(super::error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            e,
        ))
    };
    if let Err(e) = std::fs::create_dir_all(&dir) {
        return fail(format!("{}: {e}", dir.display()));
    }
    let info = match store.backup_index(&path).await {
        Ok(i) => i,
        Err(e) => {
            let _ = std::fs::remove_file(&path);
            return fail(e.to_string());
        }
    };
    let file = tokio::fs::File::open(&path).await;
    // Unlinked at once: the open file stays readable, and nothing is left behind.
    let _ = std::fs::remove_file(&path);
    let file = match file {
        Ok(f) => f,
        Err(e) => return fail(format!("{}: {e}", path.display())),
    };
    tracing::info!(
        bytes = info.bytes,
        entries = info.entries,
        "index backup streamed"
    );
    let stream = futures::stream::unfold(Some(file), |state| async move {
        let mut file = state?;
        let mut buf = vec![0u8; PIECE];
        match file.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok(Frame::data(Bytes::from(buf))), Some(file)))
            }
            Err(e) => Some((Err(e), None)),
        }
    });
    Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "application/octet-stream")
        .header("content-length", info.bytes)
        .header("cache-control", "no-store")
        .body(StreamBody::new(stream).boxed_unsync())
        .unwrap_or_else(|_| fail("building the response".into()))
}
