//! `s3dedup admin tenant|user|key …`: tenants, users and access keys on the running
//! server (through the admin API; see [`super::identity`]).

use hyper::{Method, StatusCode};
use serde_json::Value;

use super::target::Target;

/// `s3dedup admin tenant …`
#[derive(clap::Subcommand, Debug, Clone)]
pub enum TenantAction {
    /// Create a tenant (3–63 of a-z, 0-9, -; "root" is the operator's).
    Create {
        /// Its name.
        name: String,
        /// Which uploads its chunks dedup with, fixed for good: global (everyone's) or
        /// tenant (only its own; no cross-tenant timing signal). Default: the server's
        /// `dedup_scope` setting.
        #[arg(long, value_name = "global|tenant")]
        dedup_scope: Option<s3dedup_storage::identity::DedupScope>,
        #[command(flatten)]
        target: Target,
    },
    /// List tenants with their users, keys and buckets.
    List {
        /// The server's JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        target: Target,
    },
    /// Delete a tenant with its users and keys (refused while it owns buckets).
    Delete {
        /// Its name.
        name: String,
        #[command(flatten)]
        target: Target,
    },
}

/// `s3dedup admin user …`
#[derive(clap::Subcommand, Debug, Clone)]
pub enum UserAction {
    /// Create a user of a tenant.
    Create {
        /// The tenant.
        #[arg(long)]
        tenant: String,
        /// The user's name.
        name: String,
        #[command(flatten)]
        target: Target,
    },
    /// List a tenant's users.
    List {
        /// The tenant.
        #[arg(long)]
        tenant: String,
        /// The server's JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        target: Target,
    },
    /// Delete a user and its keys.
    Delete {
        /// The tenant.
        #[arg(long)]
        tenant: String,
        /// The user's name.
        name: String,
        #[command(flatten)]
        target: Target,
    },
}

/// `s3dedup admin key …`
#[derive(clap::Subcommand, Debug, Clone)]
pub enum KeyAction {
    /// Create an access key; prints its secret, this once.
    Create {
        /// The tenant it belongs to.
        #[arg(long)]
        tenant: String,
        /// The user it belongs to (optional).
        #[arg(long)]
        user: Option<String>,
        /// It stops working after this long (e.g. 30d, 12h).
        #[arg(long, value_name = "DURATION")]
        expires: Option<String>,
        /// Print {"access_key", "secret_key", "tenant", …} as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        target: Target,
    },
    /// List access keys (never their secrets).
    List {
        /// Only this tenant's.
        #[arg(long)]
        tenant: Option<String>,
        /// The server's JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        target: Target,
    },
    /// Refuse a key from its next request on.
    Disable {
        /// The access key id.
        access_key: String,
        #[command(flatten)]
        target: Target,
    },
    /// Accept a disabled key again.
    Enable {
        /// The access key id.
        access_key: String,
        #[command(flatten)]
        target: Target,
    },
    /// Delete a key.
    Delete {
        /// The access key id.
        access_key: String,
        #[command(flatten)]
        target: Target,
    },
}

fn enc(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

async fn call(
    target: &Target,
    method: Method,
    path: &str,
    want: StatusCode,
) -> anyhow::Result<Value> {
    let a = target.client()?.request(method, path).await?;
    if a.status == want {
        Ok(a.body)
    } else {
        anyhow::bail!("{}", a.message())
    }
}

fn s<'a>(v: &'a Value, k: &str) -> &'a str {
    v.get(k).and_then(Value::as_str).unwrap_or("")
}

fn when(v: &Value, k: &str) -> String {
    v.get(k).and_then(Value::as_u64).map_or_else(
        || "-".into(),
        |ms| {
            time::OffsetDateTime::from_unix_timestamp((ms / 1000) as i64)
                .ok()
                .and_then(|t| {
                    t.format(&time::format_description::well_known::Rfc3339)
                        .ok()
                })
                .unwrap_or_else(|| ms.to_string())
        },
    )
}

fn print_json(v: &Value) {
    println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
}

/// Runs `s3dedup admin tenant …`.
///
/// # Errors
/// The server's refusal (unknown tenant, name taken …) or an unreachable server.
pub async fn tenant(action: TenantAction) -> anyhow::Result<()> {
    match action {
        TenantAction::Create {
            name,
            dedup_scope,
            target,
        } => {
            let query =
                dedup_scope.map_or(String::new(), |d| format!("?dedup_scope={}", d.as_str()));
            let t = call(
                &target,
                Method::PUT,
                &format!("/admin/v1/tenants/{}{query}", enc(&name)),
                StatusCode::CREATED,
            )
            .await?;
            println!(
                "tenant {} created (canonical id {}, dedup scope {})",
                s(&t, "name"),
                s(&t, "canonical_id"),
                s(&t, "dedup_scope")
            );
        }
        TenantAction::List { json, target } => {
            let v = call(&target, Method::GET, "/admin/v1/tenants", StatusCode::OK).await?;
            if json {
                print_json(&v);
                return Ok(());
            }
            println!(
                "{:<24} {:<7} {:>5} {:>5}  buckets",
                "tenant", "dedup", "users", "keys"
            );
            for t in v["tenants"].as_array().into_iter().flatten() {
                let buckets: Vec<&str> = t["buckets"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .collect();
                println!(
                    "{:<24} {:<7} {:>5} {:>5}  {}",
                    s(t, "name"),
                    s(t, "dedup_scope"),
                    t["users"],
                    t["keys"],
                    buckets.join(",")
                );
            }
        }
        TenantAction::Delete { name, target } => {
            call(
                &target,
                Method::DELETE,
                &format!("/admin/v1/tenants/{}", enc(&name)),
                StatusCode::OK,
            )
            .await?;
            println!("tenant {name} deleted, with its users and keys");
        }
    }
    Ok(())
}

/// Runs `s3dedup admin user …`.
///
/// # Errors
/// The server's refusal or an unreachable server.
pub async fn user(action: UserAction) -> anyhow::Result<()> {
    match action {
        UserAction::Create {
            tenant,
            name,
            target,
        } => {
            let path = format!("/admin/v1/tenants/{}/users/{}", enc(&tenant), enc(&name));
            call(&target, Method::PUT, &path, StatusCode::CREATED).await?;
            println!("user {name} of tenant {tenant} created");
        }
        UserAction::List {
            tenant,
            json,
            target,
        } => {
            let path = format!("/admin/v1/tenants/{}/users", enc(&tenant));
            let v = call(&target, Method::GET, &path, StatusCode::OK).await?;
            if json {
                print_json(&v);
                return Ok(());
            }
            for u in v["users"].as_array().into_iter().flatten() {
                println!("{:<32} created {}", s(u, "name"), when(u, "created_ms"));
            }
        }
        UserAction::Delete {
            tenant,
            name,
            target,
        } => {
            let path = format!("/admin/v1/tenants/{}/users/{}", enc(&tenant), enc(&name));
            call(&target, Method::DELETE, &path, StatusCode::OK).await?;
            println!("user {name} of tenant {tenant} deleted, with its keys");
        }
    }
    Ok(())
}

/// Runs `s3dedup admin key …`.
///
/// # Errors
/// The server's refusal (unknown tenant, user or key) or an unreachable server.
pub async fn key(action: KeyAction) -> anyhow::Result<()> {
    match action {
        KeyAction::Create {
            tenant,
            user,
            expires,
            json,
            target,
        } => {
            let mut path = format!("/admin/v1/keys?tenant={}", enc(&tenant));
            if let Some(u) = &user {
                path.push_str(&format!("&user={}", enc(u)));
            }
            if let Some(e) = &expires {
                crate::config::parse_duration(e)
                    .map_err(|m| anyhow::anyhow!("--expires {e}: {m}"))?;
                path.push_str(&format!("&expires={}", enc(e)));
            }
            let k = call(&target, Method::POST, &path, StatusCode::CREATED).await?;
            if json {
                print_json(&k);
            } else {
                println!(
                    "access key created for tenant {} (the secret is shown this once):",
                    s(&k, "tenant")
                );
                println!("  access key: {}", s(&k, "access_key"));
                println!("  secret key: {}", s(&k, "secret_key"));
                if k["expires_ms"].is_u64() {
                    println!("  expires:    {}", when(&k, "expires_ms"));
                }
            }
        }
        KeyAction::List {
            tenant,
            json,
            target,
        } => {
            let path = match &tenant {
                Some(t) => format!("/admin/v1/keys?tenant={}", enc(t)),
                None => "/admin/v1/keys".into(),
            };
            let v = call(&target, Method::GET, &path, StatusCode::OK).await?;
            if json {
                print_json(&v);
                return Ok(());
            }
            println!(
                "{:<22} {:<20} {:<16} {:<9} expires",
                "access key", "tenant", "user", "status"
            );
            for k in v["keys"].as_array().into_iter().flatten() {
                println!(
                    "{:<22} {:<20} {:<16} {:<9} {}",
                    s(k, "access_key"),
                    s(k, "tenant"),
                    k["user"].as_str().unwrap_or("-"),
                    s(k, "status"),
                    when(k, "expires_ms")
                );
            }
        }
        KeyAction::Disable { access_key, target } => {
            let path = format!("/admin/v1/keys/{}/disable", enc(&access_key));
            call(&target, Method::POST, &path, StatusCode::OK).await?;
            println!("access key {access_key} disabled: its next request is refused");
        }
        KeyAction::Enable { access_key, target } => {
            let path = format!("/admin/v1/keys/{}/enable", enc(&access_key));
            call(&target, Method::POST, &path, StatusCode::OK).await?;
            println!("access key {access_key} enabled");
        }
        KeyAction::Delete { access_key, target } => {
            call(
                &target,
                Method::DELETE,
                &format!("/admin/v1/keys/{}", enc(&access_key)),
                StatusCode::OK,
            )
            .await?;
            println!("access key {access_key} deleted");
        }
    }
    Ok(())
}
