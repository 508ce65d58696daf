//! plasma-inventory: the fleet model. [`inventory::load`] reads the inventory file (TOML or
//! JSON, with spans), [`validate`] reports every error at once, [`diag`] formats them;
//! [`release`] knows the supported NixOS releases and [`ipxe`] renders the per-node iPXE
//! scripts that both the generator and the collector hand out.

pub mod diag;
pub mod enlist;
pub mod inventory;
pub mod ipxe;
pub mod release;
pub mod validate;
