//! `pve secrets`: the flags, one call into `secrets::adopt`, and the report
//! printed.

use std::path::PathBuf;

use clap::Subcommand;

use crate::error::Result;
use crate::secrets::adopt;

use super::Context;

/// Work on the fleet's sops configuration.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub command: SecretsCommand,
}

#[derive(Debug, Subcommand)]
pub enum SecretsCommand {
    Adopt(AdoptArgs),
}

/// Write the `_sops` block into hosts.nix that renders an existing
/// .sops.yaml again.
///
/// Recipients that are a host's key stay that host; the others become
/// `_sops.admins`, named after their YAML anchors (`&admin_alice` →
/// `alice`, else admin1, admin2 …). A recipient whose anchor names a host
/// (`&host_old`, a host's name) but is no current host's key is reported
/// and dropped, so no removed machine keeps access (`--keep-unknown`
/// keeps it as an admin). Each rule becomes one of `_sops.rules`; a last
/// rule for every file that gives every admin and host becomes pve's
/// catch-all. Before writing, pve renders .sops.yaml from the result and
/// checks every rule and every secret file gets the same recipients. An
/// existing `_sops` is never replaced (exit 2).
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  \
pve secrets adopt --dry-run\n  \
pve secrets adopt secrets/.sops.yaml --json | jq .differences")]
pub struct AdoptArgs {
    /// The .sops.yaml (secrets/.sops.yaml or .sops.yaml of the fleet;
    /// default: whichever exists).
    pub file: Option<PathBuf>,
    /// Keep recipients that look like an old host key, as admins.
    #[arg(long)]
    pub keep_unknown: bool,
    /// Print the `_sops` block and the differences; write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Print the report as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

pub fn run(ctx: &Context, args: Args) -> Result<u8> {
    match args.command {
        SecretsCommand::Adopt(a) => run_adopt(ctx, a),
    }
}

fn run_adopt(ctx: &Context, a: AdoptArgs) -> Result<u8> {
    let opts = adopt::Options {
        keep_unknown: a.keep_unknown,
        dry_run: a.dry_run,
    };
    let report = adopt::adopt(&ctx.hosts_path()?, a.file.as_deref(), opts)?;
    if a.json {
        let mut text = serde_json::to_string_pretty(&report).unwrap_or_else(|_| "{}".into());
        text.push('\n');
        return super::print(&text);
    }
    let mut text = String::new();
    let verb = if report.written {
        "added to"
    } else {
        "would add to"
    };
    text.push_str(&format!("{verb} {}:\n\n", report.hosts_nix.display()));
    for line in report.block.lines() {
        text.push_str(&format!("  {line}\n"));
    }
    if !report.differences.is_empty() {
        text.push_str(&format!(
            "\n{} difference(s) from {}:\n",
            report.differences.len(),
            report.file.display()
        ));
        for d in &report.differences {
            text.push_str(&format!("  - [{}] {}\n", d.kind, d.message));
        }
    }
    text.push_str(&format!(
        "\nchecked: `pve render sops` gives each of the {} rule(s) and each of the {} secret file(s) the same recipients ({} of {} recipients kept, {} admin(s))\n",
        report.rules,
        report.files_checked,
        report.recipients_kept,
        report.recipients,
        report.admins.len()
    ));
    if report.written {
        text.push_str("next: `pve render sops`, then `pve check`\n");
    }
    // Anchor names and regexes come from the file: escaped.
    super::print(&crate::diag::escape_text(&text, 1 << 20))
}
