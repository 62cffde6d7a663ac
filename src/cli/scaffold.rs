/// Create hosts/<NAME>/ for a host: its configuration.nix and home.nix.
///
/// A VM's folder is a copy of the fleet's hosts/vm_base/ (every file in it,
/// with each `@name@` replaced by the host's name; lines starting with
/// `# vm_base:` are left out), or of the built-in base for VMs cloned from
/// the NixOS template when the fleet has none. A host that hosts.nix lists
/// without `proxmox` (a laptop or desktop), or --machine, gets the built-in
/// base for a machine that is not a VM: systemd-boot, no guest agent.
///
/// Existing files are never overwritten. Add the host to hosts.nix yourself
/// (or use `pve new`, which does both).
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  pve scaffold web-1\n  pve scaffold laptop --machine")]
pub struct Args {
    /// Host name (a DNS label: lowercase letters, digits, `-`).
    pub name: String,
    /// A machine that is not a VM (laptop, desktop): no GRUB `nodev`, no
    /// QEMU guest agent.
    #[arg(long)]
    pub machine: bool,
}
