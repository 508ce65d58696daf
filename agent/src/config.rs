//! Loading and validating `cluster-config.json` (written by `plasmagen generate`).
//!
//! Every error names the field (or file) that is wrong, so the operator can fix it from the
//! journal alone (runbook 8.3: "Wrong bootstrap flag: Check cluster-config.json").

use std::fmt;
use std::path::{Path, PathBuf};

use plasma_wire::{ClusterConfig, ServiceEndpoint};
use reqwest::Url;

/// The Raft services the agent knows how to join.
pub const SERVICES: [&str; 2] = ["chainfire", "flaredb"];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("Configuration file not found: {0}")]
    NotFound(PathBuf),
    #[error("cannot read {path}: {reason}")]
    Unreadable { path: PathBuf, reason: String },
    #[error("invalid {path}: {reason}")]
    Syntax { path: PathBuf, reason: String },
    #[error("invalid cluster-config.json: field `{field}`: {problem}")]
    Field { field: String, problem: String },
    #[error("invalid argument {arg}: {problem}")]
    Argument { arg: String, problem: String },
}

impl ConfigError {
    pub fn field(field: impl fmt::Display, problem: impl fmt::Display) -> ConfigError {
        ConfigError::Field {
            field: field.to_string(),
            problem: problem.to_string(),
        }
    }
}

/// Reads and parses the file; unknown or missing fields are reported by serde with their name.
pub fn load(path: &Path) -> Result<ClusterConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => ConfigError::NotFound(path.to_owned()),
        _ => ConfigError::Unreadable {
            path: path.to_owned(),
            reason: e.to_string(),
        },
    })?;
    // serde_path_to_error: "invalid type: string, expected a boolean" alone does not say where.
    let de = &mut serde_json::Deserializer::from_str(&text);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let at = e.path().to_string();
        let reason = if at.is_empty() || at == "." {
            e.inner().to_string()
        } else {
            format!("field `{at}`: {}", e.inner())
        };
        ConfigError::Syntax {
            path: path.to_owned(),
            reason,
        }
    })
}

/// Checks what every command needs: identity, TLS paths, collector, timeouts.
pub fn validate_common(cfg: &ClusterConfig) -> Result<(), ConfigError> {
    if cfg.node_id.trim().is_empty() {
        return Err(ConfigError::field("node_id", "must not be empty"));
    }
    if cfg.collector_url.is_empty() {
        return Err(ConfigError::field("collector_url", "must not be empty"));
    }
    parse_url("collector_url", &cfg.collector_url)?;
    for (field, value) in [
        ("tls.ca", &cfg.tls.ca),
        ("tls.cert", &cfg.tls.cert),
        ("tls.key", &cfg.tls.key),
    ] {
        if value.is_empty() {
            return Err(ConfigError::field(field, "must not be empty"));
        }
    }
    if cfg.health_timeout_secs == 0 {
        return Err(ConfigError::field(
            "health_timeout_secs",
            "must be at least 1",
        ));
    }
    if cfg.join_timeout_secs == 0 {
        return Err(ConfigError::field(
            "join_timeout_secs",
            "must be at least 1",
        ));
    }
    Ok(())
}

/// The validated view of one service for `join`.
#[derive(Debug, Clone)]
pub struct JoinPlan {
    pub service: String,
    pub local_url: Url,
    pub join_urls: Vec<Url>,
    pub raft_addr: String,
    /// Founding peers to wait for; non-empty exactly when bootstrapping.
    pub bootstrap_peers: Vec<String>,
}

/// Validates the config for `join --service <service>`.
pub fn join_plan(cfg: &ClusterConfig, service: &str) -> Result<JoinPlan, ConfigError> {
    validate_common(cfg)?;
    if !SERVICES.contains(&service) {
        return Err(ConfigError::Argument {
            arg: "--service".into(),
            problem: format!("unknown service {service:?} (expected one of {SERVICES:?})"),
        });
    }
    let prefix = format!("services.{service}");
    let ep: &ServiceEndpoint = cfg.services.get(service).ok_or_else(|| {
        ConfigError::field(
            &prefix,
            "missing (the generator writes one per Raft service)",
        )
    })?;
    let local_url = parse_url(format!("{prefix}.local_url"), &ep.local_url)?;
    let join_urls = ep
        .join_urls
        .iter()
        .enumerate()
        .map(|(i, u)| parse_url(format!("{prefix}.join_urls[{i}]"), u))
        .collect::<Result<Vec<_>, _>>()?;
    if ep.raft_addr.is_empty() {
        return Err(ConfigError::field(
            format!("{prefix}.raft_addr"),
            "must not be empty",
        ));
    }
    let (peers_field, peers) = match service {
        "chainfire" => ("initial_peers", &cfg.initial_peers),
        _ => ("flaredb_peers", &cfg.flaredb_peers),
    };
    if cfg.bootstrap {
        if peers.is_empty() {
            return Err(ConfigError::field(
                peers_field,
                "must list the founding members when \"bootstrap\": true",
            ));
        }
    } else if join_urls.is_empty() {
        return Err(ConfigError::field(
            format!("{prefix}.join_urls"),
            "must list at least one member when \"bootstrap\": false",
        ));
    }
    Ok(JoinPlan {
        service: service.to_owned(),
        local_url,
        join_urls,
        raft_addr: ep.raft_addr.clone(),
        bootstrap_peers: if cfg.bootstrap {
            peers.clone()
        } else {
            Vec::new()
        },
    })
}

/// Parses an admin-API or collector URL: http or https, with a host.
pub fn parse_url(field: impl fmt::Display, value: &str) -> Result<Url, ConfigError> {
    let url = Url::parse(value)
        .map_err(|e| ConfigError::field(&field, format!("{value:?} is not a URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(ConfigError::field(
            &field,
            format!("{value:?}: scheme must be http or https"),
        ));
    }
    if url.host().is_none() {
        return Err(ConfigError::field(&field, format!("{value:?}: no host")));
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> serde_json::Value {
        serde_json::json!({
            "node_id": "node04", "node_role": "worker", "bootstrap": false,
            "cluster_name": "prod-cluster", "leader_url": "https://node01.example.com:2379",
            "raft_addr": "10.0.200.20:2380",
            "services": {"chainfire": {"local_url": "https://localhost:2379",
                "join_urls": ["https://node01.example.com:2379"], "raft_addr": "10.0.200.20:2380"}},
            "tls": {"ca": "/s/ca.pem", "cert": "/s/c.pem", "key": "/s/k.pem"},
            "collector_url": "https://10.0.100.1:8443"
        })
    }

    fn plan(v: serde_json::Value, service: &str) -> Result<JoinPlan, ConfigError> {
        let cfg: ClusterConfig = serde_json::from_value(v).unwrap();
        join_plan(&cfg, service)
    }

    #[test]
    fn valid_join_config() {
        let p = plan(sample(), "chainfire").unwrap();
        assert_eq!(p.join_urls.len(), 1);
        assert!(p.bootstrap_peers.is_empty());
    }

    #[test]
    fn errors_name_the_field() {
        let mut v = sample();
        v["services"]["chainfire"]["join_urls"] = serde_json::json!(["https://a:1", "not a url"]);
        let e = plan(v, "chainfire").unwrap_err().to_string();
        assert!(e.contains("services.chainfire.join_urls[1]"), "{e}");

        let mut v = sample();
        v["services"]["chainfire"]["join_urls"] = serde_json::json!([]);
        let e = plan(v, "chainfire").unwrap_err().to_string();
        assert!(
            e.contains("services.chainfire.join_urls") && e.contains("bootstrap"),
            "{e}"
        );

        let e = plan(sample(), "flaredb").unwrap_err().to_string();
        assert!(e.contains("services.flaredb"), "{e}");

        let mut v = sample();
        v["bootstrap"] = true.into();
        let e = plan(v, "chainfire").unwrap_err().to_string();
        assert!(e.contains("initial_peers"), "{e}");

        let mut v = sample();
        v["collector_url"] = "ftp://x".into();
        let e = plan(v, "chainfire").unwrap_err().to_string();
        assert!(e.contains("collector_url"), "{e}");
    }

    #[test]
    fn missing_file_uses_runbook_message() {
        let e = load(Path::new("/nonexistent/cluster-config.json")).unwrap_err();
        assert!(
            e.to_string().starts_with("Configuration file not found"),
            "{e}"
        );
    }
}
