//! Reading cluster membership (`GET /admin/cluster/members`) and matching peers to members.

use plasma_wire::admin::{Member, Members};
use reqwest::Url;

use crate::http::{Http, Limit};

/// `base` + `path`, keeping any path prefix of the base URL.
pub fn endpoint(base: &Url, path: &str) -> Url {
    let mut u = base.clone();
    u.set_path(&format!("{}{}", base.path().trim_end_matches('/'), path));
    u.set_query(None);
    u.set_fragment(None);
    u
}

/// The admin-API root of an endpoint URL (`https://h:2379/admin/member/add` → `https://h:2379/`).
pub fn base_of(url: &Url) -> Url {
    let mut u = url.clone();
    u.set_path("/");
    u.set_query(None);
    u.set_fragment(None);
    u
}

/// The membership list of the member at `base`; the only body read with the large cap.
pub async fn fetch(http: &Http, base: &Url) -> Result<Members, String> {
    let url = endpoint(base, "/admin/cluster/members");
    let resp = http
        .get(&url, Limit::Members, None)
        .await
        .map_err(|e| format!("{url}: {e}"))?;
    if resp.status != 200 {
        return Err(format!(
            "{url}: HTTP {}: {}",
            resp.status,
            resp.body_snippet()
        ));
    }
    resp.json::<Members>()
        .ok_or_else(|| format!("{url}: malformed members body: {}", resp.body_snippet()))
}

/// The first answer among `bases`, in order; the error lists why each one failed.
pub async fn fetch_any(http: &Http, bases: &[Url]) -> Result<(Url, Members), String> {
    let mut errors = Vec::new();
    for b in bases {
        match fetch(http, b).await {
            Ok(m) => return Ok((b.clone(), m)),
            Err(e) => errors.push(e),
        }
    }
    Err(errors.join("; "))
}

/// Initial peers are written as `<fqdn>:<port>` while members carry an id and a Raft address
/// (often an IP): a peer matches a member by exact Raft address, by host == id, or by the
/// first DNS label of the host == id (`node01.example.com:2380` ↔ `node01`).
pub fn peer_matches(peer: &str, m: &Member) -> bool {
    if peer == m.raft_addr {
        return true;
    }
    let host = peer
        .rsplit_once(':')
        .map_or(peer, |(h, _)| h)
        .trim_matches(['[', ']']);
    host == m.id || host.split('.').next() == Some(m.id.as_str())
}

/// Bootstrap is complete when every founding peer is a member and there is a leader.
/// `Err` says what is still missing.
pub fn bootstrap_complete(peers: &[String], members: &Members) -> Result<(), String> {
    let missing: Vec<&str> = peers
        .iter()
        .filter(|p| !members.members.iter().any(|m| peer_matches(p, m)))
        .map(String::as_str)
        .collect();
    let leader = members.members.iter().any(|m| m.role == "leader");
    match (missing.is_empty(), leader) {
        (true, true) => Ok(()),
        (true, false) => Err("all initial peers are members but there is no leader yet".into()),
        (false, _) => Err(format!(
            "{}/{} initial peers are members (missing {}){}",
            peers.len() - missing.len(),
            peers.len(),
            missing.join(", "),
            if leader { "" } else { ", no leader yet" }
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(id: &str, raft: &str, role: &str) -> Member {
        Member {
            id: id.into(),
            raft_addr: raft.into(),
            status: "healthy".into(),
            role: role.into(),
        }
    }

    #[test]
    fn peers_match_by_addr_host_or_label() {
        assert!(peer_matches(
            "node01.example.com:2380",
            &m("node01", "10.0.200.10:2380", "leader")
        ));
        assert!(peer_matches(
            "10.0.200.10:2380",
            &m("x", "10.0.200.10:2380", "leader")
        ));
        assert!(peer_matches(
            "node02:2380",
            &m("node02", "10.0.200.11:2380", "follower")
        ));
        assert!(!peer_matches(
            "node010.example.com:2380",
            &m("node01", "10.0.200.10:2380", "leader")
        ));
    }

    #[test]
    fn bootstrap_needs_all_peers_and_a_leader() {
        let peers: Vec<String> = ["node01.example.com:2380", "node02.example.com:2380"]
            .map(String::from)
            .into();
        let two = Members {
            members: vec![m("node01", "a:1", "leader"), m("node02", "b:1", "follower")],
        };
        assert!(bootstrap_complete(&peers, &two).is_ok());
        let one = Members {
            members: vec![m("node01", "a:1", "candidate")],
        };
        let e = bootstrap_complete(&peers, &one).unwrap_err();
        assert!(
            e.contains("1/2") && e.contains("node02.example.com:2380") && e.contains("no leader"),
            "{e}"
        );
        let no_leader = Members {
            members: vec![
                m("node01", "a:1", "follower"),
                m("node02", "b:1", "follower"),
            ],
        };
        assert!(bootstrap_complete(&peers, &no_leader).is_err());
        assert_eq!(
            endpoint(&"https://h:1/api/".parse().unwrap(), "/health").as_str(),
            "https://h:1/api/health"
        );
    }
}
