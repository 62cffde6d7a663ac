//! pve-fleet: run a NixOS fleet on Proxmox VE from one hosts.nix.
//!
//! Layers, top down:
//! - `cli`: the clap definitions of every command, and the dispatch;
//! - `app`: one module per command: loads the fleet, takes the repository
//!   lock once (`fsutil::RepoLock::take`), decides policy (ask, resume, roll
//!   back) and calls the library;
//! - `ui`: the terminal and `--json` side of `report` (the only place, with
//!   the binaries, that prints or reads stdin);
//! - the library: `fleet` reads hosts.nix, `check` validates it, `render`,
//!   `tofu`, `workflow`, `remote`, `secrets` and `keys` do the work; they
//!   return values and tell the user things through a `report::Reporter`,
//!   and ask through a `report::Prompt`, never on their own.

pub mod app;
pub mod check;
pub mod cli;
pub mod cores;
pub mod diag;
pub mod error;
pub mod fleet;
pub mod fsutil;
pub mod keys;
pub mod known_hosts;
pub mod plural;
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
