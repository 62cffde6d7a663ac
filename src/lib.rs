//! pve-fleet: run a NixOS fleet on Proxmox VE from one hosts.nix.
//!
//! `fleet` reads hosts.nix; `check` validates it; the CLI in `cli` only
//! parses arguments and dispatches.

pub mod check;
pub mod cli;
pub mod diag;
pub mod error;
pub mod fleet;
pub mod fsutil;
pub mod keys;
pub mod known_hosts;
pub mod remote;
pub mod render;
pub mod report;
pub mod runner;
pub mod secrets;
pub mod shell;
pub mod tailscale;
pub mod tofu;
pub mod ui;
pub mod workflow;
