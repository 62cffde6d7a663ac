//! `pve plan`, `pve apply`, `pve output`, `pve destroy`: OpenTofu in
//! `vms/tofu/.state` with the config rendered from hosts.nix.

use std::collections::BTreeSet;
use std::io::{BufRead, IsTerminal, Write};
use std::time::Duration;

use crate::cli::tofu::{ApplyArgs, DestroyArgs, OutputArgs, PlanArgs};
use crate::error::{exit, AppError, Result};
use crate::fleet::Loaded;
use crate::fsutil::RepoLock;
use crate::remote::proxmox::Proxmox;
use crate::tofu::{self, ApiToken, Config, Confirm, Guard, Inventory, Outcome, Tofu};

use super::Context;

pub fn plan(ctx: &Context, args: PlanArgs) -> Result<u8> {
    let s = Session::open(ctx, true)?;
    let inv = SshInventory::new(&s.loaded);
    let guard = s.guard(&inv, args.guard.skip_state_guard);
    tofu::plan(&s.tofu, &s.config, &guard, &mut Prompt { yes: false })?;
    Ok(exit::OK)
}

pub fn apply(ctx: &Context, args: ApplyArgs) -> Result<u8> {
    let s = Session::open(ctx, true)?;
    let inv = SshInventory::new(&s.loaded);
    let guard = s.guard(&inv, args.guard.skip_state_guard);
    let outcome = tofu::apply(&s.tofu, &s.config, &guard, &mut Prompt { yes: args.yes })?;
    Ok(outcome_code(outcome))
}

pub fn destroy(ctx: &Context, args: DestroyArgs) -> Result<u8> {
    let s = Session::open(ctx, true)?;
    let outcome = tofu::destroy(&s.tofu, &s.config, &mut Prompt { yes: args.yes })?;
    Ok(outcome_code(outcome))
}

pub fn output(ctx: &Context, args: OutputArgs) -> Result<u8> {
    let s = Session::open(ctx, false)?;
    let text = tofu::output(
        &s.tofu,
        &s.config,
        args.json,
        args.name.as_deref(),
        &mut Prompt { yes: false },
    )?;
    super::print(&text)
}

fn outcome_code(o: Outcome) -> u8 {
    match o {
        Outcome::Applied | Outcome::NoChanges => exit::OK,
        Outcome::Declined => exit::FINDINGS,
    }
}

/// hosts.nix loaded, its config rendered, the token found, the repo locked.
struct Session {
    loaded: Loaded,
    config: Config,
    tofu: Tofu,
    _lock: Option<RepoLock>,
}

impl Session {
    fn open(ctx: &Context, needs_token: bool) -> Result<Session> {
        let loaded = ctx.load()?;
        if needs_token {
            // Never plan from a fleet `pve check` rejects.
            let diags = crate::check::check(&loaded);
            if crate::check::fails(&diags, false) {
                eprint!("{}", crate::diag::render_human(&diags, &loaded.file));
                let errors = diags.iter().filter(|d| d.is_error()).count();
                return Err(AppError::input(format!(
                    "{} has {errors} error{}; not planning from it",
                    loaded.file.path.display(),
                    if errors == 1 { "" } else { "s" }
                ))
                .with_help("fix them (`pve check` lists them) and run again"));
            }
        }
        let config = Config::new(&config_json(&loaded)?)?;
        let token = if needs_token {
            Some(ApiToken::discover()?.ok_or_else(tofu::token::missing)?)
        } else {
            None
        };
        let dir = tofu::workdir(&loaded.root_dir)?;
        let tofu = Tofu::new(dir, token);
        // Commands that change files lock the repository; `pve output`
        // only reads once the folder is initialised.
        let lock = if needs_token || !tofu.is_initialised() {
            Some(RepoLock::acquire(
                &loaded.root_dir,
                Duration::from_secs(30),
            )?)
        } else {
            None
        };
        Ok(Session {
            config,
            tofu,
            loaded,
            _lock: lock,
        })
    }

    fn guard<'a>(&'a self, inv: &'a dyn Inventory, skip: bool) -> Guard<'a> {
        Guard {
            inventory: inv,
            skip,
            default_node: self
                .loaded
                .fleet
                .proxmox
                .as_ref()
                .and_then(|p| p.node.as_ref())
                .map(|n| n.value.as_str()),
        }
    }
}

/// Asks on the terminal; --yes answers for the user; with neither, refuses.
struct Prompt {
    yes: bool,
}

impl Confirm for Prompt {
    fn confirm(&mut self, action: &str, question: &str, must_type: Option<&str>) -> Result<bool> {
        if self.yes {
            return Ok(true);
        }
        if !(std::io::stdin().is_terminal() && std::io::stderr().is_terminal()) {
            return Err(AppError::input(format!(
                "refusing to {action} without confirmation: there is no terminal to ask on"
            ))
            .with_help(if must_type.is_some() {
                "review the plan above and pass --yes to go ahead from a script"
            } else {
                "review the plan above and pass --yes to go ahead from a script; \
                 or run `pve plan` first: `pve apply` applies a plan saved from the current hosts.nix without asking"
            }));
        }
        let mut err = std::io::stderr().lock();
        let hint = if must_type.is_some() { "" } else { " [y/N]" };
        let _ = write!(err, "{question}{hint} ");
        let _ = err.flush();
        drop(err);
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(|e| AppError::input(format!("cannot read the answer: {e}")))?;
        let answer = line.trim();
        Ok(match must_type {
            Some(w) => answer == w,
            None => matches!(answer, "y" | "Y" | "yes" | "Yes"),
        })
    }
}

/// The OpenTofu config for this fleet, as `pve render` writes it.
fn config_json(loaded: &Loaded) -> Result<String> {
    crate::render::tofu::render_json(loaded)
}

/// The VMIDs on Proxmox for the state guard, through `remote::proxmox`
/// (every guest of the cluster, over SSH with the pinned host key).
struct SshInventory<'a> {
    loaded: &'a Loaded,
}

impl<'a> SshInventory<'a> {
    fn new(loaded: &'a Loaded) -> SshInventory<'a> {
        SshInventory { loaded }
    }
}

const GUARD_HELP: &str = "pve checks Proxmox for existing VMs when the OpenTofu state is empty; \
make SSH to the Proxmox host work (`proxmox-ops trust` pins its key), \
or pass --skip-state-guard if no VM of this fleet exists yet";

impl Inventory for SshInventory<'_> {
    fn existing_vmids(&self) -> Result<BTreeSet<i64>> {
        let with_help = |e: AppError| match e.help() {
            Some(h) => {
                let h = format!("{h}; {GUARD_HELP}");
                e.with_help(h)
            }
            None => e.with_help(GUARD_HELP),
        };
        let px = Proxmox::from_loaded(self.loaded).map_err(with_help)?;
        let step = tofu::progress::Step::start(format!(
            "The state is empty: checking {} for existing VMs",
            px.settings().endpoint.host
        ));
        let ids = px.existing_vmids().map_err(with_help)?;
        step.done();
        Ok(ids.into_iter().map(i64::from).collect())
    }
}
