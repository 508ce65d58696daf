//! Test fixtures shared by the cross-crate tests.
//!
//! - [`sim`]: the admin-API simulator (Chainfire / FlareDB) with fault injection.
//! - [`fleet_sim`]: the admin API at fleet scale (one change at a time, learners, elections).
//! - [`sink`]: a report collector stand-in, a closed port and a black hole.
//! - [`agent`]: runs `plasma-agent` commands in-process and captures their JSON logs.
//! - [`pki`]: test certificates from `plasma-pki`.
//! - [`e2e`]: the PXE end-to-end lab (network namespace, DHCP/TFTP/HTTP, collector, QEMU).
//! - [`nixopts`]: options our NixOS modules declare and options a Nix file sets (rnix).

pub mod agent;
pub mod e2e;
pub mod fleet_sim;
pub mod net;
pub mod nixopts;
pub mod pki;
pub mod sim;
pub mod sink;
