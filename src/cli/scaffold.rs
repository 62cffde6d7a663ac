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
