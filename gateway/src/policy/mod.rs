//! Bucket policies: the subset of the IAM policy language S3 users write, parsed
//! strictly (an element, operator or condition key not listed here makes the policy
//! malformed: nothing is silently ignored, so nothing is silently allowed) and
//! evaluated by [`eval`].
//!
//! Supported:
//! - `Version` (`2012-10-17`, `2008-10-17`), `Id`, `Statement` (one or a list);
//! - per statement: `Sid`, `Effect` (`Allow`/`Deny`), `Principal` (`"*"`,
//!   `{"AWS": "*" | "<tenant>" | "arn:aws:iam::<tenant>:root" |
//!   "arn:aws:iam::<tenant>:user/<user>"}`, `{"CanonicalUser": "<canonical id>"}`),
//!   `Action`/`NotAction` (`s3:` actions, `*` and `?` wildcards, case-insensitive),
//!   `Resource`/`NotResource` (`arn:aws:s3:::<bucket>[/<key pattern>]`, wildcards; each
//!   must name this bucket), `Condition`;
//! - condition operators: `StringEquals`, `StringNotEquals`, `StringEqualsIgnoreCase`,
//!   `StringNotEqualsIgnoreCase`, `StringLike`, `StringNotLike`, `IpAddress`,
//!   `NotIpAddress`, `Bool`, `Null`, `NumericEquals`, `NumericNotEquals`,
//!   `NumericLessThan[Equals]`, `NumericGreaterThan[Equals]`, each also with `IfExists`;
//! - condition keys: [`CONDITION_KEYS`] and `s3:ExistingObjectTag/<tag>`.
//!
//! Not supported (malformed): `NotPrincipal`, `Service`/`Federated` principals, policy
//! variables (`${…}`), `ForAnyValue:`/`ForAllValues:` set operators.

pub mod actions;
pub mod eval;

use serde_json::Value;

/// Most bytes of a policy document (S3's limit).
pub const MAX_POLICY_BYTES: usize = 20 * 1024;

/// Condition keys a policy may test (lowercase; matched case-insensitively).
pub const CONDITION_KEYS: &[&str] = &[
    "aws:sourceip",
    "aws:securetransport",
    "aws:referer",
    "aws:useragent",
    "aws:username",
    "aws:principalaccount",
    "aws:principaltype",
    "s3:prefix",
    "s3:delimiter",
    "s3:max-keys",
    "s3:x-amz-acl",
    "s3:versionid",
    "s3:x-amz-copy-source",
    "s3:x-amz-metadata-directive",
    "s3:x-amz-server-side-encryption",
    "s3:x-amz-storage-class",
    "s3:object-lock-mode",
    "s3:object-lock-retain-until-date",
    "s3:object-lock-legal-hold",
    "s3:signatureversion",
];

/// Allow or Deny.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// Grants.
    Allow,
    /// Refuses, whatever grants.
    Deny,
}

/// One principal a statement names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PrincipalId {
    /// Every key of a tenant.
    Tenant(String),
    /// The keys of one user of a tenant.
    User {
        /// Tenant.
        tenant: String,
        /// User.
        user: String,
    },
    /// A tenant by canonical id.
    Canonical(String),
}

/// Whom a statement is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principals {
    /// Everyone, anonymous requests included.
    Any,
    /// These.
    Only(Vec<PrincipalId>),
}

/// A list of patterns, or everything except them (`NotAction`, `NotResource`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Patterns {
    /// Matches what one of them matches.
    In(Vec<String>),
    /// Matches what none of them matches.
    NotIn(Vec<String>),
}

/// A condition operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum Op {
    StringEquals,
    StringNotEquals,
    StringEqualsIgnoreCase,
    StringNotEqualsIgnoreCase,
    StringLike,
    StringNotLike,
    IpAddress,
    NotIpAddress,
    Bool,
    Null,
    NumericEquals,
    NumericNotEquals,
    NumericLessThan,
    NumericLessThanEquals,
    NumericGreaterThan,
    NumericGreaterThanEquals,
}

impl Op {
    fn parse(name: &str) -> Option<(Op, bool)> {
        let (base, if_exists) = match name.strip_suffix("IfExists") {
            Some(b) => (b, true),
            None => (name, false),
        };
        let op = match base {
            "StringEquals" => Op::StringEquals,
            "StringNotEquals" => Op::StringNotEquals,
            "StringEqualsIgnoreCase" => Op::StringEqualsIgnoreCase,
            "StringNotEqualsIgnoreCase" => Op::StringNotEqualsIgnoreCase,
            "StringLike" => Op::StringLike,
            "StringNotLike" => Op::StringNotLike,
            "IpAddress" => Op::IpAddress,
            "NotIpAddress" => Op::NotIpAddress,
            "Bool" => Op::Bool,
            "Null" if !if_exists => Op::Null,
            "NumericEquals" => Op::NumericEquals,
            "NumericNotEquals" => Op::NumericNotEquals,
            "NumericLessThan" => Op::NumericLessThan,
            "NumericLessThanEquals" => Op::NumericLessThanEquals,
            "NumericGreaterThan" => Op::NumericGreaterThan,
            "NumericGreaterThanEquals" => Op::NumericGreaterThanEquals,
            _ => return None,
        };
        Some((op, if_exists))
    }

    /// Negated operators are true when the key is absent.
    pub fn negated(self) -> bool {
        matches!(
            self,
            Op::StringNotEquals
                | Op::StringNotEqualsIgnoreCase
                | Op::StringNotLike
                | Op::NotIpAddress
        )
    }
}

/// One test of a statement's `Condition`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Condition {
    /// The operator.
    pub op: Op,
    /// `…IfExists`: true when the key is absent.
    pub if_exists: bool,
    /// The key, lowercase.
    pub key: String,
    /// The values (any of them may match).
    pub values: Vec<String>,
}

/// One statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    /// `Sid`.
    pub sid: Option<String>,
    /// `Effect`.
    pub effect: Effect,
    /// `Principal`.
    pub principals: Principals,
    /// `Action` / `NotAction`.
    pub actions: Patterns,
    /// `Resource` / `NotResource`.
    pub resources: Patterns,
    /// Every condition must hold.
    pub conditions: Vec<Condition>,
}

/// A parsed bucket policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// Its statements.
    pub statements: Vec<Statement>,
}

impl Policy {
    /// Whether a condition reads an object's tags (`s3:ExistingObjectTag/<key>`): the
    /// access check then looks the version's tags up.
    pub fn reads_object_tags(&self) -> bool {
        self.statements
            .iter()
            .flat_map(|s| &s.conditions)
            .any(|c| c.key.starts_with(EXISTING_OBJECT_TAG))
    }
}

/// The prefix of the condition keys naming an object's tag (lowercase, as keys are
/// kept).
pub const EXISTING_OBJECT_TAG: &str = "s3:existingobjecttag/";

type Parsed<T> = Result<T, String>;

fn strings(v: &Value, what: &str) -> Parsed<Vec<String>> {
    let list: Vec<&Value> = match v {
        Value::Array(a) if !a.is_empty() => a.iter().collect(),
        Value::Array(_) => return Err(format!("{what} is an empty list")),
        other => vec![other],
    };
    list.into_iter()
        .map(|s| match s {
            Value::String(s) if s.contains("${") => {
                Err(format!("{what} {s:?}: policy variables are not supported"))
            }
            Value::String(s) => Ok(s.clone()),
            // Bool conditions may be written as JSON booleans, numbers as numbers.
            Value::Bool(b) => Ok(b.to_string()),
            Value::Number(n) => Ok(n.to_string()),
            other => Err(format!("{what}: expected a string, found {other}")),
        })
        .collect()
}

fn principals(v: &Value, tenant_exists: &dyn Fn(&str) -> bool) -> Parsed<Principals> {
    if v.as_str() == Some("*") {
        return Ok(Principals::Any);
    }
    let Value::Object(m) = v else {
        return Err("Principal must be \"*\" or an object such as {\"AWS\": …}".into());
    };
    let mut out = Vec::new();
    for (k, vals) in m {
        let vals = strings(vals, "Principal")?;
        match k.as_str() {
            "AWS" => {
                for p in vals {
                    if p == "*" {
                        return Ok(Principals::Any);
                    }
                    let id = if let Some(rest) = p.strip_prefix("arn:aws:iam::") {
                        let (tenant, what) = rest
                            .split_once(':')
                            .ok_or_else(|| format!("Invalid principal in policy: {p}"))?;
                        match what {
                            "root" => PrincipalId::Tenant(tenant.to_owned()),
                            _ => match what.strip_prefix("user/") {
                                Some(u) if !u.is_empty() => PrincipalId::User {
                                    tenant: tenant.to_owned(),
                                    user: u.to_owned(),
                                },
                                _ => return Err(format!("Invalid principal in policy: {p}")),
                            },
                        }
                    } else {
                        PrincipalId::Tenant(p.clone())
                    };
                    let tenant = match &id {
                        PrincipalId::Tenant(t) | PrincipalId::User { tenant: t, .. } => t,
                        PrincipalId::Canonical(_) => unreachable!("AWS principals name tenants"),
                    };
                    if !tenant_exists(tenant) {
                        return Err(format!("Invalid principal in policy: no tenant {tenant:?}"));
                    }
                    out.push(id);
                }
            }
            "CanonicalUser" => {
                for p in vals {
                    if p.len() != 64 || !p.bytes().all(|b| b.is_ascii_hexdigit()) {
                        return Err(format!("Invalid principal in policy: canonical id {p:?}"));
                    }
                    out.push(PrincipalId::Canonical(p.to_ascii_lowercase()));
                }
            }
            other => {
                return Err(format!(
                    "Principal type {other:?} is not supported (AWS, CanonicalUser)"
                ));
            }
        }
    }
    if out.is_empty() {
        return Err("Principal names nobody".into());
    }
    Ok(Principals::Only(out))
}

fn actions(vals: Vec<String>) -> Parsed<Vec<String>> {
    for a in &vals {
        if a == "*" {
            continue;
        }
        let Some(name) = a
            .get(..3)
            .filter(|p| p.eq_ignore_ascii_case("s3:"))
            .map(|_| &a[3..])
        else {
            return Err(format!(
                "Policy has invalid action: {a} (only s3: actions apply to buckets)"
            ));
        };
        if !actions::KNOWN
            .iter()
            .any(|k| actions::wildcard(name, k, true))
        {
            return Err(format!("Policy has invalid action: {a}"));
        }
    }
    Ok(vals)
}

fn resources(vals: Vec<String>, bucket: &str) -> Parsed<Vec<String>> {
    for r in &vals {
        if r == "*" {
            continue;
        }
        let Some(rest) = r.strip_prefix("arn:aws:s3:::") else {
            return Err(format!(
                "Policy has invalid resource: {r} (expected arn:aws:s3:::bucket/key)"
            ));
        };
        let b = rest.split_once('/').map_or(rest, |(b, _)| b);
        if !actions::wildcard(b, bucket, false) {
            return Err(format!(
                "Policy has invalid resource: {r} is not in bucket {bucket}"
            ));
        }
    }
    Ok(vals)
}

fn conditions(v: &Value) -> Parsed<Vec<Condition>> {
    let Value::Object(ops) = v else {
        return Err("Condition must be an object".into());
    };
    let mut out = Vec::new();
    for (name, block) in ops {
        if name.starts_with("ForAnyValue:") || name.starts_with("ForAllValues:") {
            return Err(format!(
                "Condition operator {name}: set operators are not supported"
            ));
        }
        let (op, if_exists) =
            Op::parse(name).ok_or_else(|| format!("Unknown condition operator {name}"))?;
        let Value::Object(keys) = block else {
            return Err(format!("Condition {name} must be an object of keys"));
        };
        for (key, vals) in keys {
            let lower = key.to_ascii_lowercase();
            let tag = lower
                .strip_prefix(EXISTING_OBJECT_TAG)
                .is_some_and(|t| !t.is_empty());
            if !tag && !CONDITION_KEYS.contains(&lower.as_str()) {
                return Err(format!("Policy has an invalid condition key: {key}"));
            }
            let values = strings(vals, &format!("Condition {name} {key}"))?;
            if matches!(op, Op::IpAddress | Op::NotIpAddress) {
                for c in &values {
                    eval::Cidr::parse(c).ok_or_else(|| {
                        format!("Condition {name} {key}: invalid IP or CIDR {c:?}")
                    })?;
                }
            }
            if matches!(op, Op::Bool | Op::Null)
                && values.iter().any(|v| v != "true" && v != "false")
            {
                return Err(format!("Condition {name} {key}: expected true or false"));
            }
            out.push(Condition {
                op,
                if_exists,
                key: lower,
                values,
            });
        }
    }
    Ok(out)
}

fn statement(v: &Value, bucket: &str, tenant_exists: &dyn Fn(&str) -> bool) -> Parsed<Statement> {
    let Value::Object(m) = v else {
        return Err("each Statement must be an object".into());
    };
    for k in m.keys() {
        if !matches!(
            k.as_str(),
            "Sid"
                | "Effect"
                | "Principal"
                | "Action"
                | "NotAction"
                | "Resource"
                | "NotResource"
                | "Condition"
        ) {
            return Err(format!("Unknown field {k} in a Statement"));
        }
    }
    let effect = match m.get("Effect").and_then(Value::as_str) {
        Some("Allow") => Effect::Allow,
        Some("Deny") => Effect::Deny,
        Some(e) => return Err(format!("Invalid effect: {e}")),
        None => return Err("Missing required field Effect".into()),
    };
    let principals = principals(
        m.get("Principal")
            .ok_or("Missing required field Principal (NotPrincipal is not supported)")?,
        tenant_exists,
    )?;
    let actions = match (m.get("Action"), m.get("NotAction")) {
        (Some(a), None) => Patterns::In(actions(strings(a, "Action")?)?),
        (None, Some(a)) => Patterns::NotIn(actions(strings(a, "NotAction")?)?),
        _ => return Err("a Statement needs exactly one of Action or NotAction".into()),
    };
    let resources = match (m.get("Resource"), m.get("NotResource")) {
        (Some(r), None) => Patterns::In(resources(strings(r, "Resource")?, bucket)?),
        (None, Some(r)) => Patterns::NotIn(resources(strings(r, "NotResource")?, bucket)?),
        _ => return Err("a Statement needs exactly one of Resource or NotResource".into()),
    };
    let conditions = match m.get("Condition") {
        Some(c) => conditions(c)?,
        None => Vec::new(),
    };
    let sid = match m.get("Sid") {
        None => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err("Sid must be a string".into()),
    };
    Ok(Statement {
        sid,
        effect,
        principals,
        actions,
        resources,
        conditions,
    })
}

impl Policy {
    /// Parses the policy document of `bucket`; `tenant_exists` says whether a principal
    /// names a tenant that exists (S3 refuses unknown principals too).
    ///
    /// # Errors
    /// Why the document is malformed (the message of the `MalformedPolicy` error).
    pub fn parse(
        json: &str,
        bucket: &str,
        tenant_exists: &dyn Fn(&str) -> bool,
    ) -> Result<Policy, String> {
        if json.len() > MAX_POLICY_BYTES {
            return Err(format!("Policies must be at most {MAX_POLICY_BYTES} bytes"));
        }
        let v: Value = serde_json::from_str(json)
            .map_err(|e| format!("This policy contains invalid Json: {e}"))?;
        let Value::Object(m) = &v else {
            return Err("a policy is a JSON object".into());
        };
        for k in m.keys() {
            if !matches!(k.as_str(), "Version" | "Id" | "Statement") {
                return Err(format!("Unknown field {k}"));
            }
        }
        match m.get("Version").and_then(Value::as_str) {
            Some("2012-10-17" | "2008-10-17") => {}
            Some(other) => {
                return Err(format!(
                    "Invalid policy version {other} (2012-10-17 or 2008-10-17)"
                ));
            }
            None => return Err("Missing required field Version".into()),
        }
        if m.get("Id").is_some_and(|i| !i.is_string()) {
            return Err("Id must be a string".into());
        }
        let statements = match m.get("Statement") {
            Some(Value::Array(a)) if !a.is_empty() => a
                .iter()
                .map(|s| statement(s, bucket, tenant_exists))
                .collect::<Parsed<Vec<_>>>()?,
            Some(s @ Value::Object(_)) => vec![statement(s, bucket, tenant_exists)?],
            _ => return Err("Missing required field Statement".into()),
        };
        Ok(Policy { statements })
    }
}
