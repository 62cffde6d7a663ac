//! `pve plan`, `pve apply`, `pve output`, `pve destroy`: OpenTofu in
//! `vms/tofu/.state` with the config rendered from hosts.nix.

use std::collections::{BTreeMap, BTreeSet};

use crate::cli::tofu::{ApplyArgs, DestroyArgs, OutputArgs, PlanArgs};
use crate::error::{exit, AppError, Result};
use crate::fleet::Loaded;
use crate::fsutil::RepoLock;
use crate::remote::proxmox::Proxmox;
use crate::report::{Prompt, Reporter};
use crate::tofu::{
    self, guard, ApiToken, Config, Guard, Inventory, Outcome, PlanKind, PlanMeta, SavedPlan, State,
    Tofu, PLAN_FILE,
};
use crate::ui::{Terminal, TerminalPrompt};

use super::{Context, UsageError};

pub fn plan(ctx: &Context, args: PlanArgs) -> Result<u8> {
    let report = Terminal::new();
    let s = Session::open(ctx, true, &report)?;
    let inv = SshInventory {
        loaded: &s.loaded,
        report: &report,
    };
    let guard = s.guard(&inv, args.guard.skip_state_guard);
    s.tofu
        .prepare(&s.config, &mut migration_prompt(args.yes), &report)?;
    plan_and_save(&s.tofu, &s.config, &guard, &mut prompt(false), &report)?;
    Ok(exit::OK)
}

pub fn apply(ctx: &Context, args: ApplyArgs) -> Result<u8> {
    let report = Terminal::new();
    let s = Session::open(ctx, true, &report)?;
    let inv = SshInventory {
        loaded: &s.loaded,
        report: &report,
    };
    let guard = s.guard(&inv, args.guard.skip_state_guard);
    s.tofu
        .prepare(&s.config, &mut migration_prompt(args.yes), &report)?;
    let outcome = apply_plan(&s.tofu, &s.config, &guard, &mut prompt(args.yes), &report)?;
    Ok(outcome_code(outcome))
}

pub fn destroy(ctx: &Context, args: DestroyArgs) -> Result<u8> {
    let report = Terminal::new();
    let s = Session::open(ctx, true, &report)?;
    s.tofu
        .prepare(&s.config, &mut migration_prompt(args.yes), &report)?;
    let outcome = destroy_all(&s.tofu, &s.config, &mut prompt(args.yes), &report)?;
    Ok(outcome_code(outcome))
}

/// `pve output`: reads only, once the folder is initialised (so it can run
/// while an apply holds the repository lock).
pub fn output(ctx: &Context, args: OutputArgs) -> Result<u8> {
    let report = Terminal::new();
    let s = Session::open(ctx, false, &report)?;
    if !s.tofu.is_initialised() {
        s.tofu
            .prepare(&s.config, &mut migration_prompt(false), &report)?;
    }
    let text = s
        .tofu
        .output_reported(args.json, args.name.as_deref(), &report)?;
    super::print(&text)
}

/// Asks on the terminal; --yes answers for the user; with neither, refuses
/// with advice to review the plan shown above.
fn prompt(yes: bool) -> TerminalPrompt {
    TerminalPrompt {
        yes,
        help: Some(
            "review the plan above and pass --yes to go ahead from a script; \
             or run `pve plan` first: `pve apply` applies a plan saved from the current hosts.nix without asking"
                .to_string(),
        ),
        typed_help: Some(
            "review the plan above and pass --yes to go ahead from a script".to_string(),
        ),
    }
}

/// For the one question `tofu init` can raise: copying the state to the
/// backend hosts.nix names now. --yes accepts it.
fn migration_prompt(yes: bool) -> TerminalPrompt {
    TerminalPrompt {
        yes,
        help: Some(
            "pass --yes to copy the state to the new backend \
             (`tofu init -migrate-state -force-copy`), or put the previous `_proxmox.backend` \
             back in hosts.nix; nothing was changed"
                .to_string(),
        ),
        typed_help: None,
    }
}

fn outcome_code(o: Outcome) -> u8 {
    match o {
        Outcome::Applied | Outcome::NoChanges => exit::OK,
        Outcome::Declined => exit::FINDINGS,
    }
}

/// The state guard, unless switched off (which an empty state makes worth
/// a warning).
fn run_guard(config: &Config, state: &State, g: &Guard, report: &dyn Reporter) -> Result<()> {
    if g.skip {
        if state.is_empty() {
            report.note("warning: the state guard is off (--skip-state-guard); an empty state plans to create every VM");
        }
        return Ok(());
    }
    guard::check(
        state.is_empty(),
        &config.managed_vms(),
        g.inventory,
        g.default_node,
        g.cluster,
    )
}

/// `pve plan`: prepare, guard, plan and save.
fn plan_and_save(
    tofu: &Tofu,
    config: &Config,
    g: &Guard,
    prompt: &mut dyn Prompt,
    report: &dyn Reporter,
) -> Result<PlanMeta> {
    tofu.require_token()?;
    tofu.prepare(config, prompt, report)?;
    let state = tofu.state()?;
    run_guard(config, &state, g, report)?;
    let meta = tofu.plan(config, &state, PlanKind::Apply, report)?;
    if meta.changes {
        report.note(&format!("Saved the plan ({PLAN_FILE}); `pve apply` applies exactly this plan while hosts.nix stays as it is."));
    } else {
        report.note("No changes: the VMs match hosts.nix.");
    }
    Ok(meta)
}

/// `pve apply`: the saved plan when it was made from this config and state,
/// else a new plan that must be confirmed.
fn apply_plan(
    tofu: &Tofu,
    config: &Config,
    g: &Guard,
    prompt: &mut dyn Prompt,
    report: &dyn Reporter,
) -> Result<Outcome> {
    tofu.require_token()?;
    tofu.prepare(config, prompt, report)?;
    let state = tofu.state()?;
    match tofu.saved_plan(config, &state) {
        SavedPlan::Usable(meta) => {
            if !meta.changes {
                tofu.discard_plan();
                report.note("No changes: the saved plan has nothing to apply.");
                return Ok(Outcome::NoChanges);
            }
            if !meta.targets.is_empty() {
                // Left by `pve new` / `pve remove`, not reviewed through
                // `pve plan`: say what it is limited to, and ask.
                report.note(&format!(
                    "The saved plan is limited to {} (-target, left by `pve new` or `pve remove`); `pve apply` did not make it.",
                    meta.targets.join(", ")
                ));
                let ok = tofu.confirm_or_discard(
                    prompt,
                    "apply a targeted plan",
                    "Apply this targeted plan?",
                    None,
                )?;
                if !ok {
                    tofu.discard_plan();
                    report.note("Nothing applied; the plan was discarded.");
                    return Ok(Outcome::Declined);
                }
            }
            report.note("Applying the saved plan (made from the current hosts.nix).");
            tofu.apply_saved()?;
            Ok(Outcome::Applied)
        }
        other => {
            if other != SavedPlan::Missing {
                report.note(&format!(
                    "Not using the saved plan: {}. Planning again.",
                    other.reason()
                ));
            }
            run_guard(config, &state, g, report)?;
            let meta = tofu.plan(config, &state, PlanKind::Apply, report)?;
            if !meta.changes {
                tofu.discard_plan();
                report.note("No changes: the VMs match hosts.nix.");
                return Ok(Outcome::NoChanges);
            }
            let ok =
                tofu.confirm_or_discard(prompt, "apply this plan", "Apply the plan above?", None)?;
            if !ok {
                tofu.discard_plan();
                report.note("Nothing applied.");
                return Ok(Outcome::Declined);
            }
            tofu.apply_saved()?;
            Ok(Outcome::Applied)
        }
    }
}

/// `pve destroy`: a destroy plan, confirmed by typing `destroy`, applied.
fn destroy_all(
    tofu: &Tofu,
    config: &Config,
    prompt: &mut dyn Prompt,
    report: &dyn Reporter,
) -> Result<Outcome> {
    tofu.require_token()?;
    tofu.prepare(config, prompt, report)?;
    let state = tofu.state()?;
    if state.is_empty() {
        report.note("Nothing to destroy: the OpenTofu state has no resources.");
        return Ok(Outcome::NoChanges);
    }
    let meta = tofu.plan(config, &state, PlanKind::Destroy, report)?;
    if !meta.changes {
        tofu.discard_plan();
        report.note("Nothing to destroy.");
        return Ok(Outcome::NoChanges);
    }
    let ok = tofu.confirm_or_discard(
        prompt,
        "destroy these VMs",
        "This deletes the VMs listed above and their disks. Type `destroy` to go on:",
        Some("destroy"),
    )?;
    if !ok {
        tofu.discard_plan();
        report.note("Nothing destroyed.");
        return Ok(Outcome::Declined);
    }
    tofu.apply_saved()?;
    Ok(Outcome::Applied)
}

/// hosts.nix loaded, its config rendered, the token found, the repo locked.
struct Session {
    loaded: Loaded,
    config: Config,
    tofu: Tofu,
    _lock: Option<RepoLock>,
}

impl Session {
    fn open(ctx: &Context, needs_token: bool, report: &dyn Reporter) -> Result<Session> {
        let loaded = ctx.load()?;
        if needs_token {
            // Never plan from a fleet `pve check` rejects.
            let diags = crate::check::check(&loaded);
            if crate::check::fails(&diags, false) {
                report.block(&crate::diag::render_human(&diags, &loaded.file));
                let errors = diags.iter().filter(|d| d.is_error()).count();
                return Err(UsageError::HostsFileHasErrors {
                    file: loaded.file.path.clone(),
                    errors,
                }
                .into());
            }
        }
        let config = Config::new(&crate::render::tofu::render_json(&loaded)?)?;
        let token = if needs_token {
            Some(ApiToken::discover()?.ok_or_else(tofu::token::missing)?)
        } else {
            None
        };
        let dir = tofu::workdir(&loaded.root_dir)?;
        let tofu = Tofu::new(dir, token).parallelism(parallel_clones(&loaded));
        // Commands that change files lock the repository; `pve output`
        // only reads once the folder is initialised.
        let lock = if needs_token || !tofu.is_initialised() {
            Some(RepoLock::take(&loaded.root_dir)?)
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
            cluster: is_cluster(&self.loaded),
        }
    }
}

/// `_proxmox.parallelClones` (default 2; `pve check` holds it to 1..=64).
fn parallel_clones(loaded: &Loaded) -> u32 {
    use crate::render::tofu::{DEFAULT_PARALLEL_CLONES, MAX_PARALLEL_CLONES};
    loaded
        .fleet
        .proxmox
        .as_ref()
        .and_then(|p| p.parallel_clones.as_ref())
        .and_then(|n| u32::try_from(n.value).ok())
        .filter(|n| (1..=MAX_PARALLEL_CLONES).contains(n))
        .unwrap_or(DEFAULT_PARALLEL_CLONES)
}

/// A fleet on more than one node (`_proxmox.nodes` lists several, or a VM
/// names another node than `_proxmox.node`).
fn is_cluster(loaded: &Loaded) -> bool {
    let Some(cfg) = &loaded.fleet.proxmox else {
        return false;
    };
    let mut nodes: BTreeSet<&str> = cfg.nodes.iter().flatten().map(String::as_str).collect();
    nodes.extend(cfg.node.as_ref().map(|n| n.value.as_str()));
    nodes.extend(loaded.fleet.vms().filter_map(|(_, p)| cfg.node_of(p)));
    nodes.len() > 1
}

/// The VMIDs on Proxmox for the state guard, through `remote::proxmox`
/// (every guest of the cluster, over SSH with the pinned host key).
struct SshInventory<'a> {
    loaded: &'a Loaded,
    report: &'a dyn Reporter,
}

const GUARD_HELP: &str = "pve checks Proxmox for existing VMs when the OpenTofu state is empty; \
make SSH to the Proxmox host work (`proxmox-ops trust` pins its key), \
or pass --skip-state-guard if no VM of this fleet exists yet";

impl Inventory for SshInventory<'_> {
    fn placements(&self) -> Result<BTreeMap<i64, String>> {
        let with_help = |e: AppError| match e.help() {
            Some(h) => {
                let h = format!("{h}; {GUARD_HELP}");
                e.with_help(h)
            }
            None => e.with_help(GUARD_HELP),
        };
        let px = Proxmox::from_loaded(self.loaded).map_err(with_help)?;
        let task = self.report.task(&format!(
            "Checking {} for the VMs of this fleet (state guard)",
            px.settings().endpoint.host
        ));
        let live = px.resources().map_err(with_help)?;
        task.done();
        Ok(live
            .into_iter()
            .map(|r| (i64::from(r.vmid), r.node))
            .collect())
    }
}
