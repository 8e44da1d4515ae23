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

/// `s3dedup admin rate-limit …`
#[derive(clap::Subcommand, Debug, Clone)]
pub enum RateAction {
    /// Give a tenant's keys their own rates (each key separately), over the
    /// rate_limit_key_* settings; a rate not given keeps the setting's. 0 = unlimited.
    Set {
        /// The tenant.
        #[arg(long)]
        tenant: String,
        /// Requests per second per key.
        #[arg(long, value_name = "N")]
        requests: Option<u64>,
        /// Request bytes per second per key (`10MiB`, plain bytes).
        #[arg(long, value_name = "SIZE", value_parser = crate::config::parse_size)]
        bytes: Option<u64>,
        #[command(flatten)]
        target: Target,
    },
    /// Back to the settings' rates.
    Clear {
        /// The tenant.
        #[arg(long)]
        tenant: String,
        #[command(flatten)]
        target: Target,
    },
    /// The tenant's own rates and the ones in effect.
    Show {
        /// The tenant.
        #[arg(long)]
        tenant: String,
        /// The server's JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        target: Target,
    },
}

/// Runs `s3dedup admin rate-limit …`.
///
/// # Errors
/// The server cannot be reached or refuses.
pub async fn rate_limit(action: RateAction) -> anyhow::Result<()> {
    let path = |t: &str| {
        format!(
            "/admin/v1/rate-limits/tenants/{}",
            percent_encoding::utf8_percent_encode(t, percent_encoding::NON_ALPHANUMERIC)
        )
    };
    let (method, path, json, target) = match action {
        RateAction::Set {
            tenant,
            requests,
            bytes,
            target,
        } => {
            let mut q = Vec::new();
            if let Some(r) = requests {
                q.push(format!("requests={r}"));
            }
            if let Some(b) = bytes {
                q.push(format!("bytes={b}"));
            }
            if q.is_empty() {
                anyhow::bail!("give --requests and/or --bytes (`rate-limit clear` removes them)");
            }
            (
                Method::PUT,
                format!("{}?{}", path(&tenant), q.join("&")),
                false,
                target,
            )
        }
        RateAction::Clear { tenant, target } => (Method::DELETE, path(&tenant), false, target),
        RateAction::Show {
            tenant,
            json,
            target,
        } => (Method::GET, path(&tenant), json, target),
    };
    let a = target.client()?.request(method, &path).await?;
    if a.status != StatusCode::OK {
        anyhow::bail!("{}", a.message());
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&a.body)?);
    } else {
        let rate = |v: &Value, k: &str| match v[k].as_u64() {
            None => "the setting's".to_owned(),
            Some(0) => "unlimited".to_owned(),
            Some(n) if k.starts_with("bytes") => {
                format!("{}/s", bytesize::ByteSize(n).display().iec())
            }
            Some(n) => format!("{n}/s"),
        };
        let b = &a.body;
        println!(
            "tenant {}: requests {} (in effect {}), bytes {} (in effect {}) per key",
            b["tenant"].as_str().unwrap_or(""),
            rate(b, "requests_per_sec"),
            rate(&b["effective"], "requests_per_sec"),
            rate(b, "bytes_per_sec"),
            rate(&b["effective"], "bytes_per_sec"),
        );
    }
    Ok(())
}
