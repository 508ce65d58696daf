//! The cluster's membership and its one change slot, driven by one task on tokio's clock.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard};

use plasma_wire::admin::{Member, Members};
use tokio::sync::{Notify, oneshot};
use tokio::time::Instant;

use super::{FleetSimOptions, FleetStats};

pub(super) struct Shared {
    pub(super) cluster: Mutex<Cluster>,
    /// Wakes the driver when a change starts or an election is injected.
    pub(super) wake: Notify,
    pub(super) opts: FleetSimOptions,
    pub(super) start: Instant,
}

impl Shared {
    pub(super) fn lock(&self) -> MutexGuard<'_, Cluster> {
        self.cluster.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// How an add ended, for the request waiting on it.
#[derive(Debug)]
pub(super) enum Applied {
    Answered(Member),
    /// Committed, but the connection dies before the answer (election, injected loss).
    ResponseLost,
}

enum Change {
    Add {
        member: Member,
        done: oneshot::Sender<Applied>,
    },
    Promote {
        id: String,
    },
}

struct InFlight {
    change: Change,
    done_at: Instant,
}

pub(super) struct Cluster {
    pub(super) urls: Vec<String>,
    members: Vec<Member>,
    index: HashMap<String, usize>,
    /// Learners in order of addition, with the time they have caught up.
    learners: VecDeque<(String, Instant)>,
    /// `None` while electing.
    pub(super) leader: Option<usize>,
    election: Option<(usize, Instant)>,
    in_flight: Option<InFlight>,
    applied_adds: u64,
    lose_every: u32,
    added: HashMap<String, u32>,
    /// The members list as JSON, rebuilt only after a change (thousands of readers).
    view_json: Option<axum::body::Bytes>,
    pub(super) stats: FleetStats,
    leader_hits: Vec<u64>,
}

impl Cluster {
    pub(super) fn new(opts: &FleetSimOptions, urls: &[String]) -> Cluster {
        let mut c = Cluster {
            urls: urls.to_vec(),
            members: Vec::new(),
            index: HashMap::new(),
            learners: VecDeque::new(),
            leader: Some(0),
            election: None,
            in_flight: None,
            applied_adds: 0,
            lose_every: opts.lose_every,
            added: HashMap::new(),
            view_json: None,
            stats: FleetStats {
                per_node: vec![0; urls.len()],
                ..FleetStats::default()
            },
            leader_hits: Vec::new(),
        };
        for i in 0..opts.founders {
            c.push(Member {
                id: super::FleetSim::founder_id(i),
                raft_addr: format!("10.0.200.{}:2380", 10 + i),
                status: "healthy".into(),
                role: "follower".into(),
            });
        }
        c
    }

    fn push(&mut self, m: Member) {
        self.index.insert(m.id.clone(), self.members.len());
        self.members.push(m);
        self.view_json = None;
    }

    pub(super) fn member(&self, id: &str) -> Option<&Member> {
        self.index.get(id).map(|&i| &self.members[i])
    }

    pub(super) fn view(&self) -> Members {
        let lead = self.leader.map(super::FleetSim::founder_id);
        let members = self
            .members
            .iter()
            .map(|m| {
                let mut m = m.clone();
                if Some(&m.id) == lead.as_ref() {
                    m.role = "leader".into();
                }
                m
            })
            .collect();
        Members { members }
    }

    pub(super) fn view_json(&mut self) -> axum::body::Bytes {
        if self.view_json.is_none() {
            let body = serde_json::to_vec(&self.view()).expect("members serialise");
            self.view_json = Some(body.into());
        }
        self.view_json.clone().expect("just set")
    }

    /// Counts a request reaching founding member `node` at `elapsed` seconds.
    pub(super) fn hit(&mut self, node: usize, elapsed_secs: usize) {
        self.stats.per_node[node] += 1;
        if self.leader == Some(node) {
            if self.leader_hits.len() <= elapsed_secs {
                self.leader_hits.resize(elapsed_secs + 1, 0);
            }
            self.leader_hits[elapsed_secs] += 1;
        }
    }

    pub(super) fn busy(&self) -> bool {
        self.in_flight.is_some()
    }

    /// Starts adding `member` (the caller checked: leader, idle, not a member).
    pub(super) fn begin_add(
        &mut self,
        member: Member,
        change_time: std::time::Duration,
    ) -> oneshot::Receiver<Applied> {
        let (done, rx) = oneshot::channel();
        self.in_flight = Some(InFlight {
            change: Change::Add { member, done },
            done_at: Instant::now() + change_time,
        });
        rx
    }

    pub(super) fn start_election(&mut self, next: usize, until: Instant) {
        self.stats.elections += 1;
        // What was in flight had been committed: it applies, its answer is lost.
        self.finish(true);
        self.leader = None;
        self.election = Some((next, until));
        self.view_json = None;
    }

    /// Applies the change in flight.
    fn finish(&mut self, lose_response: bool) {
        let Some(f) = self.in_flight.take() else {
            return;
        };
        match f.change {
            Change::Add { member, done } => {
                self.applied_adds += 1;
                self.stats.adds_applied += 1;
                let n = self.added.entry(member.id.clone()).or_insert(0);
                *n += 1;
                if *n == 2 {
                    self.stats.added_twice.push(member.id.clone());
                }
                self.learners.push_back((member.id.clone(), Instant::now()));
                self.push(member.clone());
                let every = self.lose_every;
                let lost = lose_response
                    || (every > 0 && self.applied_adds.is_multiple_of(u64::from(every)));
                if lost {
                    self.stats.responses_lost += 1;
                }
                let _ = done.send(if lost {
                    Applied::ResponseLost
                } else {
                    Applied::Answered(member)
                });
            }
            Change::Promote { id } => {
                self.stats.promotions += 1;
                if let Some(&i) = self.index.get(&id) {
                    self.members[i].status = "healthy".into();
                    self.members[i].role = "follower".into();
                    self.view_json = None;
                }
            }
        }
    }

    /// Moves time forward to `now`; returns when something is next due.
    fn advance(&mut self, now: Instant, opts: &FleetSimOptions) -> Option<Instant> {
        if let Some((next, until)) = self.election
            && now >= until
        {
            self.leader = Some(next);
            self.election = None;
            self.view_json = None;
        }
        if self.in_flight.as_ref().is_some_and(|f| now >= f.done_at) {
            self.finish(false);
        }
        if self.in_flight.is_none() && self.leader.is_some() {
            // Promotions first: a learner that has caught up should not wait behind the herd.
            if let Some(&(_, added)) = self.learners.front()
                && now >= added + opts.catch_up
            {
                let (id, _) = self.learners.pop_front().expect("front");
                self.in_flight = Some(InFlight {
                    change: Change::Promote { id },
                    done_at: now + opts.change_time,
                });
            }
        }
        let mut next = self.in_flight.as_ref().map(|f| f.done_at);
        // While electing nobody promotes: a caught-up learner is not due (the election's end is).
        if self.in_flight.is_none()
            && self.leader.is_some()
            && let Some(&(_, added)) = self.learners.front()
        {
            next = Some(added + opts.catch_up);
        }
        if let Some((_, until)) = self.election {
            next = Some(next.map_or(until, |n| n.min(until)));
        }
        next
    }

    pub(super) fn stats(&self, start: Instant, now: Instant) -> FleetStats {
        let mut s = self.stats.clone();
        let secs = (now - start).as_secs() as usize + 1;
        s.leader_per_sec = self.leader_hits.clone();
        s.leader_per_sec.resize(secs.max(s.leader_per_sec.len()), 0);
        s
    }
}

/// The leader's change loop: applies what is due, sleeps until the next thing is.
pub(super) async fn drive(shared: std::sync::Arc<Shared>) {
    loop {
        let next = shared.lock().advance(Instant::now(), &shared.opts);
        match next {
            Some(at) => {
                tokio::select! {
                    () = tokio::time::sleep_until(at) => {}
                    () = shared.wake.notified() => {}
                }
            }
            None => shared.wake.notified().await,
        }
    }
}
