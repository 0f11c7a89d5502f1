//! Retrying and polling, shared by every background loop (the queue worker, the chat sender):
//! what the service asks of running loops ([`RunState`]), exponential back-off with jitter
//! ([`Backoff`]), and the wait between rounds ([`run_rounds`]).

use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{watch, Notify};

/// What the service asks of running loops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunState {
    Running,
    /// Finish the current unit of work, start no more.
    Draining,
    /// Give the current unit of work back and stop.
    Abort,
}

/// Exponential back-off: `base · 2^(attempts-1)`, at most `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// Delay after the first failed attempt.
    pub base: Duration,
    /// Longest delay.
    pub max: Duration,
}

impl Backoff {
    /// Delay before attempt `attempts + 1`: `base · 2^(attempts-1)`, capped at `max`.
    pub fn delay(&self, attempts: u32) -> Duration {
        let exp = attempts.saturating_sub(1).min(30);
        self.base.saturating_mul(1u32 << exp).min(self.max)
    }

    /// [`Backoff::delay`] scaled into `[½, 1]` of itself by `unit` (a random number in
    /// `[0, 1)`, see [`random_unit`]), so retries spread out.
    pub fn jittered(&self, attempts: u32, unit: f64) -> Duration {
        self.delay(attempts)
            .mul_f64(0.5 + 0.5 * unit.clamp(0.0, 1.0))
    }
}

/// A random number in `[0, 1)` from the standard library's randomly keyed hasher.
pub fn random_unit() -> f64 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    h.write_u128(now.map_or(0, |d| d.as_millis()));
    (h.finish() >> 11) as f64 / (1u64 << 53) as f64
}

/// What one round of a loop asks for next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Start the next round at once (there may be more work).
    Now,
    /// Wait this long, or until woken, before the next round.
    After(Duration),
}

/// Runs `round` while `state` is [`RunState::Running`]. Between rounds it waits as long as the
/// round asked, less when `wake` is notified (new work) or `state` changes. The loop registers
/// for `wake` before each round, so work that arrives during a round is not missed.
pub async fn run_rounds<R, Fut>(
    mut state: watch::Receiver<RunState>,
    wake: Arc<Notify>,
    mut round: R,
) where
    R: FnMut() -> Fut,
    Fut: Future<Output = Next>,
{
    while *state.borrow() == RunState::Running {
        let woken = wake.notified();
        tokio::pin!(woken);
        woken.as_mut().enable();
        let pause = match round().await {
            Next::Now => continue,
            Next::After(pause) => pause,
        };
        tokio::select! {
            _ = &mut woken => {}
            _ = tokio::time::sleep(pause) => {}
            _ = state.changed() => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn worker_backoff() -> Backoff {
        Backoff {
            base: Duration::from_secs(10),
            max: Duration::from_secs(3600),
        }
    }

    #[test]
    fn backoff_doubles_with_jitter_and_is_capped() {
        let s = worker_backoff();
        assert_eq!(s.jittered(1, 0.999_999).as_secs(), 9);
        assert_eq!(s.jittered(1, 0.0), Duration::from_secs(5));
        assert_eq!(s.jittered(3, 0.0), Duration::from_secs(20));
        assert_eq!(s.jittered(3, 1.0), Duration::from_secs(40));
        assert_eq!(s.jittered(20, 1.0), Duration::from_secs(3600));
        assert_eq!(s.jittered(200, 0.0), Duration::from_secs(1800));
    }

    #[test]
    fn random_unit_stays_in_range_and_varies() {
        let samples: Vec<f64> = (0..64).map(|_| random_unit()).collect();
        assert!(samples.iter().all(|u| (0.0..1.0).contains(u)));
        let first = samples[0];
        assert!(samples.iter().any(|u| *u != first));
    }

    #[tokio::test]
    async fn rounds_stop_when_the_state_leaves_running() {
        let (tx, rx) = watch::channel(RunState::Running);
        let wake = Arc::new(Notify::new());
        let rounds = std::sync::atomic::AtomicU32::new(0);
        let counted = &rounds;
        let tx = &tx;
        tokio::time::timeout(
            Duration::from_secs(10),
            run_rounds(rx, wake, move || async move {
                let n = counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                if n == 0 {
                    return Next::Now;
                }
                // Asked to drain while the loop would wait an hour: it stops at once.
                tx.send(RunState::Draining).unwrap();
                Next::After(Duration::from_secs(3600))
            }),
        )
        .await
        .expect("the loop stops when asked");
        assert_eq!(rounds.load(std::sync::atomic::Ordering::SeqCst), 2);
    }
}
