#[derive(Debug, clap::Args)]
#[command(after_help = "Example:\n  pve eval | jq '.sandbox.proxmox'")]
pub struct Args {}
