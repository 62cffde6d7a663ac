//! `pve deploy`: the journal decision (fresh, resume, refuse), the gate,
//! the selection, then `workflow::deploy`; prints the summary table (or one
//! JSON object per host).

use std::time::Duration;

use crate::cli::deploy::{ActionArg, Args};
use crate::error::{exit, Result};
use crate::workflow::deploy::{self, Action, DeployError, Outcome, Plan};
use crate::workflow::{self, Journal};

use super::Context;

fn action(a: ActionArg) -> Action {
    match a {
        ActionArg::Switch => Action::Switch,
        ActionArg::Boot => Action::Boot,
        ActionArg::Test => Action::Test,
        ActionArg::DryActivate => Action::DryActivate,
    }
}

pub fn run(ctx: &Context, args: Args) -> Result<u8> {
    let loaded = ctx.load()?;
    let root = loaded.root_dir.clone();
    let report = super::reporter(args.json);
    if args.parallel == 0 {
        return Err(DeployError::ZeroParallel.into());
    }
    if !crate::remote::ssh::valid_user(&args.user) {
        return Err(DeployError::InvalidUser { user: args.user }.into());
    }
    // Fresh or resumed: hosts.nix passes `pve check` first.
    workflow::gate::check(&loaded, deploy::WORKFLOW, |_| false)?;
    let existing = Journal::load(&root, deploy::WORKFLOW, deploy::RUN)?;
    let (journal, plan) = match (existing, args.resume) {
        (Some(j), true) => {
            let plan = Plan::load(&j)?;
            if !args.targets.is_empty() || args.all {
                report.note("note: resuming the recorded run; the hosts given now are ignored");
            }
            (j, plan)
        }
        (Some(j), false) if !args.fresh => {
            let hosts = Plan::load(&j)
                .map(|p| {
                    p.hosts()
                        .map(|t| t.name.clone())
                        .collect::<Vec<_>>()
                        .join(", ")
                })
                .unwrap_or_else(|_| "unknown hosts".into());
            return Err(DeployError::Unfinished {
                hosts,
                journal: Journal::path_for(std::path::Path::new(""), deploy::WORKFLOW, deploy::RUN),
            }
            .into());
        }
        (existing, resume) => {
            if let Some(old) = existing {
                if !args.dry_run {
                    old.finish()?;
                }
            } else if resume {
                report.note("note: no unfinished `pve deploy` run; starting a new one");
            }
            let waves = deploy::select(
                &loaded,
                &args.targets,
                args.all,
                args.include_readonly,
                &args.wave,
                report.as_ref(),
            )?;
            let plan = Plan {
                waves,
                action: action(args.action),
                stamp: deploy::utc_stamp(std::time::SystemTime::now()),
            };
            (Journal::new(&root, deploy::WORKFLOW, deploy::RUN), plan)
        }
    };
    let opts = deploy::Options {
        action: plan.action,
        parallel: args.parallel,
        snapshot: !args.no_snapshot,
        keep_snapshots: args.keep_snapshots.max(1),
        allow_no_snapshot: args.allow_no_snapshot,
        allow_degraded: args.allow_degraded,
        timeout: Duration::from_secs(args.timeout.max(1)),
        user: args.user,
        port: args.ssh_port,
        identity: args.identity,
    };
    if args.dry_run {
        return super::print(&plan_text(&plan, &opts));
    }
    let results = deploy::run(&loaded, &opts, &plan, journal, report.as_ref())?;
    if args.json {
        let mut text = String::new();
        for r in &results {
            if let Ok(line) = serde_json::to_string(r) {
                text.push_str(&line);
                text.push('\n');
            }
        }
        super::print(&text)?;
    } else {
        super::print(&deploy::summary_table(&results))?;
    }
    let failed: Vec<&str> = results
        .iter()
        .filter(|r| !matches!(r.result, Outcome::Deployed | Outcome::NotStarted))
        .map(|r| r.host.as_str())
        .collect();
    if failed.is_empty() {
        return Ok(exit::OK);
    }
    Err(DeployError::HostsFailed {
        failed: failed.len(),
        total: results.len(),
        not_started: results
            .iter()
            .filter(|r| r.result == Outcome::NotStarted)
            .count(),
        names: failed.join(", "),
    }
    .into())
}

/// `--dry-run`: what would happen, wave by wave.
fn plan_text(plan: &Plan, opts: &deploy::Options) -> String {
    let mut t = format!(
        "pve deploy would build {} with one `nix build`, then `switch-to-configuration {}` (at most {} at a time):\n",
        crate::plural::plural(plan.hosts().count(), "system"),
        plan.action.as_str(),
        opts.parallel
    );
    for (i, wave) in plan.waves.iter().enumerate() {
        t.push_str(&format!("wave {}:\n", i + 1));
        for h in wave {
            let snap = match h.vmid {
                _ if plan.action == Action::DryActivate => "no snapshot (dry-activate)".to_string(),
                Some(_) if h.readonly => "readonly: no snapshot".to_string(),
                Some(v) if opts.snapshot => format!(
                    "snapshot VM {v} as {}{}",
                    deploy::SNAPSHOT_PREFIX,
                    plan.stamp
                ),
                Some(_) => "no snapshot (--no-snapshot)".to_string(),
                None => "not a VM: no snapshot".to_string(),
            };
            let checks = match h.health_checks.len() {
                0 => String::new(),
                n => format!(", {}", crate::plural::plural(n, "health check")),
            };
            t.push_str(&format!("  {}  {snap}{checks}\n", h.name));
        }
    }
    t.push_str("nothing was changed (--dry-run)\n");
    t
}
