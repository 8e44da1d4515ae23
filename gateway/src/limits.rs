//! Rate limits and the failed-authentication lockout.
//!
//! **Rate limits** (requests/s and bytes/s, per access key and per client IP) are GCRA
//! token buckets: each key has a "theoretical arrival time"; a request of cost `c` is
//! refused when that time is more than the burst ahead of now, else pushes it `c` ahead.
//! Bytes are charged at the start of a request (its declared length), so one large
//! upload passes and the next waits as long as it takes to "pay" for it — a limiter that
//! refuses any request larger than its burst (as `governor`'s `check_n` does) would
//! refuse every large upload outright. Per-IP limits are checked at the edge, before
//! authentication; per-key limits after it (a forged request naming someone's key id
//! must not use up their budget). Over a limit: 503 SlowDown with `Retry-After`. A tenant
//! may have its own per-key rates (`s3dedup admin rate-limit`), kept in the index.
//!
//! **Lockout**: `auth_failure_limit` failed authentications (a bad signature or an
//! unknown, disabled or expired key) from one IP within `auth_failure_window` refuse that
//! IP for `auth_lockout` (403 before anything else is looked at). Only the IP is locked:
//! the key's owner keeps working from elsewhere.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The body length a request declares: aws-chunked's decoded length, else
/// Content-Length (what the byte rates charge).
pub fn declared_length(h: &http::HeaderMap) -> u64 {
    // The larger of the two: a decoded length s3s would ignore (no aws-chunked body)
    // must not make a large body free.
    let get = |name| {
        h.get(name)
            .and_then(|v: &http::HeaderValue| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    get("x-amz-decoded-content-length").max(get(http::header::CONTENT_LENGTH.as_str()))
}

/// The key an address is limited and locked out by: IPv4 addresses alone, IPv6 by /64
/// (one host usually holds a whole /64).
fn client(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => {
            let s = v6.segments();
            IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
    }
}

/// Limits, as the settings give them (0 = off).
#[derive(Debug, Clone, Copy, Default)]
pub struct LimitSettings {
    /// Requests per second per access key.
    pub key_requests: u64,
    /// Request bytes per second per access key.
    pub key_bytes: u64,
    /// Requests per second per client IP.
    pub ip_requests: u64,
    /// Request bytes per second per client IP.
    pub ip_bytes: u64,
    /// How many seconds' worth of a rate may come at once.
    pub burst: Duration,
    /// Failed authentications from one IP that lock it out (0 = never).
    pub auth_failure_limit: u32,
    /// The window they are counted in.
    pub auth_failure_window: Duration,
    /// How long a locked-out IP is refused.
    pub auth_lockout: Duration,
}

/// Entries a table holds before idle ones are pruned (at most once a second).
const PRUNE_ABOVE: usize = 10_000;
/// How far ahead one key's debt may run: a request declaring an absurd length (before
/// authentication, from a shared address) costs an hour at most.
const MAX_DEBT: Duration = Duration::from_secs(3600);

/// GCRA buckets keyed by `K`.
#[derive(Debug)]
struct Buckets<K> {
    tat: Mutex<(HashMap<K, Instant>, Option<Instant>)>,
}

impl<K: Hash + Eq + Clone> Buckets<K> {
    fn new() -> Self {
        Buckets {
            tat: Mutex::new((HashMap::new(), None)),
        }
    }

    /// Charges `cost` units at `rate` per second (burst `burst`): `Err(wait)` when over.
    fn charge(
        &self,
        key: &K,
        cost: u64,
        rate: u64,
        burst: Duration,
        now: Instant,
    ) -> Result<(), Duration> {
        if rate == 0 || cost == 0 {
            return Ok(());
        }
        let mut guard = self.tat.lock().unwrap_or_else(|e| e.into_inner());
        let (t, pruned) = &mut *guard;
        if t.len() > PRUNE_ABOVE
            && pruned.is_none_or(|p| now.duration_since(p) >= Duration::from_secs(1))
        {
            // Entries whose time has passed are at full burst: forgetting them changes
            // nothing.
            t.retain(|_, tat| *tat > now);
            *pruned = Some(now);
        }
        let tat = t.get(key).copied().unwrap_or(now).max(now);
        let ahead = tat - now;
        if ahead > burst {
            return Err(ahead - burst);
        }
        let cost = Duration::try_from_secs_f64(cost as f64 / rate as f64).unwrap_or(MAX_DEBT);
        let limit = now + burst + MAX_DEBT;
        t.insert(
            key.clone(),
            tat.checked_add(cost).map_or(limit, |t| t.min(limit)),
        );
        Ok(())
    }
}

#[derive(Debug)]
struct Failures {
    window_start: Instant,
    count: u32,
    locked_until: Option<Instant>,
}

/// Rate limits and lockout state (module docs).
#[derive(Debug)]
pub struct Limits {
    s: LimitSettings,
    /// Tenants' own per-key rates (`s3dedup admin rate-limit`), over the settings'.
    tenants: std::sync::RwLock<HashMap<String, s3dedup_storage::rates::RateLimits>>,
    keys: Buckets<(String, bool)>,
    ips: Buckets<(IpAddr, bool)>,
    failures: Mutex<HashMap<IpAddr, Failures>>,
}

/// Why a request is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Over a rate: retry after this long.
    SlowDown(Duration),
    /// The IP is locked out for this long still.
    LockedOut(Duration),
}

impl Limits {
    /// New, empty state.
    pub fn new(s: LimitSettings) -> Self {
        Limits {
            s,
            tenants: std::sync::RwLock::default(),
            keys: Buckets::new(),
            ips: Buckets::new(),
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// The per-IP checks of a new request of `bytes` (lockout first).
    ///
    /// # Errors
    /// The refusal.
    pub fn check_ip(&self, ip: IpAddr, bytes: u64) -> Result<(), Refusal> {
        let ip = client(ip);
        let now = Instant::now();
        if let Some(left) = self.locked(ip, now) {
            return Err(Refusal::LockedOut(left));
        }
        let s = &self.s;
        self.ips
            .charge(&(ip, false), 1, s.ip_requests, s.burst, now)
            .and_then(|()| {
                self.ips
                    .charge(&(ip, true), bytes, s.ip_bytes, s.burst, now)
            })
            .map_err(|wait| {
                metrics::counter!(crate::metrics::RATE_LIMITED, "by" => "ip").increment(1);
                Refusal::SlowDown(wait)
            })
    }

    /// Sets (`Some`) or removes a tenant's own per-key rates.
    pub fn set_tenant(&self, tenant: &str, rates: Option<s3dedup_storage::rates::RateLimits>) {
        let mut t = self.tenants.write().unwrap_or_else(|e| e.into_inner());
        match rates.filter(|r| !r.is_empty()) {
            Some(r) => t.insert(tenant.to_owned(), r),
            None => t.remove(tenant),
        };
    }

    /// The per-key rates of `tenant`'s keys (requests/s, bytes/s; 0 = unlimited).
    pub fn key_rates(&self, tenant: Option<&str>) -> (u64, u64) {
        let (mut req, mut bytes) = (self.s.key_requests, self.s.key_bytes);
        if let Some(t) = tenant
            && let Some(r) = self
                .tenants
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .get(t)
        {
            req = r.requests_per_sec.unwrap_or(req);
            bytes = r.bytes_per_sec.unwrap_or(bytes);
        }
        (req, bytes)
    }

    /// The per-key checks of an authenticated request of `bytes` by a key of `tenant`
    /// (`None`: the root's).
    ///
    /// # Errors
    /// The refusal.
    pub fn check_key(
        &self,
        access_key: &str,
        tenant: Option<&str>,
        bytes: u64,
    ) -> Result<(), Refusal> {
        let now = Instant::now();
        let s = &self.s;
        let (req_rate, byte_rate) = self.key_rates(tenant);
        let k = |b| (access_key.to_owned(), b);
        self.keys
            .charge(&k(false), 1, req_rate, s.burst, now)
            .and_then(|()| self.keys.charge(&k(true), bytes, byte_rate, s.burst, now))
            .map_err(|wait| {
                metrics::counter!(crate::metrics::RATE_LIMITED, "by" => "key").increment(1);
                Refusal::SlowDown(wait)
            })
    }

    fn locked(&self, ip: IpAddr, now: Instant) -> Option<Duration> {
        let f = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        f.get(&ip)?
            .locked_until
            .filter(|&u| u > now)
            .map(|u| u - now)
    }

    /// Counts a failed authentication from `ip`; true when it locked the IP out.
    pub fn auth_failed(&self, ip: IpAddr) -> bool {
        let ip = client(ip);
        let s = &self.s;
        if s.auth_failure_limit == 0 {
            return false;
        }
        let now = Instant::now();
        let mut f = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        if f.len() > PRUNE_ABOVE && f.len().is_multiple_of(1024) {
            f.retain(|_, e| {
                e.locked_until.is_some_and(|u| u > now)
                    || now - e.window_start < s.auth_failure_window
            });
        }
        let e = f.entry(ip).or_insert(Failures {
            window_start: now,
            count: 0,
            locked_until: None,
        });
        if now - e.window_start >= s.auth_failure_window {
            e.window_start = now;
            e.count = 0;
        }
        e.count += 1;
        if e.count >= s.auth_failure_limit && e.locked_until.is_none_or(|u| u <= now) {
            e.locked_until = Some(now + s.auth_lockout);
            e.count = 0;
            metrics::counter!(crate::metrics::AUTH_LOCKOUTS).increment(1);
            tracing::warn!(
                %ip,
                failures = s.auth_failure_limit,
                lockout_s = s.auth_lockout.as_secs(),
                "too many failed authentications: client IP locked out"
            );
            return true;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> LimitSettings {
        LimitSettings {
            key_requests: 10,
            key_bytes: 1000,
            ip_requests: 0,
            ip_bytes: 0,
            burst: Duration::from_secs(1),
            auth_failure_limit: 3,
            auth_failure_window: Duration::from_secs(60),
            auth_lockout: Duration::from_secs(300),
        }
    }

    #[test]
    fn a_burst_passes_then_the_rate_holds() {
        let b: Buckets<u8> = Buckets::new();
        let t0 = Instant::now();
        // 10/s with a 1 s burst: 11 pass at once (the burst plus the current slot).
        let passed = (0..20)
            .filter(|_| b.charge(&1, 1, 10, Duration::from_secs(1), t0).is_ok())
            .count();
        assert_eq!(passed, 11);
        let wait = b.charge(&1, 1, 10, Duration::from_secs(1), t0).unwrap_err();
        assert!(wait <= Duration::from_millis(100), "{wait:?}");
        // A tenth of a second later one more passes; another key is not affected.
        assert!(
            b.charge(
                &1,
                1,
                10,
                Duration::from_secs(1),
                t0 + Duration::from_millis(100)
            )
            .is_ok()
        );
        assert!(b.charge(&2, 1, 10, Duration::from_secs(1), t0).is_ok());
    }

    #[test]
    fn a_large_request_passes_once_and_the_next_waits_for_it() {
        let b: Buckets<u8> = Buckets::new();
        let t0 = Instant::now();
        // 1000 B/s: a 10,000-byte request is allowed, then 9 s (minus the burst) of wait.
        assert!(
            b.charge(&1, 10_000, 1000, Duration::from_secs(1), t0)
                .is_ok()
        );
        let wait = b
            .charge(&1, 1, 1000, Duration::from_secs(1), t0)
            .unwrap_err();
        assert_eq!(wait, Duration::from_secs(9));
        assert!(
            b.charge(
                &1,
                1,
                1000,
                Duration::from_secs(1),
                t0 + Duration::from_secs(9)
            )
            .is_ok()
        );
    }

    #[test]
    fn an_absurd_declared_length_costs_an_hour_at_most() {
        let b: Buckets<u8> = Buckets::new();
        let t0 = Instant::now();
        assert!(
            b.charge(&1, u64::MAX, 1, Duration::from_secs(1), t0)
                .is_ok()
        );
        let wait = b.charge(&1, 1, 1, Duration::from_secs(1), t0).unwrap_err();
        assert!(
            wait <= MAX_DEBT && wait >= MAX_DEBT - Duration::from_secs(1),
            "{wait:?}"
        );
    }

    #[test]
    fn the_larger_declared_length_is_charged() {
        let mut h = http::HeaderMap::new();
        h.insert(http::header::CONTENT_LENGTH, 5_000_000u64.into());
        h.insert("x-amz-decoded-content-length", 0u64.into());
        assert_eq!(declared_length(&h), 5_000_000);
    }

    #[test]
    fn ipv6_clients_are_one_per_64() {
        let l = Limits::new(settings());
        let a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        assert!(!l.auth_failed(a));
        assert!(!l.auth_failed(b));
        assert!(l.auth_failed(a), "three failures from one /64 lock it");
        assert!(l.check_ip(b, 0).is_err());
        assert!(l.check_ip("2001:db8:1:3::1".parse().unwrap(), 0).is_ok());
    }

    #[test]
    fn lockout_after_the_limit_only_for_that_ip() {
        let l = Limits::new(settings());
        let (bad, good): (IpAddr, IpAddr) =
            ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        assert!(!l.auth_failed(bad));
        assert!(!l.auth_failed(bad));
        assert!(l.check_ip(bad, 0).is_ok());
        assert!(l.auth_failed(bad), "the third failure locks");
        assert!(
            matches!(l.check_ip(bad, 0), Err(Refusal::LockedOut(d)) if d > Duration::from_secs(290))
        );
        assert!(l.check_ip(good, 0).is_ok());
    }

    #[test]
    fn keys_are_limited_separately_by_requests_and_bytes() {
        let l = Limits::new(settings());
        assert!(l.check_key("a", None, 5000).is_ok());
        assert!(matches!(
            l.check_key("a", None, 1),
            Err(Refusal::SlowDown(_))
        ));
        assert!(l.check_key("b", None, 1).is_ok());
        // A tenant with its own rates: unlimited bytes, the settings' request rate.
        l.set_tenant(
            "t",
            Some(s3dedup_storage::rates::RateLimits {
                requests_per_sec: None,
                bytes_per_sec: Some(0),
            }),
        );
        assert!(l.check_key("c", Some("t"), 1 << 30).is_ok());
        assert!(l.check_key("c", Some("t"), 1 << 30).is_ok());
        assert_eq!(l.key_rates(Some("t")), (10, 0));
        l.set_tenant("t", None);
        assert_eq!(l.key_rates(Some("t")), (10, 1000));
    }
}
