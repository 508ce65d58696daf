//! Cluster PKI (see issue: CA and per-node certificates).
