//! `pve remove`: the steps of `workflow::remove`.

use crate::cli::remove::Args;
use crate::error::{exit, AppError, Result};
use crate::fleet::edit;
use crate::fsutil::RepoLock;
use crate::remote::proxmox::{self, Proxmox};
use crate::secrets::sops::Sops;
use crate::tofu::{self, Tofu};
use crate::workflow::remove::{self as wf, RemoveRun};
use crate::workflow::{Journal, Progress};

use super::new::{ask_line, interactive, Prompt};
use super::Context;

pub fn run(ctx: &Context, args: Args) -> Result<u8> {
    let loaded = ctx.load()?;
    let root = loaded.root_dir.clone();
    proxmox::check_name(&args.name)?;
    crate::workflow::gate::check_for_host(&loaded, wf::WORKFLOW, &args.name)?;
    let progress = if args.json {
        Progress::Json
    } else {
        Progress::Human
    };
    let (journal, removal) = match wf::load_journal(&root, &args.name)? {
        Some((j, r)) if args.resume => (j, r),
        Some(_) => {
            return Err(AppError::input(format!(
                "a run of `pve remove {}` stopped before it finished",
                args.name
            ))
            .with_help(format!(
                "continue it with `pve remove {} --resume`",
                args.name
            )))
        }
        None if args.resume => {
            return Err(AppError::input(format!(
                "there is no stopped `pve remove` run for `{}`",
                args.name
            )))
        }
        None => {
            let removal = wf::preview(&loaded, &args.name)?;
            eprint!("{}", removal.describe());
            if !args.yes {
                if !interactive() {
                    return Err(AppError::input(format!(
                        "not removing `{}` without confirmation: there is no terminal to ask on",
                        args.name
                    ))
                    .with_help("pass --yes to remove it from a script"));
                }
                let typed = ask_line(&format!("Type `{}` to remove it: ", args.name))?;
                if typed != args.name {
                    eprintln!("The name did not match; nothing was removed.");
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
    let lock = RepoLock::acquire(&root, edit::LOCK_WAIT)?;
    let mut prompt = Prompt { yes: args.yes };
    let mut journal = journal;
    let mut r = RemoveRun {
        root: root.clone(),
        hosts_path: loaded.file.path.clone(),
        removal,
        proxmox: proxmox.as_ref(),
        tofu,
        sops,
        lock,
        confirm: &mut prompt,
        notes: Vec::new(),
    };
    match wf::run(&mut r, &mut journal, progress) {
        Ok(()) => {
            journal.finish()?;
            for n in &r.notes {
                eprintln!("note: {n}");
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
                eprintln!(
                    "Stopped; what was done is kept. Continue with `pve remove {} --resume`.",
                    args.name
                );
            }
            Err(e)
        }
    }
}
