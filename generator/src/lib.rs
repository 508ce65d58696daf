//! plasmagen: one inventory → the fleet's NixOS flake, PKI, PXE/DNS/firewall artifacts and
//! operator scripts; plus the collector the nodes report to.
//!
//! Data flows one way: [`inventory::load`] → validated [`inventory::Inventory`] →
//! [`render`] → [`output`] (files).

pub mod collector;
pub mod command;
pub mod diag;
pub mod error;
pub mod hostkeys;
pub mod hwfiles;
pub mod inventory;
pub mod luks;
pub mod nixcheck;
pub mod output;
pub mod pki;
pub mod release;
pub mod render;
pub mod unlock;
pub mod validate;

pub use error::Error;
