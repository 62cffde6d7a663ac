use std::path::PathBuf;

#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  pve render\n  pve render --check          # in CI: fail when a committed file is stale\n  pve render tofu --out-dir /tmp/out\n  pve render --compact        # config.tf.json one VM per line, at any size"
)]
pub struct Args {
    /// Write (or compare) the files under DIR instead of the fleet root.
    #[arg(long, value_name = "DIR")]
    pub out_dir: Option<PathBuf>,
    /// Write nothing; exit 1 with a diff when a file on disk is stale.
    #[arg(long)]
    pub check: bool,
    /// Write config.tf.json one VM per line (the outer levels indented),
    /// as it is anyway above 500 VMs; e.g. `pve render tofu --compact`.
    #[arg(long)]
    pub compact: bool,
    /// Which output to render.
    #[arg(value_enum, default_value_t = What::All)]
    pub what: What,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum What {
    /// vms/tofu/config.tf.json
    Tofu,
    /// .sops.yaml (path from `_sops.path`, default secrets/.sops.yaml)
    Sops,
    /// vms/known_hosts
    KnownHosts,
    /// every file (.sops.yaml only when hosts.nix has `_sops`)
    All,
}
