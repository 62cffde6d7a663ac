//! The integration tests of pve-fleet, in one binary: one module per area
//! (each was its own test binary before; one binary links the crate once).
//! The helpers they share live in `support`; the stand-in programs and
//! fixtures they run stay in tests/stand-ins, tests/fixtures and tests/data.
//!
//! The tests run in parallel threads of this one process, so none of them
//! may change what the process shares: its environment, its current
//! folder, fixed ports or temp names. A test that must change the
//! environment (a library call that reads it) runs in its own process
//! (`rusty_fork_test!`).
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

mod support;

mod check_advice;
mod check_allow;
mod check_rules;
mod check_uniqueness;
mod cli_help;
mod cluster;
mod cluster_ops;
mod cluster_routing;
mod completions;
mod cycle_e2e;
mod deploy;
mod discovery;
mod edit_cases;
mod edit_cli;
mod edit_props;
mod eval_bad_input;
mod eval_differential;
mod fast_parse;
mod first_hour;
mod flake_nix;
mod golden;
mod hostile_input;
mod integrate_e2e;
mod integrate_resume;
mod keys_to_age;
mod new_remove_new;
mod new_remove_remove;
mod parallel_read;
mod placement;
mod proxmox_ops;
mod proxmox_sim_fidelity;
mod render_cli;
mod render_layout;
mod render_sops;
mod render_tofu;
mod secrets_adopt;
mod secrets_health;
mod secrets_real_sops;
mod secrets_sops;
mod status;
mod tailscale_api;
mod tailscale_up;
mod tofu_cli;
mod tofu_lock;
mod tools_table;
mod trust_boundaries;
mod trust_proxmox_keys;
mod vm_flags;
mod vmid_race;
