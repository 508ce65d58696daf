//! Bootstrap and join, following docs/admin-api.md.
//!
//! The join is safe to retry at every point: membership is read first (a node that is
//! already listed never POSTs), an add whose response was lost is retried and answered 409,
//! which counts as success, and redirects / leader hints are followed a bounded number of
//! times. Every failure that may be temporary moves to the next join URL with backoff until
//! the overall deadline.

use std::time::Duration;

use plasma_wire::admin::{AddMember, LeaderHint, Member, Members};
use reqwest::Url;
use serde::Deserialize;
use tokio::time::Instant;

use crate::backoff::Backoff;
use crate::config::JoinPlan;
use crate::http::{Http, Limit};
use crate::members::{self, base_of, endpoint};

/// Redirects + leader hints followed for one add attempt before trying the next join URL.
pub const MAX_HOPS: usize = 5;
const RETRY_FIRST: Duration = Duration::from_millis(500);
const RETRY_MAX: Duration = Duration::from_secs(10);
/// A `Retry-After` longer than this is taken as this: a confused server cannot park a node.
pub const RETRY_AFTER_MAX: Duration = Duration::from_secs(60);
const POLL_FIRST: Duration = Duration::from_millis(100);
const POLL_MAX: Duration = Duration::from_secs(2);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JoinError {
    /// Ran out of time; the message carries the last thing that went wrong.
    #[error("{0}")]
    Deadline(String),
    /// The cluster knows this node id with another Raft address: retrying cannot fix that.
    #[error("{0}")]
    Conflict(String),
}

/// Result of one add attempt through one join URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AddOutcome {
    /// 200/201, from the node at this admin-API root.
    Added(Url),
    /// 409 with a matching (or unspecified) Raft address.
    AlreadyMember(Url),
    Conflict(String),
    /// The node at `at` asked to be asked again later: the leader answering 503 with a hint
    /// that names itself ("reconfiguration in progress": Raft applies one membership change at
    /// a time; `leader` is true), or a 429 / 503 carrying `Retry-After` (`leader` false: maybe a
    /// proxy or a node in maintenance). The agent waits at least `retry_after`; it asks a busy
    /// leader again directly, anything else through the next join URL.
    Busy {
        at: Url,
        leader: bool,
        retry_after: Option<Duration>,
        message: String,
    },
    /// Connection error, timeout, 5xx, unexpected answer: try the next join URL.
    Retry(String),
}

/// 409 body: `{"error": "...", "member": {...}}`; `member` may be absent.
#[derive(Debug, Deserialize)]
struct ConflictBody {
    member: Option<Member>,
}

pub struct Joiner<'a> {
    pub http: &'a Http,
    pub node_id: &'a str,
    pub plan: &'a JoinPlan,
    pub deadline: Instant,
    pub timeout_secs: u64,
}

impl Joiner<'_> {
    /// Joining node: membership first, add if needed, then wait until listed healthy.
    pub async fn join(&self) -> Result<(), JoinError> {
        let me = AddMember {
            id: self.node_id.to_owned(),
            raft_addr: self.plan.raft_addr.clone(),
        };
        let mut preferred: Option<Url> = None;
        let listed = match members::fetch_any(self.http, &self.plan.join_urls).await {
            Ok((from, m)) => {
                let found = self.find_me(&m)?;
                if found.is_some() {
                    tracing::info!(from = %from, "node already listed in cluster membership; not adding");
                    preferred = Some(from);
                }
                found.is_some()
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot read cluster membership from any join URL");
                false
            }
        };
        if !listed {
            preferred = Some(self.add(&me).await?);
        }
        self.wait_listed_healthy(preferred).await
    }

    async fn add(&self, me: &AddMember) -> Result<Url, JoinError> {
        let urls = &self.plan.join_urls;
        let mut backoff = Backoff::with_jitter(RETRY_FIRST, RETRY_MAX);
        let mut last;
        // The leader that said "busy": asked directly next time, not through a follower.
        let mut busy_at: Option<Url> = None;
        let mut busy_answers = 0u64;
        let mut round = 0usize;
        loop {
            let base = match busy_at.take() {
                Some(u) => u,
                None => {
                    round += 1;
                    urls[(round - 1) % urls.len()].clone()
                }
            };
            let wait = match add_via(self.http, &base, me).await {
                AddOutcome::Added(at) => {
                    tracing::info!(at = %at, busy_answers, "member add accepted");
                    return Ok(at);
                }
                AddOutcome::AlreadyMember(at) => {
                    tracing::info!(at = %at, "already a member (409): an earlier add succeeded");
                    return Ok(at);
                }
                AddOutcome::Conflict(msg) => return Err(JoinError::Conflict(msg)),
                AddOutcome::Busy {
                    at,
                    leader,
                    retry_after,
                    message,
                } => {
                    let d = busy_delay(&mut backoff, retry_after);
                    busy_answers += 1;
                    // Expected in a herd: said once at info, then at debug.
                    if busy_answers == 1 {
                        tracing::info!(at = %at, retry_in_ms = d.as_millis() as u64, "{message}: asking again later");
                    } else {
                        tracing::debug!(at = %at, retry_in_ms = d.as_millis() as u64, "{message}");
                    }
                    last = message;
                    // Only a leader that named itself is asked again directly: a node that
                    // merely says "later" must not keep the agent from the other join URLs.
                    busy_at = leader.then_some(at);
                    Some(d)
                }
                AddOutcome::Retry(msg) => {
                    tracing::warn!(join_url = %base, error = %msg, "Join request failed: {msg}");
                    last = msg;
                    // Try the other join URLs at once; back off only after a full round.
                    round
                        .is_multiple_of(urls.len())
                        .then(|| backoff.next_delay())
                }
            };
            match wait {
                Some(d) if Instant::now() + d >= self.deadline => break,
                Some(d) => tokio::time::sleep(d).await,
                None if Instant::now() >= self.deadline => break,
                None => {}
            }
        }
        Err(JoinError::Deadline(format!(
            "Join request failed: {last} (gave up after {}s)",
            self.timeout_secs
        )))
    }

    async fn wait_listed_healthy(&self, preferred: Option<Url>) -> Result<(), JoinError> {
        let mut bases: Vec<Url> = preferred.into_iter().collect();
        bases.extend(
            self.plan
                .join_urls
                .iter()
                .filter(|u| !bases.contains(u))
                .cloned()
                .collect::<Vec<_>>(),
        );
        let mut backoff = Backoff::new(POLL_FIRST, POLL_MAX);
        let mut last_seen = String::new();
        loop {
            match members::fetch_any(self.http, &bases).await {
                Ok((_, m)) => match self.find_me(&m)? {
                    Some(me) if me.status == "healthy" => return Ok(()),
                    Some(me) => {
                        let seen =
                            format!("listed with status {:?}, role {:?}", me.status, me.role);
                        if seen != last_seen {
                            tracing::info!(seen = %seen, "waiting for this node to become healthy");
                        }
                        last_seen = seen;
                    }
                    None => last_seen = "not listed in membership".into(),
                },
                Err(e) => last_seen = e,
            }
            let delay = backoff.next_delay();
            if Instant::now() + delay >= self.deadline {
                return Err(JoinError::Deadline(format!(
                    "Node {} not healthy in cluster membership after {}s: last seen {last_seen}",
                    self.node_id, self.timeout_secs
                )));
            }
            tokio::time::sleep(delay).await;
        }
    }

    fn find_me<'m>(&self, m: &'m Members) -> Result<Option<&'m Member>, JoinError> {
        match m.members.iter().find(|x| x.id == self.node_id) {
            Some(x) if x.raft_addr != self.plan.raft_addr => Err(JoinError::Conflict(
                conflict_msg(self.node_id, &x.raft_addr, &self.plan.raft_addr),
            )),
            other => Ok(other),
        }
    }

    /// Founding member: wait until every initial peer is a member and a leader exists.
    pub async fn bootstrap(&self) -> Result<(), JoinError> {
        let mut bases = vec![self.plan.local_url.clone()];
        bases.extend(
            self.plan
                .join_urls
                .iter()
                .filter(|u| **u != self.plan.local_url)
                .cloned(),
        );
        let mut backoff = Backoff::new(Duration::from_millis(250), POLL_MAX);
        let mut last_seen = String::new();
        loop {
            let seen = match members::fetch_any(self.http, &bases).await {
                Ok((_, m)) => match members::bootstrap_complete(&self.plan.bootstrap_peers, &m) {
                    Ok(()) => return Ok(()),
                    Err(s) => s,
                },
                Err(e) => e,
            };
            if seen != last_seen {
                tracing::info!(seen = %seen, "waiting for initial peers");
            }
            last_seen = seen;
            let delay = backoff.next_delay();
            if Instant::now() + delay >= self.deadline {
                return Err(JoinError::Deadline(format!(
                    "Bootstrap not complete after {}s: {last_seen}",
                    self.timeout_secs
                )));
            }
            tokio::time::sleep(delay).await;
        }
    }
}

/// How long to wait after a busy answer: the backoff's next delay, and never less than the
/// server's `Retry-After` (capped at [`RETRY_AFTER_MAX`]) plus up to half of it again, so that
/// nodes told the same `Retry-After` at the same moment do not come back together.
pub fn busy_delay(backoff: &mut Backoff, retry_after: Option<Duration>) -> Duration {
    let own = backoff.next_delay();
    match retry_after {
        Some(ra) => {
            let ra = ra.min(RETRY_AFTER_MAX);
            own.max(ra + backoff.jitter(ra / 2))
        }
        None => own,
    }
}

fn conflict_msg(id: &str, theirs: &str, ours: &str) -> String {
    format!(
        "node id {id} is already a member with raft_addr {theirs}, but this node's is {ours}: \
         remove the stale member (DELETE /admin/member/{id}) or fix cluster-config.json"
    )
}

fn busy(target: &Url, resp: &crate::http::Response, leader: bool) -> AddOutcome {
    #[derive(Deserialize)]
    struct ErrorBody {
        error: String,
    }
    let why = resp
        .json::<ErrorBody>()
        .map_or_else(|| format!("HTTP {}", resp.status), |b| b.error);
    AddOutcome::Busy {
        at: base_of(target),
        leader,
        retry_after: resp.retry_after,
        message: format!("{target}: {why}"),
    }
}

/// One add attempt starting at `base`, following 307/308 and 503/421 leader hints.
pub async fn add_via(http: &Http, base: &Url, me: &AddMember) -> AddOutcome {
    let mut target = endpoint(base, "/admin/member/add");
    for _ in 0..=MAX_HOPS {
        let resp = match http.post_json(&target, me, Limit::Small, None).await {
            Ok(r) => r,
            Err(e) => return AddOutcome::Retry(format!("{target}: {e}")),
        };
        let next = match resp.status {
            200 | 201 => return AddOutcome::Added(base_of(&target)),
            409 => {
                let theirs = resp.json::<ConflictBody>().and_then(|b| b.member);
                return match theirs {
                    Some(m) if m.raft_addr != me.raft_addr => {
                        AddOutcome::Conflict(conflict_msg(&me.id, &m.raft_addr, &me.raft_addr))
                    }
                    _ => AddOutcome::AlreadyMember(base_of(&target)),
                };
            }
            307 | 308 => match resp.location.as_deref().map(|l| target.join(l)) {
                Some(Ok(u)) => u,
                _ => {
                    return AddOutcome::Retry(format!(
                        "{target}: HTTP {} without a usable Location",
                        resp.status
                    ));
                }
            },
            421 | 503 => match resp.json::<LeaderHint>().map(|h| Url::parse(&h.leader)) {
                // The leader names itself: it is busy, not elsewhere.
                Some(Ok(leader)) if base_of(&leader) == base_of(&target) => {
                    return busy(&target, &resp, true);
                }
                Some(Ok(leader)) => endpoint(&leader, "/admin/member/add"),
                _ if resp.retry_after.is_some() => return busy(&target, &resp, false),
                // A 503 without a hint is just "unavailable".
                _ => {
                    return AddOutcome::Retry(format!(
                        "{target}: HTTP {}: {}",
                        resp.status,
                        resp.body_snippet()
                    ));
                }
            },
            429 => return busy(&target, &resp, false),
            s => return AddOutcome::Retry(format!("{target}: HTTP {s}: {}", resp.body_snippet())),
        };
        if !matches!(next.scheme(), "http" | "https")
            || (target.scheme() == "https" && next.scheme() == "http")
        {
            return AddOutcome::Retry(format!("{target}: refusing redirect to {next}"));
        }
        tracing::info!(from = %target, to = %next, status = resp.status as u64, "following leader redirect");
        target = next;
    }
    AddOutcome::Retry(format!(
        "more than {MAX_HOPS} redirects / leader hints starting at {base}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busy_waits_at_least_retry_after_and_spreads_above_it() {
        let mut b = Backoff::with_jitter(RETRY_FIRST, RETRY_MAX);
        let waits: Vec<Duration> = (0..200)
            .map(|_| busy_delay(&mut b, Some(Duration::from_secs(3))))
            .collect();
        // Never sooner than Retry-After; at most half of it later, unless the own backoff
        // (here grown to its 10 s cap) is longer.
        assert!(waits.iter().all(|w| *w >= Duration::from_secs(3)));
        assert!(waits.iter().all(|w| *w <= RETRY_MAX));
        let early: Vec<&Duration> = waits[..2].iter().collect();
        assert!(
            early.iter().all(|w| **w <= Duration::from_millis(4_500)),
            "{early:?}"
        );
        let distinct: std::collections::BTreeSet<&Duration> = waits[..20].iter().collect();
        assert!(distinct.len() >= 10, "jittered: {waits:?}");
        // A Retry-After of an hour is taken as a minute.
        let long = busy_delay(&mut b, Some(Duration::from_secs(3_600)));
        assert!(
            long >= RETRY_AFTER_MAX && long <= RETRY_AFTER_MAX * 3 / 2,
            "{long:?}"
        );
        // Without one: the backoff alone.
        let mut plain = Backoff::with_jitter(RETRY_FIRST, RETRY_MAX);
        assert!(busy_delay(&mut plain, None) <= RETRY_FIRST);
    }
}
