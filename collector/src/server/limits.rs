//! The bounds connections live under: a cap per listener, the timeouts, the `/v1/events`
//! subscriber slots, and the open-files limit the caps must fit in. (The cap itself is
//! enforced by the `limiter` module.)

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// File descriptors kept out of the connection caps: the database (and its WAL and shared
/// memory), listeners, epoll, signal pipes, stdio, inventory reads.
pub const FD_RESERVE: u64 = 64;
/// Connections a listener may accept while the ones they replace are still closing: with the
/// cap, the most files one listener ever holds.
pub const ACCEPT_AHEAD: usize = 16;

/// The bounds of both listeners (`plasmagen collector` flags).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Connections held at once by the API listener.
    pub max_connections: usize,
    /// Connections held at once by the boot listener: its own cap, so a flood of one listener
    /// never takes the other's slots.
    pub max_boot_connections: usize,
    /// A TLS handshake must finish within this.
    pub handshake_timeout: Duration,
    /// A connection with no request being handled and nothing written for this long is
    /// closed: before the first request, between requests (HTTP/1 and HTTP/2), a reader that
    /// stopped reading.
    pub idle_timeout: Duration,
    /// A request (its body read and the handler's answer) must finish within this.
    pub request_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 512,
            max_boot_connections: 256,
            handshake_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(30),
            request_timeout: Duration::from_secs(30),
        }
    }
}

impl Limits {
    /// The API listener's share.
    pub fn api(&self) -> ListenerLimits {
        self.listener("api", self.max_connections)
    }

    /// The boot listener's share.
    pub fn boot(&self) -> ListenerLimits {
        self.listener("boot", self.max_boot_connections)
    }

    fn listener(&self, name: &'static str, cap: usize) -> ListenerLimits {
        ListenerLimits {
            name,
            max_connections: cap.max(1),
            handshake_timeout: self.handshake_timeout,
            idle_timeout: self.idle_timeout,
            request_timeout: self.request_timeout,
        }
    }

    /// Caps that fit `open_files` (the soft RLIMIT_NOFILE; `None`: unlimited) with
    /// [`FD_RESERVE`] and each listener's [`ACCEPT_AHEAD`] left over, scaled down in proportion when they do not. `boot`: whether
    /// the boot listener runs. Returns the limits and whether they were scaled.
    pub fn fit(&self, open_files: Option<u64>, boot: bool) -> (Limits, bool) {
        let boot_cap = if boot { self.max_boot_connections } else { 0 };
        let wanted = (self.max_connections + boot_cap) as u64;
        let listeners = if boot { 2 } else { 1 };
        let overhead = FD_RESERVE + listeners * ACCEPT_AHEAD as u64;
        let Some(avail) = open_files.map(|n| n.saturating_sub(overhead)) else {
            return (self.clone(), false);
        };
        if wanted <= avail {
            return (self.clone(), false);
        }
        let scale = |cap: usize| ((cap as u64 * avail / wanted) as usize).max(1);
        let mut fitted = self.clone();
        fitted.max_connections = scale(self.max_connections);
        if boot {
            fitted.max_boot_connections = scale(self.max_boot_connections);
        }
        (fitted, true)
    }
}

/// What one listener enforces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerLimits {
    /// `api` or `boot`, for the logs.
    pub name: &'static str,
    pub max_connections: usize,
    pub handshake_timeout: Duration,
    pub idle_timeout: Duration,
    pub request_timeout: Duration,
}

impl Default for ListenerLimits {
    fn default() -> Self {
        Limits::default().api()
    }
}

/// Live `/v1/events` subscriptions: at most `max` at once. Clones share the slots, so one
/// collector (one [`crate::Config`]) has one set.
#[derive(Debug, Clone)]
pub struct StreamSlots {
    max: usize,
    free: Arc<Semaphore>,
}

impl StreamSlots {
    pub fn new(max: usize) -> StreamSlots {
        StreamSlots {
            max,
            free: Arc::new(Semaphore::new(max)),
        }
    }

    pub fn max(&self) -> usize {
        self.max
    }

    /// Subscriptions open now.
    pub fn in_use(&self) -> usize {
        self.max - self.free.available_permits()
    }

    /// A slot held as long as the permit lives (the stream owns it: a closed connection drops
    /// the stream and frees it), or `None` when all are taken.
    pub fn take(&self) -> Option<OwnedSemaphorePermit> {
        self.free.clone().try_acquire_owned().ok()
    }
}

impl Default for StreamSlots {
    fn default() -> Self {
        StreamSlots::new(64)
    }
}

/// RLIMIT_NOFILE before and after [`raise_open_files`]; `None` is unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenFiles {
    pub before: Option<u64>,
    pub soft: Option<u64>,
    pub hard: Option<u64>,
}

/// Raise the soft open-files limit to the hard one: systemd starts services with a soft limit
/// of 1,024 whatever the hard limit allows, and every connection is a file.
pub fn raise_open_files() -> Result<OpenFiles, std::io::Error> {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let was = getrlimit(Resource::Nofile);
    if was.current != was.maximum {
        setrlimit(
            Resource::Nofile,
            Rlimit {
                current: was.maximum,
                maximum: was.maximum,
            },
        )?;
    }
    let now = getrlimit(Resource::Nofile);
    Ok(OpenFiles {
        before: was.current,
        soft: now.current,
        hard: now.maximum,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_fit_the_open_files_limit() {
        let l = Limits::default();
        assert_eq!(l.fit(Some(1024), true), (l.clone(), false));
        assert_eq!(l.fit(None, true), (l.clone(), false));
        // 480 - 64 reserved - 2 x 16 accepted ahead = 384 = half of 512 + 256.
        let (f, scaled) = l.fit(Some(480), true);
        assert!(scaled);
        assert_eq!((f.max_connections, f.max_boot_connections), (256, 128));
        let (f, _) = l.fit(Some(336), false);
        assert_eq!(f.max_connections, 256);
    }

    #[test]
    fn stream_slots_come_back_when_dropped() {
        let s = StreamSlots::new(2);
        let a = s.take().expect("1");
        let _b = s.clone().take().expect("2: clones share");
        assert!(s.take().is_none());
        assert_eq!(s.in_use(), 2);
        drop(a);
        assert!(s.take().is_some());
    }
}
