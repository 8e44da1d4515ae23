//! Per-request context s3s does not carry to the outer server: which operation a
//! request resolved to. s3s calls [`Access::check`] once it has routed and authenticated
//! a request (and before running the operation, implemented or not); the answer lands
//! in a task-local slot that the server reads for its one log line and its metrics.

use std::sync::{Arc, OnceLock};

use s3s::S3Result;
use s3s::access::{S3Access, S3AccessContext};
use s3s::s3_error;

tokio::task_local! {
    static OPERATION: Arc<OnceLock<String>>;
}

/// The operation name for a request s3s refused before routing it (bad signature,
/// unknown access key, malformed path).
pub const UNRESOLVED: &str = "Unresolved";

/// Runs `fut` (one request) with an operation slot; returns its output and the
/// operation it resolved to.
pub async fn with_operation<F: Future>(fut: F) -> (F::Output, String) {
    let slot = Arc::new(OnceLock::new());
    let out = OPERATION.scope(Arc::clone(&slot), fut).await;
    let op = Arc::try_unwrap(slot)
        .ok()
        .and_then(OnceLock::into_inner)
        .unwrap_or_else(|| UNRESOLVED.to_owned());
    (out, op)
}

/// Access control after authentication: today every authenticated principal may do
/// everything (one root key); anonymous requests are refused as s3s's default does.
#[derive(Debug, Default)]
pub struct Access;

#[async_trait::async_trait]
impl S3Access for Access {
    async fn check(&self, cx: &mut S3AccessContext<'_>) -> S3Result<()> {
        let _ = OPERATION.try_with(|slot| slot.set(cx.s3_op().name().to_owned()));
        match cx.credentials() {
            Some(_) => Ok(()),
            None => Err(s3_error!(
                AccessDenied,
                "Anonymous access is not allowed: sign the request"
            )),
        }
    }
}
