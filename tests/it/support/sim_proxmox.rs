//! The library's `Proxmox` connection to a simulated host, with every
//! setting written out (the environment is the test process's, shared by
//! every test, so nothing is read from it).

use std::collections::BTreeSet;
use std::time::Duration;

use pve_fleet::remote::proxmox::{Proxmox, Settings};
use pve_fleet::remote::ssh::Endpoint;

use super::pvesim::{user, Sim};

/// Connects to `sim` as node `pve`, pinning its host key first; the VMs
/// in `readonly` refuse every changing operation.
pub fn connect(sim: &Sim, readonly: BTreeSet<u32>) -> Proxmox {
    sim.pin_host_key();
    let kh = sim.fleet.join("vms/proxmox_known_hosts");
    Proxmox::connect(Settings {
        endpoint: Endpoint {
            host: "127.0.0.1".into(),
            user: user(),
            port: Some(sim.port),
            identity: Some(sim.client_key.clone()),
        },
        node: "pve".into(),
        bridge: "vmbr0".into(),
        known_hosts: vec![kh.clone()],
        proxmox_known_hosts: kh,
        connect_timeout: Duration::from_secs(10),
        op_timeout: None,
        reuse: true,
        readonly,
    })
    .expect("connect to the simulated Proxmox host")
}
