//! `pve secrets adopt`: one call into `secrets::adopt`, and its report
//! shown (human or `--json`).

use crate::cli::secrets::{AdoptArgs, Args, SecretsCommand};
use crate::error::Result;
use crate::secrets::adopt;

use super::Context;

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
            "\n{} from {}:\n",
            crate::plural::plural(report.differences.len(), "difference"),
            report.file.display()
        ));
        for d in &report.differences {
            text.push_str(&format!("  - [{}] {}\n", d.kind, d.message));
        }
    }
    text.push_str(&format!(
        "\nchecked: `pve render sops` gives each of the {} and each of the {} the same recipients ({} of {} kept, {})\n",
        crate::plural::plural(report.rules, "rule"),
        crate::plural::plural(report.files_checked, "secret file"),
        report.recipients_kept,
        crate::plural::plural(report.recipients, "recipient"),
        crate::plural::plural(report.admins.len(), "admin")
    ));
    if report.written {
        text.push_str("next: `pve render sops`, then `pve check`\n");
    }
    // Anchor names and regexes come from the file: escaped.
    super::print(&crate::diag::escape_text(&text, 1 << 20))
}
