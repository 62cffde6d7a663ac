#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  pve check\n  pve check --strict --format json | jq '.[] | select(.code == \"duplicate-vmid\")'\n  pve host set web checks.allow '[ \"disko\" ]'    a VM installed with disko\n  pve check --show-allowed                       what the allows set aside"
)]
pub struct Args {
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Human)]
    pub format: Format,
    /// Fail on warnings too.
    #[arg(long)]
    pub strict: bool,
    /// Also list the findings a `checks.allow` set aside, one line each
    /// (`allowed: hosts.nix:12:5: error[template]: …`); JSON always has them.
    #[arg(long)]
    pub show_allowed: bool,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Format {
    /// rustc-style: file:line:col, the source line, a caret and help.
    Human,
    /// A JSON array, one object per finding.
    Json,
}
