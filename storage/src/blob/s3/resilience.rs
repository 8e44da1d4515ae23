//! How every backend request runs (see the parent module's docs): a deadline per
//! attempt, retries with jittered exponential backoff, a consecutive-failure circuit
//! breaker, and the classification of SDK errors into transient and final. The breaker
//! reads time through [`Clock`], so its tests step time instead of sleeping.

use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};

use crate::error::{Error, Result};
use crate::metrics::{
    BACKEND_CIRCUIT_OPEN, BACKEND_FAST_FAILS, BACKEND_REQUESTS, BACKEND_RETRIES, BACKEND_SECONDS,
};

/// Where the breaker reads the time.
pub(super) trait Clock: Send + Sync {
    fn now(&self) -> Instant;
}

/// The real clock.
pub(super) struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }
}

/// How one attempt failed.
pub(super) enum Failure {
    /// Worth another attempt (and counts against the breaker).
    Transient {
        outcome: &'static str,
        detail: String,
    },
    /// The backend answered; retrying would not change the answer.
    Final { outcome: &'static str, error: Error },
}

impl Failure {
    /// The backend answered with something unusable; retrying will not help.
    pub(super) fn rejected(detail: impl Into<crate::error::BoxError>) -> Self {
        Failure::Final {
            outcome: "rejected",
            error: Error::backend(detail),
        }
    }

    pub(super) fn transient(outcome: &'static str, detail: impl fmt::Display) -> Self {
        Failure::Transient {
            outcome,
            detail: detail.to_string(),
        }
    }
}

/// Classifies an SDK error. `name` is the blob, for not-found errors.
pub(super) fn classify<E>(e: SdkError<E, HttpResponse>, name: &str) -> Failure
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let detail = || format!("{}", aws_sdk_s3::error::DisplayErrorContext(&e));
    match &e {
        SdkError::TimeoutError(_) => Failure::transient("timeout", detail()),
        SdkError::DispatchFailure(d) if d.is_timeout() => Failure::transient("timeout", detail()),
        SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            Failure::transient("network", detail())
        }
        SdkError::ServiceError(ctx) => match ctx.raw().status().as_u16() {
            404 => Failure::Final {
                outcome: "not_found",
                error: Error::BlobNotFound(name.to_owned()),
            },
            // The range starts at or past the end; the caller fills in the numbers.
            416 => Failure::Final {
                outcome: "ok",
                error: Error::Truncated {
                    name: name.to_owned(),
                    offset: 0,
                    wanted: 0,
                    got: 0,
                },
            },
            429 | 503 => Failure::transient("throttled", detail()),
            408 | 500..=599 => Failure::transient("server_error", detail()),
            _ => Failure::rejected(detail()),
        },
        _ => Failure::rejected(detail()),
    }
}

/// The attempt rules every request goes through.
pub(super) struct Resilience {
    /// Deadline of one attempt, response body included.
    pub(super) attempt_timeout: Duration,
    pub(super) max_attempts: u32,
    pub(super) backoff_base: Duration,
    pub(super) backoff_max: Duration,
    pub(super) breaker: Breaker,
}

impl Resilience {
    /// Runs `attempt` under the deadline, retry and breaker rules (module docs).
    pub(super) async fn call<T, F, Fut>(&self, op: &'static str, attempt: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, Failure>>,
    {
        self.call_with(op, self.max_attempts, self.attempt_timeout, attempt)
            .await
    }

    /// [`Resilience::call`] with its own attempt count and deadline.
    pub(super) async fn call_with<T, F, Fut>(
        &self,
        op: &'static str,
        max_attempts: u32,
        deadline: Duration,
        mut attempt: F,
    ) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, Failure>>,
    {
        let mut last = String::new();
        let mut throttled = false;
        for n in 1..=max_attempts {
            if n > 1 {
                metrics::counter!(BACKEND_RETRIES, "op" => op).increment(1);
                tokio::time::sleep(self.backoff(n - 1)).await;
            }
            if let Err(e) = self.breaker.admit() {
                metrics::counter!(BACKEND_FAST_FAILS).increment(1);
                return Err(e);
            }
            let started = Instant::now();
            let result = match tokio::time::timeout(deadline, attempt()).await {
                Ok(r) => r,
                Err(_) => Err(Failure::transient(
                    "timeout",
                    format!("no complete answer within {deadline:?}"),
                )),
            };
            metrics::histogram!(BACKEND_SECONDS, "op" => op)
                .record(started.elapsed().as_secs_f64());
            let outcome = match &result {
                Ok(_) => "ok",
                Err(Failure::Final { outcome, .. } | Failure::Transient { outcome, .. }) => outcome,
            };
            metrics::counter!(BACKEND_REQUESTS, "op" => op, "outcome" => outcome).increment(1);
            match result {
                Ok(v) => {
                    self.breaker.success();
                    return Ok(v);
                }
                // The backend answered: it is up, whatever it said.
                Err(Failure::Final { error, .. }) => {
                    self.breaker.success();
                    return Err(error);
                }
                Err(Failure::Transient { outcome, detail }) => {
                    self.breaker.failure();
                    tracing::debug!(op, attempt = n, outcome, %detail, "backend attempt failed");
                    throttled = outcome == "throttled";
                    last = detail;
                }
            }
        }
        // The caller logs the error once, where it becomes an S3 error (or its own).
        tracing::debug!(op, attempts = max_attempts, error = %last, "backend request failed");
        Err(Error::Unavailable {
            detail: format!("{op} failed after {max_attempts} attempts: {last}"),
            slow_down: throttled,
        })
    }

    /// Backoff before retry `n` (1-based): base·2ⁿ⁻¹ capped, jittered to 50–100 %.
    fn backoff(&self, n: u32) -> Duration {
        let full = self
            .backoff_base
            .saturating_mul(1 << (n - 1).min(16))
            .min(self.backoff_max);
        full.mul_f64(0.5 + rand::random::<f64>() / 2.0)
    }
}

/// Consecutive-failure circuit breaker (module docs).
pub(super) struct Breaker {
    threshold: u32,
    cooldown: Duration,
    state: Mutex<BreakerState>,
    clock: Arc<dyn Clock>,
}

#[derive(Default)]
struct BreakerState {
    consecutive: u32,
    open_until: Option<Instant>,
}

impl Breaker {
    pub(super) fn new(threshold: u32, cooldown: Duration, clock: Arc<dyn Clock>) -> Self {
        Breaker {
            threshold: threshold.max(1),
            cooldown,
            state: Mutex::new(BreakerState::default()),
            clock,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BreakerState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// `Err` while open. After the cooldown, requests pass (half-open): one more
    /// failure reopens it at once, a success closes it.
    pub(super) fn admit(&self) -> Result<()> {
        let st = self.lock();
        match st.open_until {
            Some(until) if self.clock.now() < until => Err(Error::Unavailable {
                detail: format!(
                    "backing store circuit open after {} consecutive failures; retrying in {:?}",
                    st.consecutive,
                    until - self.clock.now()
                ),
                slow_down: false,
            }),
            _ => Ok(()),
        }
    }

    pub(super) fn success(&self) {
        let mut st = self.lock();
        if st.open_until.take().is_some() {
            tracing::info!("backing store answering again; circuit closed");
            metrics::gauge!(BACKEND_CIRCUIT_OPEN).set(0.0);
        }
        st.consecutive = 0;
    }

    pub(super) fn failure(&self) {
        let mut st = self.lock();
        st.consecutive = st.consecutive.saturating_add(1);
        let reopen = match st.open_until {
            // Half-open (cooldown over) or closed at the threshold.
            Some(until) => self.clock.now() >= until,
            None => st.consecutive >= self.threshold,
        };
        if reopen {
            if st.open_until.is_none() {
                tracing::warn!(
                    failures = st.consecutive,
                    cooldown = ?self.cooldown,
                    "backing store failing; circuit open"
                );
            }
            st.open_until = Some(self.clock.now() + self.cooldown);
            metrics::gauge!(BACKEND_CIRCUIT_OPEN).set(1.0);
        }
    }

    pub(super) fn is_open(&self) -> Option<String> {
        let st = self.lock();
        st.open_until
            .filter(|u| self.clock.now() < *u)
            .map(|_| format!("circuit open after {} consecutive failures", st.consecutive))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A clock the test moves by hand.
    struct ManualClock(Mutex<Instant>);

    impl ManualClock {
        fn advance(&self, d: Duration) {
            let mut t = self.0.lock().unwrap();
            *t += d;
        }
    }

    impl Clock for ManualClock {
        fn now(&self) -> Instant {
            *self.0.lock().unwrap()
        }
    }

    #[test]
    fn breaker_opens_at_the_threshold_and_closes_on_success() {
        let clock = Arc::new(ManualClock(Mutex::new(Instant::now())));
        let b = Breaker::new(3, Duration::from_secs(5), clock.clone());
        b.failure();
        b.failure();
        assert!(b.admit().is_ok());
        b.failure();
        assert!(matches!(b.admit(), Err(Error::Unavailable { .. })));
        assert!(b.is_open().is_some());
        clock.advance(Duration::from_millis(4999));
        assert!(b.admit().is_err(), "still open within the cooldown");
        clock.advance(Duration::from_millis(1));
        // Half-open: requests pass; one more failure reopens at once.
        assert!(b.admit().is_ok());
        b.failure();
        assert!(b.admit().is_err());
        clock.advance(Duration::from_secs(5));
        assert!(b.admit().is_ok());
        b.success();
        assert!(b.is_open().is_none());
        b.failure();
        assert!(
            b.admit().is_ok(),
            "one failure after closing does not reopen"
        );
    }

    #[test]
    fn backoff_grows_jittered_and_capped() {
        let r = Resilience {
            attempt_timeout: Duration::from_secs(60),
            max_attempts: 4,
            backoff_base: Duration::from_millis(100),
            backoff_max: Duration::from_millis(1000),
            breaker: Breaker::new(1, Duration::ZERO, Arc::new(SystemClock)),
        };
        for (n, full) in [
            (1, 100),
            (2, 200),
            (3, 400),
            (4, 800),
            (5, 1000),
            (30, 1000),
        ] {
            let d = r.backoff(n).as_millis();
            assert!(d >= full / 2 && d <= full, "retry {n}: {d} ms");
        }
    }
}
