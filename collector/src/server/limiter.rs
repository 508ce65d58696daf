//! A listener's connections, at most its cap: when all places are taken, an idle connection
//! makes room for the new one (see [`ConnLimiter::admit`]); each connection's bookkeeping
//! ([`ConnState`]) tells the limiter and the idle watchdog whether closing it loses anything.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

use super::limits::ACCEPT_AHEAD;

/// Connection-cap events are logged at most this often (a flood would flood the log too).
const LOG_EVERY: Duration = Duration::from_secs(10);
/// A connection that answered a request is not closed for a newer one sooner than this after.
const SETTLE: Duration = Duration::from_secs(1);
/// A connection accepted less than this ago is most likely a client in its handshake, about to
/// send its request: it makes room only when no other idle connection can (the storm bench
/// lost such requests to newer connections).
const YOUNG: Duration = Duration::from_millis(250);
/// [`ConnState::activity`]: the limiter gave the connection's place to a newer one.
const EVICTED: u32 = 1 << 31;

/// One connection as its listener's [`ConnLimiter`] sees it.
#[derive(Debug)]
pub struct ConnState {
    epoch: Instant,
    /// Milliseconds after `epoch` of the last sign of use: accepted, a request started or
    /// ended, a response frame produced. What the client sends does not count: bytes that
    /// are not requests (pings, empty TLS records, a trickled header) never keep it open.
    last: AtomicU64,
    /// Requests whose answer is not ready yet (bounded by the request timeout).
    handling: AtomicU32,
    /// Requests being handled plus response bodies not sent to the end (an event stream lasts
    /// as long as its page), and the [`EVICTED`] bit: one word, so that the limiter taking the
    /// connection and a request starting on it cannot both succeed.
    activity: AtomicU32,
    /// Whether it ever sent a request: a connection that never did goes first when room is
    /// needed, so a flood of silent connections only replaces itself.
    served: AtomicBool,
    /// Set by the limiter when this connection is closed to make room for a new one.
    evicted: Notify,
}

impl ConnState {
    fn new(epoch: Instant) -> ConnState {
        let s = ConnState {
            epoch,
            last: AtomicU64::new(0),
            handling: AtomicU32::new(0),
            activity: AtomicU32::new(0),
            served: AtomicBool::new(false),
            evicted: Notify::new(),
        };
        s.touch();
        s
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// Record a sign of use.
    pub fn touch(&self) {
        self.last.store(self.now_ms(), Ordering::Relaxed);
    }

    /// Resolves once the limiter took this connection's slot for a newer one.
    pub async fn evicted(&self) {
        self.evicted.notified().await
    }

    /// When the connection will be idle for the idle timeout unless it is used before.
    pub fn idle_deadline(&self, idle: Duration) -> Instant {
        self.epoch + Duration::from_millis(self.last.load(Ordering::Relaxed)) + idle
    }

    /// A request's answer is not ready yet.
    pub fn is_handling(&self) -> bool {
        self.handling.load(Ordering::Acquire) > 0
    }

    /// No request being handled and no sign of use for `idle`.
    pub fn is_idle(&self, idle: Duration) -> bool {
        !self.is_handling() && Instant::now() >= self.idle_deadline(idle)
    }

    /// Closing it loses nothing: neither handling a request nor sending a response, and if it
    /// ever answered one, that was [`SETTLE`] ago (closing a socket with unread input resets
    /// it, which could destroy an answer the client has not read yet).
    fn evictable(&self, now_ms: u64, settle_ms: u64) -> bool {
        self.activity.load(Ordering::Acquire) == 0
            && (!self.served.load(Ordering::Relaxed)
                || now_ms.saturating_sub(self.last.load(Ordering::Relaxed)) >= settle_ms)
    }

    /// Accepted less than `young_ms` ago and never used.
    fn is_young(&self, now_ms: u64, young_ms: u64) -> bool {
        !self.served.load(Ordering::Relaxed)
            && now_ms.saturating_sub(self.last.load(Ordering::Relaxed)) < young_ms
    }

    /// Mark it evicted if it is still doing nothing; false when a request just started.
    fn try_evict(&self) -> bool {
        self.activity
            .compare_exchange(0, EVICTED, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// A request arrived; the guard marks its answer ready when dropped. `None` when the
    /// connection was just given up for a newer one: the request must not be handled (the
    /// connection is about to close; the client sees it reset and retries).
    pub fn start_request(self: &Arc<Self>) -> Option<Busy> {
        self.activity
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |v| {
                (v & EVICTED == 0).then_some(v + 1)
            })
            .ok()?;
        self.handling.fetch_add(1, Ordering::AcqRel);
        self.served.store(true, Ordering::Relaxed);
        self.touch();
        Some(Busy {
            state: self.clone(),
            body: false,
        })
    }

    /// A response body is being sent; the guard marks it done when dropped. Called while its
    /// request still counts, so the connection cannot have been evicted.
    pub fn start_body(self: &Arc<Self>) -> Busy {
        self.activity.fetch_add(1, Ordering::AcqRel);
        Busy {
            state: self.clone(),
            body: true,
        }
    }
}

/// A request being handled or a body being sent (see [`ConnState::start_request`]).
#[derive(Debug)]
pub struct Busy {
    state: Arc<ConnState>,
    body: bool,
}

impl Busy {
    /// The connection's bookkeeping.
    pub fn state(&self) -> &ConnState {
        &self.state
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.state.touch();
        if !self.body {
            self.state.handling.fetch_sub(1, Ordering::AcqRel);
        }
        self.state.activity.fetch_sub(1, Ordering::AcqRel);
    }
}

#[derive(Debug, Default)]
struct Counts {
    evicted: u64,
    refused: u64,
    last_log: Option<Instant>,
}

/// The connections one listener holds, at most `cap`.
#[derive(Debug)]
pub struct ConnLimiter {
    name: &'static str,
    cap: usize,
    epoch: Instant,
    next_id: AtomicU64,
    conns: Mutex<HashMap<u64, Arc<ConnState>>>,
    /// One permit per open connection, `cap + ACCEPT_AHEAD` in all: a connection that lost
    /// its place keeps its permit until its task has closed it.
    files: Arc<Semaphore>,
    /// [`SETTLE`] in milliseconds.
    settle_ms: u64,
    counts: Mutex<Counts>,
}

/// A connection's place in its limiter; dropping it frees the place.
#[derive(Debug)]
pub struct Slot {
    limiter: Arc<ConnLimiter>,
    id: u64,
    state: Arc<ConnState>,
    _file: OwnedSemaphorePermit,
}

impl Slot {
    pub fn state(&self) -> &Arc<ConnState> {
        &self.state
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        // An evicted connection's entry is already gone (its place went to a newer one).
        self.limiter.lock().remove(&self.id);
    }
}

impl ConnLimiter {
    pub fn new(name: &'static str, cap: usize) -> Arc<ConnLimiter> {
        Self::with_settle(name, cap, SETTLE)
    }

    fn with_settle(name: &'static str, cap: usize, settle: Duration) -> Arc<ConnLimiter> {
        Arc::new(ConnLimiter {
            name,
            cap: cap.max(1),
            epoch: Instant::now(),
            next_id: AtomicU64::new(0),
            conns: Mutex::new(HashMap::new()),
            files: Arc::new(Semaphore::new(cap.max(1) + ACCEPT_AHEAD)),
            settle_ms: settle.as_millis() as u64,
            counts: Mutex::new(Counts::default()),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<ConnState>>> {
        self.conns.lock().unwrap_or_else(|e| e.into_inner())
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().len()
    }

    /// Wait until one more connection may be open (see [`ACCEPT_AHEAD`]); take it before
    /// accepting and hand it to [`ConnLimiter::admit`].
    pub async fn file(&self) -> Option<OwnedSemaphorePermit> {
        self.files.clone().acquire_owned().await.ok()
    }

    /// A place for a connection just accepted. When all `cap` are taken, an idle one (no
    /// request being handled, no response being sent, none answered in the last [`SETTLE`])
    /// is told to close and its place goes to the new one: the oldest of those that never sent
    /// a request, else the one idle the longest. A flood of idle connections thus only ever
    /// replaces itself. `None` when none is idle: the caller closes the new one at once.
    pub fn admit(self: &Arc<Self>, file: OwnedSemaphorePermit) -> Option<Slot> {
        let state = Arc::new(ConnState::new(self.epoch));
        let now_ms = state.now_ms();
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut conns = self.lock();
        let mut evicted = false;
        if conns.len() >= self.cap {
            // A candidate may start a request while we look: then it is not taken, try the next.
            let young_ms = YOUNG.as_millis() as u64;
            let victim = loop {
                let candidate = conns
                    .iter()
                    .filter(|(_, c)| c.evictable(now_ms, self.settle_ms))
                    .min_by_key(|(_, c)| {
                        (
                            c.is_young(now_ms, young_ms),
                            c.served.load(Ordering::Relaxed),
                            c.last.load(Ordering::Relaxed),
                        )
                    })
                    .map(|(id, c)| (*id, c.clone()));
                match candidate {
                    Some((id, c)) if c.try_evict() => break Some(id),
                    Some(_) => continue,
                    None => break None,
                }
            };
            match victim.and_then(|v| conns.remove(&v)) {
                Some(v) => {
                    v.evicted.notify_one();
                    evicted = true;
                }
                None => {
                    drop(conns);
                    self.note(false);
                    return None;
                }
            }
        }
        conns.insert(id, state.clone());
        drop(conns);
        if evicted {
            self.note(true);
        }
        Some(Slot {
            limiter: self.clone(),
            id,
            state,
            _file: file,
        })
    }

    fn note(&self, evicted: bool) {
        let mut c = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        if evicted {
            c.evicted += 1;
        } else {
            c.refused += 1;
        }
        if c.last_log.is_none_or(|t| t.elapsed() >= LOG_EVERY) {
            tracing::warn!(
                listener = self.name,
                cap = self.cap,
                evicted_idle = c.evicted,
                refused_busy = c.refused,
                "connection cap reached: idle connections closed for new ones, new ones closed when none was idle"
            );
            c.last_log = Some(Instant::now());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SETTLE_IN_TESTS: Duration = Duration::from_millis(50);

    fn admit(l: &Arc<ConnLimiter>) -> Option<Slot> {
        let file = l.files.clone().try_acquire_owned().expect("a file permit");
        l.admit(file)
    }

    #[test]
    fn the_idle_longest_makes_room_and_busy_ones_never_do() {
        let l = ConnLimiter::with_settle("test", 2, SETTLE_IN_TESTS);
        let a = admit(&l).expect("first");
        std::thread::sleep(Duration::from_millis(5));
        let b = admit(&l).expect("second");
        // Full: `a`, idle the longest, goes.
        let c = admit(&l).expect("third replaces the oldest idle");
        assert_eq!(l.len(), 2);
        assert!(!l.lock().contains_key(&a.id));
        assert!(
            a.state().start_request().is_none(),
            "a request arriving on it now is not handled"
        );
        drop(a); // its task ends later: the newer connection's place stays
        assert_eq!(l.len(), 2);
        // Both busy: the next one is refused.
        let busy_b = b.state().start_request().expect("not evicted");
        let _busy_c = c.state().start_body();
        assert!(admit(&l).is_none());
        drop(busy_b);
        assert!(admit(&l).is_none(), "b answered just now");
        std::thread::sleep(SETTLE_IN_TESTS);
        assert!(admit(&l).is_some(), "b is idle again");
    }

    #[test]
    fn silent_connections_make_room_before_ones_that_sent_requests() {
        let l = ConnLimiter::with_settle("test", 2, SETTLE_IN_TESTS);
        let used = admit(&l).expect("first");
        drop(used.state().start_request()); // answered, then idle the longest
        std::thread::sleep(SETTLE_IN_TESTS);
        let silent = admit(&l).expect("second");
        std::thread::sleep(YOUNG);
        let _new = admit(&l).expect("third");
        assert!(
            l.lock().contains_key(&used.id),
            "the client that sent a request stays"
        );
        assert!(
            !l.lock().contains_key(&silent.id),
            "the silent one made room"
        );
    }

    #[test]
    fn a_connection_accepted_just_now_makes_room_last() {
        let l = ConnLimiter::with_settle("test", 2, SETTLE_IN_TESTS);
        let used = admit(&l).expect("first");
        drop(used.state().start_request());
        std::thread::sleep(SETTLE_IN_TESTS);
        // Probably in its handshake: the idle client goes instead.
        let handshaking = admit(&l).expect("second");
        std::thread::sleep(Duration::from_millis(5));
        let third = admit(&l).expect("third");
        assert!(!l.lock().contains_key(&used.id));
        assert!(l.lock().contains_key(&handshaking.id));
        // Only young ones left: the oldest of them still makes room (a flood of new
        // connections replaces itself).
        let _fourth = admit(&l).expect("fourth");
        assert!(!l.lock().contains_key(&handshaking.id));
        assert!(l.lock().contains_key(&third.id));
    }
}
