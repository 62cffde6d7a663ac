//! `pve integrate`: flags converted once, then the workflow in
//! `workflow::integrate`.

use std::net::IpAddr;
use std::time::Duration;

use crate::cli::integrate::Args;
use crate::error::{exit, Result};
use crate::remote::proxmox::parse_vmid;
use crate::workflow::{self, integrate, Journal};

use super::{Context, UsageError};

fn positional(args: &Args) -> Result<(Option<IpAddr>, Option<u32>)> {
    let mut ip = None;
    let mut vmid = None;
    for v in [&args.ip, &args.vmid].into_iter().flatten() {
        if let Ok(a) = v.parse::<IpAddr>() {
            if ip.is_some() {
                return Err(UsageError::TwoIpAddresses { given: v.clone() }.into());
            }
            ip = Some(a);
        } else if v.chars().all(|c| c.is_ascii_digit()) && vmid.is_none() {
            vmid = Some(parse_vmid(v)?);
        } else {
            return Err(UsageError::NeitherIpNorVmid { value: v.clone() }.into());
        }
    }
    Ok((ip, vmid))
}

pub fn run(ctx: &Context, args: Args) -> Result<u8> {
    let loaded = ctx.load()?;
    let root = loaded.root_dir.clone();
    crate::remote::proxmox::check_name(&args.name)?;
    let steps = integrate::steps();
    let existing = Journal::load(&root, integrate::WORKFLOW, &args.name)?;
    if args.status {
        let mut text = String::new();
        if existing.is_none() {
            text.push_str(&format!(
                "no unfinished `pve integrate {}` run (a finished run leaves no journal)\n",
                args.name
            ));
        }
        for l in workflow::status_lines(&steps, existing.as_ref()) {
            text.push_str(&l);
            text.push('\n');
        }
        if let Some(j) = &existing {
            for (k, v) in &j.facts {
                let v = if k == "host_key" {
                    format!(
                        "{v} ({})",
                        crate::remote::ssh::fingerprint(v.split_whitespace().nth(1).unwrap_or(""))
                            .unwrap_or_default()
                    )
                } else {
                    v.clone()
                };
                text.push_str(&format!("    {k}: {v}\n"));
            }
        }
        return super::print(&text);
    }
    let (ip, vmid) = positional(&args)?;
    let report = super::reporter(args.json);
    let mut opts = integrate::Options::new(&args.name);
    opts.ip = ip;
    opts.vmid = vmid;
    opts.user = args.user;
    opts.port = args.ssh_port;
    opts.identity = args.identity;
    opts.accept_host_key = args.accept_host_key;
    opts.force_hardware_config = args.force_hardware_config;
    opts.skip_tailscale = args.skip_tailscale;
    opts.tailscale_tags = args.tailscale_tags;
    opts.tailscale_credentials = args.tailscale_credentials;
    opts.ssh_wait = Duration::from_secs(args.ssh_wait);
    if let Ok(ms) = std::env::var("PVE_INTEGRATE_WATCH_MS") {
        if let Ok(ms) = ms.trim().parse::<u64>() {
            opts.watch_interval = Duration::from_millis(ms.max(100));
        }
    }
    let mut journal = match (existing, args.resume) {
        (Some(j), true) => j,
        (Some(j), false) => {
            let at = steps
                .iter()
                .enumerate()
                .find(|(_, s)| !j.is_done(s.name))
                .map(|(i, s)| format!("step {} ({})", i + 1, s.title))
                .unwrap_or_else(|| "the end".into());
            return Err(UsageError::IntegrateStopped {
                name: args.name.clone(),
                at,
                journal: Journal::path_for(
                    std::path::Path::new(""),
                    integrate::WORKFLOW,
                    &args.name,
                ),
            }
            .into());
        }
        (None, resume) => {
            if resume {
                report.note(&format!(
                    "note: no unfinished run of `pve integrate {}`; starting from the first step",
                    args.name
                ));
            }
            Journal::new(&root, integrate::WORKFLOW, &args.name)
        }
    };
    let prompt: Box<dyn crate::report::Prompt> = if crate::ui::interactive() {
        Box::new(crate::ui::TerminalPrompt::new(false))
    } else {
        Box::new(crate::report::NoPrompt)
    };
    let mut c = integrate::Integrate::new(opts, loaded, report.as_ref(), prompt)?;
    // Fresh or resumed: hosts.nix passes `pve check` before any step.
    workflow::gate::check(&c.loaded, integrate::WORKFLOW, |_| false)?;
    workflow::run(&mut c, &steps, &mut journal, report.as_ref()).map_err(|e| {
        let help = e.help().unwrap_or_default();
        let more = format!(
            "{}{}after fixing it: `pve integrate {} --resume`",
            help,
            if help.is_empty() { "" } else { "; " },
            c.opts.name
        );
        e.with_help(more)
    })?;
    journal.finish()?;
    if !args.json {
        super::print(&c.summary)?;
    }
    Ok(exit::OK)
}
