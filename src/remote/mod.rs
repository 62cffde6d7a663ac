//! Talking to other machines: [`ssh`] (the OpenSSH client with pinned host
//! keys, timeouts and connection reuse) and [`proxmox`] (`qm` / `pvesh` /
//! `pvesm` on the Proxmox host, typed).

pub mod proxmox;
pub mod ssh;
