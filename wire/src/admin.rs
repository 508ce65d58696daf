//! The Chainfire / FlareDB admin API as the agent uses it. Contract: docs/admin-api.md.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub id: String,
    pub raft_addr: String,
    /// `healthy`, `joining`, `unhealthy`, ...
    pub status: String,
    /// `leader`, `follower`, `learner`, ...
    pub role: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Members {
    pub members: Vec<Member>,
}

/// Body of `POST /admin/member/add`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddMember {
    pub id: String,
    pub raft_addr: String,
}

/// Body of a 503 / 421 answer from a node that is not the leader.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaderHint {
    pub leader: String,
}
