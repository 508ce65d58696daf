//! plasmagen: one inventory → the fleet's NixOS flake, PKI, PXE/DNS/firewall artifacts and
//! operator scripts; plus the collector the nodes report to.
//!
//! Data flows one way: [`inventory::load`] → validated [`inventory::Inventory`] →
//! [`render`] → [`output`] (files).

pub mod command;
pub mod error;
pub mod hostkeys;
pub mod hwfiles;
pub mod luks;
pub mod nixcheck;
pub mod output;
pub mod pki;
pub mod render;
pub mod unlock;

pub use error::Error;
pub use plasma_collector as collector;
pub use plasma_inventory::{diag, inventory, release, validate};
