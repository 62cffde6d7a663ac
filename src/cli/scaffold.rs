/// Create hosts/<NAME>/configuration.nix and home.nix for a new VM, from
/// the base for VMs cloned from the NixOS template (like hosts/vm_base).
///
/// Existing files are never overwritten. Add the host to hosts.nix yourself
/// (or use `pve new`, which does both).
#[derive(Debug, clap::Args)]
#[command(after_help = "Example:\n  pve scaffold web-1")]
pub struct Args {
    /// Host name (a DNS label: lowercase letters, digits, `-`).
    pub name: String,
}
