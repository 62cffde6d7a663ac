//! `pve remove`: the steps of `workflow::remove`.

use crate::cli::remove::Args;
use crate::error::{exit, Result};
use crate::fsutil::RepoLock;
use crate::remote::proxmox::{self, Proxmox};
use crate::report::Prompt as _;
use crate::secrets::sops::Sops;
use crate::tofu::{self, Tofu};
use crate::ui::{self, TerminalPrompt};
use crate::workflow::remove::{self as wf, RemoveRun};
use crate::workflow::Journal;

use super::{Context, UsageError};

pub fn run(ctx: &Context, args: Args) -> Result<u8> {
    let loaded = ctx.load()?;
    let root = loaded.root_dir.clone();
    proxmox::check_name(&args.name)?;
    crate::workflow::gate::check_for_host(&loaded, wf::WORKFLOW, &args.name)?;
    let report = super::reporter(args.json);
    let report = report.as_ref();
    let (journal, removal) = match wf::load_journal(&root, &args.name)? {
        Some((j, r)) if args.resume => (j, r),
        Some(_) => {
            return Err(UsageError::RemoveRunStopped {
                name: args.name.clone(),
            }
            .into())
        }
        None if args.resume => {
            return Err(UsageError::NoStoppedRemoveRun {
                name: args.name.clone(),
            }
            .into())
        }
        None => {
            let removal = wf::preview(&loaded, &args.name)?;
            report.block(&removal.describe());
            if !args.yes {
                if !ui::interactive() {
                    return Err(UsageError::RemoveNotConfirmed {
                        name: args.name.clone(),
                    }
                    .into());
                }
                let typed = TerminalPrompt::new(false).ask(
                    "remove a host",
                    &format!("Type `{}` to remove it:", args.name),
                )?;
                if typed != args.name {
                    report.note("The name did not match; nothing was removed.");
                    return Ok(exit::FINDINGS);
                }
            }
            (Journal::new(&root, wf::WORKFLOW, &args.name), removal)
        }
    };
    let proxmox = match removal.vmid {
        Some(_) => Some(Proxmox::from_loaded(&loaded)?),
        None => None,
    };
    let tofu = match removal.vmid {
        Some(_) => Some(Tofu::new(
            tofu::workdir(&root)?,
            Some(crate::workflow::new::token()?),
        )),
        None => None,
    };
    let sops = removal.sops_yaml.as_ref().map(|p| Sops::new(root.join(p)));
    let lock = RepoLock::take(&root)?;
    let mut prompt = TerminalPrompt::new(args.yes);
    let mut journal = journal;
    let mut r = RemoveRun {
        root: root.clone(),
        hosts_path: loaded.file.path.clone(),
        removal,
        proxmox: proxmox.as_ref(),
        tofu,
        sops,
        lock,
        prompt: &mut prompt,
        report,
        notes: Vec::new(),
    };
    match wf::run(&mut r, &mut journal) {
        Ok(()) => {
            journal.finish()?;
            for n in &r.notes {
                report.note(&format!("note: {n}"));
            }
            if !args.json {
                super::print(&format!("Removed `{}`.\n", args.name))?;
            }
            Ok(exit::OK)
        }
        Err(e) => {
            if !journal
                .steps
                .values()
                .any(|s| s.status == crate::workflow::Status::Done)
            {
                // Nothing was done: leave nothing behind.
                journal.finish()?;
            } else {
                report.note(&format!(
                    "Stopped; what was done is kept. Continue with `pve remove {} --resume`.",
                    args.name
                ));
            }
            Err(e)
        }
    }
}
