//! Measures what SSH connection reuse (ControlMaster) saves: the wall time
//! of 20 sequential Proxmox operations through the library API, once with
//! a new SSH connection per command and once with one shared connection,
//! in the same run, against the simulated Proxmox host of the tests
//! (real sshd on 127.0.0.1).
//!
//!     cargo run --release --example proxmox_reuse_bench
//!
//! Not a test: it prints numbers and asserts nothing about them.

#[path = "../tests/it/support/pvesim/mod.rs"]
mod support;
// What the simulated host finds its programs with (sshd).
#[path = "../tests/it/support/tools.rs"]
#[allow(dead_code)]
mod tools;
use tools::tool;

fn repo_root() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use pve_fleet::remote::proxmox::{Proxmox, Settings};
use pve_fleet::remote::ssh::{Endpoint, Options, Ssh};

const OPS: usize = 20;

fn settings(sim: &support::Sim, reuse: bool) -> Settings {
    let kh = sim.fleet.join("vms/proxmox_known_hosts");
    Settings {
        endpoint: Endpoint {
            host: "127.0.0.1".into(),
            user: support::user(),
            port: Some(sim.port),
            identity: Some(sim.client_key.clone()),
        },
        node: "pve".into(),
        bridge: "vmbr0".into(),
        known_hosts: vec![kh.clone(), sim.fleet.join("vms/known_hosts")],
        proxmox_known_hosts: kh,
        connect_timeout: Duration::from_secs(5),
        op_timeout: None,
        reuse,
        readonly: BTreeSet::new(),
    }
}

/// 20 read-only operations, the mix a workflow step performs.
fn workload(px: &Proxmox) -> Result<(), pve_fleet::error::AppError> {
    for i in 0..OPS {
        match i % 4 {
            0 => drop(px.list()?),
            1 => drop(px.status(111)?),
            2 => drop(px.config(111)?),
            _ => drop(px.existing_vmids()?),
        }
    }
    Ok(())
}

fn measure(sim: &support::Sim, reuse: bool) -> Duration {
    let px = Proxmox::connect(settings(sim, reuse)).expect("settings are valid");
    let start = Instant::now();
    workload(&px).expect("operations succeed");
    let t = start.elapsed();
    px.close();
    t
}

/// The transport alone: 20 × `true` on the host (no qm, no python).
fn measure_transport(sim: &support::Sim, reuse: bool) -> Duration {
    let st = settings(sim, reuse);
    let mut ssh = Ssh::new(
        st.endpoint.clone(),
        Options {
            known_hosts: st.known_hosts.clone(),
            connect_timeout: st.connect_timeout,
            reuse,
        },
    )
    .expect("valid");
    let start = Instant::now();
    for _ in 0..OPS {
        ssh.run(&["true".to_string()], Duration::from_secs(30))
            .expect("runs");
    }
    let t = start.elapsed();
    ssh.close();
    t
}

fn main() {
    let sim = support::Sim::start();
    sim.pin_host_key();
    // Warm up page caches (python, ssh) so neither side pays for them.
    let _ = measure(&sim, true);
    let mut rows = Vec::new();
    for round in 1..=3 {
        let without = measure(&sim, false);
        let with = measure(&sim, true);
        println!(
            "round {round}: {OPS} ops without reuse {:>7.1} ms, with reuse {:>7.1} ms, ratio {:.2}x",
            without.as_secs_f64() * 1e3,
            with.as_secs_f64() * 1e3,
            without.as_secs_f64() / with.as_secs_f64()
        );
        rows.push((without, with));
    }
    let (w, r): (Vec<_>, Vec<_>) = rows.into_iter().unzip();
    let med = |mut v: Vec<Duration>| {
        v.sort();
        v[v.len() / 2]
    };
    let (w, r) = (med(w), med(r));
    let tw = measure_transport(&sim, false);
    let tr = measure_transport(&sim, true);
    println!(
        "transport only (20 x `true`): without reuse {:.1} ms, with reuse {:.1} ms: {:.2}x",
        tw.as_secs_f64() * 1e3,
        tr.as_secs_f64() * 1e3,
        tw.as_secs_f64() / tr.as_secs_f64()
    );
    println!(
        "median: without reuse {:.1} ms ({:.1} ms/op), with reuse {:.1} ms ({:.1} ms/op): reuse is {:.2}x faster",
        w.as_secs_f64() * 1e3,
        w.as_secs_f64() * 1e3 / OPS as f64,
        r.as_secs_f64() * 1e3,
        r.as_secs_f64() * 1e3 / OPS as f64,
        w.as_secs_f64() / r.as_secs_f64()
    );
}
