//! Evaluating a [`Policy`] for one request: explicit Deny, Allow, or nothing said.

use std::collections::HashMap;
use std::net::IpAddr;

use super::actions::wildcard;
use super::{Condition, Effect, Op, Patterns, Policy, PrincipalId, Principals, Statement};

/// An IP address or CIDR block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    bits: u8,
}

impl Cidr {
    /// `10.0.0.0/8`, `2001:db8::/32`, or a plain address.
    pub fn parse(s: &str) -> Option<Cidr> {
        let (a, bits) = match s.split_once('/') {
            Some((a, b)) => (a, Some(b.parse::<u8>().ok()?)),
            None => (s, None),
        };
        let addr: IpAddr = a.parse().ok()?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let bits = bits.unwrap_or(max);
        (bits <= max).then_some(Cidr { addr, bits })
    }

    /// Whether `ip` is in the block (an IPv4-mapped IPv6 address counts as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(a)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.bits)).unwrap_or(0);
                u32::from(net) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(a)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.bits))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }

    /// Whether the block is the whole address space (`0.0.0.0/0`, `::/0`).
    pub fn is_everything(&self) -> bool {
        self.bits == 0
    }
}

/// Who asks, as a policy sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Who<'a> {
    /// An unsigned request.
    Anonymous,
    /// A tenant's key.
    Tenant {
        /// Its tenant.
        tenant: &'a str,
        /// Its user, if any.
        user: Option<&'a str>,
        /// The tenant's canonical id.
        canonical_id: &'a str,
    },
}

/// The condition keys of a request (lowercase keys), each with its value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Context {
    values: HashMap<String, String>,
}

impl Context {
    /// Sets `key` (any case) to `value`.
    pub fn set(&mut self, key: &str, value: impl Into<String>) {
        self.values.insert(key.to_ascii_lowercase(), value.into());
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.values.get(key).map(String::as_str)
    }
}

/// One request, as a policy sees it.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// Who.
    pub who: Who<'a>,
    /// The IAM action (`s3:GetObject`).
    pub action: &'a str,
    /// The resource ARN (`arn:aws:s3:::bucket` or `arn:aws:s3:::bucket/key`).
    pub resource: &'a str,
    /// Its condition keys.
    pub context: &'a Context,
}

/// What a policy says of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A Deny statement matches: refused, whatever else grants.
    ExplicitDeny,
    /// An Allow statement matches (and no Deny); `public` = only public statements
    /// (see [`statement_is_public`]) allow it.
    Allow {
        /// Granted by public statements only.
        public: bool,
    },
    /// No statement matches.
    NoMatch,
}

fn principal_matches(p: &Principals, who: Who<'_>) -> bool {
    match (p, who) {
        (Principals::Any, _) => true,
        (Principals::Only(_), Who::Anonymous) => false,
        (
            Principals::Only(ids),
            Who::Tenant {
                tenant,
                user,
                canonical_id,
            },
        ) => ids.iter().any(|id| match id {
            PrincipalId::Tenant(t) => t == tenant,
            PrincipalId::User { tenant: t, user: u } => t == tenant && Some(u.as_str()) == user,
            PrincipalId::Canonical(c) => c.eq_ignore_ascii_case(canonical_id),
        }),
    }
}

fn patterns_match(p: &Patterns, value: &str, fold: bool) -> bool {
    let any = |list: &[String]| list.iter().any(|pat| wildcard(pat, value, fold));
    match p {
        Patterns::In(l) => any(l),
        Patterns::NotIn(l) => !any(l),
    }
}

fn numeric(op: Op, have: f64, want: f64) -> bool {
    match op {
        Op::NumericEquals => have == want,
        Op::NumericNotEquals => have != want,
        Op::NumericLessThan => have < want,
        Op::NumericLessThanEquals => have <= want,
        Op::NumericGreaterThan => have > want,
        Op::NumericGreaterThanEquals => have >= want,
        _ => false,
    }
}

/// Whether one condition holds for `cx`.
pub fn condition_holds(c: &Condition, cx: &Context) -> bool {
    let Some(have) = cx.get(&c.key) else {
        return match c.op {
            Op::Null => c.values.iter().any(|v| v == "true"),
            _ => c.if_exists || c.op.negated(),
        };
    };
    let any = |f: &dyn Fn(&str) -> bool| c.values.iter().any(|v| f(v));
    match c.op {
        Op::Null => c.values.iter().any(|v| v == "false"),
        Op::StringEquals => any(&|v| v == have),
        Op::StringNotEquals => !any(&|v| v == have),
        Op::StringEqualsIgnoreCase => any(&|v| v.eq_ignore_ascii_case(have)),
        Op::StringNotEqualsIgnoreCase => !any(&|v| v.eq_ignore_ascii_case(have)),
        Op::StringLike => any(&|v| wildcard(v, have, false)),
        Op::StringNotLike => !any(&|v| wildcard(v, have, false)),
        Op::Bool => any(&|v| v.eq_ignore_ascii_case(have)),
        Op::IpAddress | Op::NotIpAddress => {
            let inside = have
                .parse::<IpAddr>()
                .is_ok_and(|ip| any(&|v| Cidr::parse(v).is_some_and(|n| n.contains(ip))));
            inside == (c.op == Op::IpAddress)
        }
        _ => match have.parse::<f64>() {
            Ok(h) => any(&|v| v.parse::<f64>().is_ok_and(|w| numeric(c.op, h, w))),
            Err(_) => false,
        },
    }
}

fn statement_matches(s: &Statement, r: &Request<'_>) -> bool {
    principal_matches(&s.principals, r.who)
        && patterns_match(&s.actions, r.action, true)
        && patterns_match(&s.resources, r.resource, false)
        && s.conditions.iter().all(|c| condition_holds(c, r.context))
}

/// Whether a statement grants to everyone: an Allow for `*` that no condition ties to
/// specific source addresses or accounts (S3's notion of a public policy).
pub fn statement_is_public(s: &Statement) -> bool {
    s.effect == Effect::Allow
        && s.principals == Principals::Any
        && !s.conditions.iter().any(|c| match (c.op, c.key.as_str()) {
            (Op::IpAddress, "aws:sourceip") => c
                .values
                .iter()
                .all(|v| Cidr::parse(v).is_some_and(|n| !n.is_everything())),
            (Op::StringEquals, "aws:principalaccount") => true,
            _ => false,
        })
}

impl Policy {
    /// What the policy says of `r`. Deny wins over Allow.
    pub fn evaluate(&self, r: &Request<'_>) -> Outcome {
        let mut allow: Option<bool> = None;
        for s in self.statements.iter().filter(|s| statement_matches(s, r)) {
            match s.effect {
                Effect::Deny => return Outcome::ExplicitDeny,
                Effect::Allow => {
                    let public = statement_is_public(s);
                    allow = Some(allow.map_or(public, |p| p && public));
                }
            }
        }
        allow.map_or(Outcome::NoMatch, |public| Outcome::Allow { public })
    }

    /// Whether any statement is public (GetBucketPolicyStatus, BlockPublicPolicy).
    pub fn is_public(&self) -> bool {
        self.statements.iter().any(statement_is_public)
    }

    /// The outcome of `r` with public statements left out (RestrictPublicBuckets).
    pub fn evaluate_private(&self, r: &Request<'_>) -> Outcome {
        let private = Policy {
            statements: self
                .statements
                .iter()
                .filter(|s| !statement_is_public(s))
                .cloned()
                .collect(),
        };
        private.evaluate(r)
    }
}
