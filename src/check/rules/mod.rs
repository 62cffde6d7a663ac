//! The rules of `pve check`, one per file. Each file's doc says what the
//! rule catches, why, and shows an example; its tests run it on a small
//! fleet. The registry, which runs them and in which order, is
//! `check::RULES`.

pub mod configuration;
pub mod disk;
pub mod duplicate_vmid;
pub mod duplicates;
pub mod files;
pub mod host_name;
pub mod node;
pub mod proxmox_config;
pub mod proxmox_value;
pub mod public_key;
pub mod render;
pub mod required;
pub mod resources;
pub mod template;
pub mod template_node;
pub mod typos;
pub mod unique_keys;
pub mod unique_names;
pub mod vmid_range;
