//! `s3dedup admin quota set|clear|show --tenant T|--bucket B`: quotas on the running
//! server (through the admin API; see `super::quota`).

use hyper::{Method, StatusCode};
use serde_json::Value;

use super::target::Target;

/// Whose quota.
#[derive(clap::Args, Debug, Clone)]
#[group(required = true, multiple = false)]
pub struct Scope {
    /// A tenant (all its buckets together).
    #[arg(long)]
    tenant: Option<String>,
    /// One bucket.
    #[arg(long)]
    bucket: Option<String>,
}

impl Scope {
    fn path(&self) -> String {
        let enc = |s: &str| {
            percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
        };
        match (&self.tenant, &self.bucket) {
            (Some(t), _) => format!("/admin/v1/quotas/tenants/{}", enc(t)),
            (None, Some(b)) => format!("/admin/v1/quotas/buckets/{}", enc(b)),
            (None, None) => unreachable!("clap requires one"),
        }
    }
}

/// `s3dedup admin quota …`
#[derive(clap::Subcommand, Debug, Clone)]
pub enum QuotaAction {
    /// Set a quota on logical bytes (every stored version's size) and/or object
    /// versions; a limit not given is unlimited. Usage already over it stays; new
    /// uploads are refused (403 QuotaExceeded) until it is back under.
    Set {
        #[command(flatten)]
        scope: Scope,
        /// Most logical bytes (`10GiB`, `500MB`, plain bytes).
        #[arg(long, value_name = "SIZE", value_parser = crate::config::parse_size)]
        bytes: Option<u64>,
        /// Most object versions.
        #[arg(long, value_name = "N")]
        objects: Option<u64>,
        /// The server's JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        target: Target,
    },
    /// Remove a quota.
    Clear {
        #[command(flatten)]
        scope: Scope,
        #[command(flatten)]
        target: Target,
    },
    /// Show a quota and the usage it is checked against.
    Show {
        #[command(flatten)]
        scope: Scope,
        /// The server's JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        target: Target,
    },
}

fn line(v: &Value) -> String {
    let human = |n: u64| bytesize::ByteSize(n).display().iec().to_string();
    let u = |p: &str| v.pointer(p).and_then(Value::as_u64);
    let who = match v.get("tenant").and_then(Value::as_str) {
        Some(t) if v.get("bucket").is_none() => format!("tenant {t}"),
        _ => format!("bucket {}", v["bucket"].as_str().unwrap_or("")),
    };
    let bytes = u("/usage/bytes").unwrap_or(0);
    let objects = u("/usage/objects").unwrap_or(0);
    let of_bytes = u("/quota/max_bytes").map_or("unlimited".into(), human);
    let of_objects = u("/quota/max_objects").map_or("unlimited".into(), |m| m.to_string());
    format!(
        "{who}: {} of {of_bytes}, {objects} of {of_objects} objects",
        human(bytes)
    )
}

/// Runs `s3dedup admin quota …`.
///
/// # Errors
/// The server cannot be reached or refuses.
pub async fn quota(action: QuotaAction) -> anyhow::Result<()> {
    let (method, path, json, target) = match action {
        QuotaAction::Set {
            scope,
            bytes,
            objects,
            json,
            target,
        } => {
            if bytes.is_none() && objects.is_none() {
                anyhow::bail!("give --bytes and/or --objects (`quota clear` removes a quota)");
            }
            let mut q = Vec::new();
            if let Some(b) = bytes {
                q.push(format!("bytes={b}"));
            }
            if let Some(o) = objects {
                q.push(format!("objects={o}"));
            }
            (
                Method::PUT,
                format!("{}?{}", scope.path(), q.join("&")),
                json,
                target,
            )
        }
        QuotaAction::Clear { scope, target } => (Method::DELETE, scope.path(), false, target),
        QuotaAction::Show {
            scope,
            json,
            target,
        } => (Method::GET, scope.path(), json, target),
    };
    let a = target.client()?.request(method, &path).await?;
    if a.status != StatusCode::OK {
        anyhow::bail!("{}", a.message());
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&a.body)?);
    } else {
        println!("{}", line(&a.body));
    }
    Ok(())
}
