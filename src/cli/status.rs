//! `pve status`: the fleet as it is on Proxmox, beside hosts.nix.

pub const EXAMPLES: &str = "\
Examples:
  pve status                     every host, every unknown VM in _proxmox.vmidRange
  pve status web db              two hosts
  pve status @web                the hosts tagged `web` (hosts.nix or Proxmox tags)
  pve status --watch             refresh every 5 seconds until Ctrl-C
  pve status --quick --watch 2   only /cluster/resources: no IP addresses, no on-boot
  pve status --json | jq '.[] | select(.drift != []) | .host'
  pve status >/dev/null || echo 'the fleet differs from hosts.nix'

The DRIFT column lists every value hosts.nix sets that differs on Proxmox
as `attribute hosts.nix→live` (name, node, cores, memory, disk, tags,
on-boot). Replaces the old `pve ps`, `ips`, `info` and `stats`.

Exit codes:
  0  the fleet is as hosts.nix says
  1  something drifted: a value differs, a VM is missing on Proxmox, or a VM in
     the managed VMID range is not in hosts.nix
  2  bad input: hosts.nix cannot be read, an unknown host or tag
  3  Proxmox cannot be reached or answered nonsense";

#[derive(Debug, clap::Args)]
#[command(after_help = EXAMPLES)]
pub struct Args {
    /// Hosts to show, by name, or `@TAG` for every host with that tag
    /// (default: all, and the unknown VMs in the managed range).
    #[arg(value_name = "HOST|@TAG")]
    pub targets: Vec<String>,
    /// A JSON array on stdout: one object per host and per unknown VM
    /// (fields in docs/status.md).
    #[arg(long)]
    pub json: bool,
    /// Refresh every SECS seconds (default 5) until Ctrl-C.
    #[arg(
        long,
        value_name = "SECS",
        num_args = 0..=1,
        default_missing_value = "5",
        value_parser = clap::value_parser!(u64).range(1..=3600)
    )]
    pub watch: Option<u64>,
    /// Only /cluster/resources (one round trip): no IP addresses and no
    /// on-boot drift.
    #[arg(long)]
    pub quick: bool,
    /// Seconds each VM's `qm config` and guest agent query may take; a VM
    /// whose agent does not answer in time shows `-`.
    #[arg(
        long,
        value_name = "SECS",
        default_value_t = 10,
        value_parser = clap::value_parser!(u64).range(1..=600)
    )]
    pub agent_timeout: u64,
}
