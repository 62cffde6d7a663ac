//! Workflows (`pve new`, `pve integrate`, `pve remove`) as ordered,
//! idempotent steps with a journal: each step is a name, a title and a
//! function; the runner skips what the journal says is done, records every
//! outcome, and reports each step as a [`StepEvent`] (the caller's
//! [`Reporter`] shows it as a step list or JSON events).

pub mod deploy;
pub mod gate;
pub mod hardware;
pub mod integrate;
pub mod journal;
pub mod key_owner;
pub mod new;
pub mod rekey_step;
pub mod remove;

use std::time::Instant;

pub use journal::{Journal, Status};

use crate::error::AppError;
use crate::report::{Reporter, StepEvent, StepStatus};

/// One step of a workflow.
pub struct Step<C> {
    pub name: &'static str,
    pub title: &'static str,
    /// Slow steps get a spinner.
    pub slow: bool,
    pub run: fn(&mut C, &mut Journal) -> Result<String, AppError>,
}

/// Runs `steps` in order, skipping those the journal marks done. Stops at
/// the first failure, which stays recorded so `--resume` starts there.
pub fn run<C>(
    ctx: &mut C,
    steps: &[Step<C>],
    journal: &mut Journal,
    report: &dyn Reporter,
) -> Result<(), AppError> {
    let _lock = journal.lock()?;
    // Owned: the journal is written between the events.
    let (workflow, host) = (journal.workflow.clone(), journal.host.clone());
    let total = steps.len();
    for (i, step) in steps.iter().enumerate() {
        let event = |status, detail, seconds| StepEvent {
            workflow: &workflow,
            host: &host,
            step: step.name,
            title: step.title,
            index: i + 1,
            total,
            status,
            detail,
            seconds,
            slow: step.slow,
        };
        if journal.is_done(step.name) {
            let detail = journal
                .steps
                .get(step.name)
                .map(|s| s.detail.clone())
                .unwrap_or_default();
            let detail = format!("done earlier: {detail}");
            report.step(&event(StepStatus::Skipped, Some(&detail), None));
            continue;
        }
        report.step(&event(StepStatus::Started, None, None));
        let start = Instant::now();
        let result = (step.run)(ctx, journal);
        let secs = start.elapsed().as_secs_f64();
        match result {
            Ok(detail) => {
                journal.record(step.name, Status::Done, &detail)?;
                report.step(&event(StepStatus::Done, Some(&detail), Some(secs)));
            }
            Err(e) => {
                let message = e.to_string();
                journal.record(step.name, Status::Failed, &message)?;
                report.step(&event(StepStatus::Failed, Some(&message), Some(secs)));
                return Err(e);
            }
        }
    }
    Ok(())
}

/// `--status`: the steps and what the journal says of each.
pub fn status_lines<C>(steps: &[Step<C>], journal: Option<&Journal>) -> Vec<String> {
    steps
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let rec = journal.and_then(|j| j.steps.get(s.name));
            // One line per step: the first line of what it reported.
            let first = |d: &str| d.lines().next().unwrap_or("").to_string();
            let state = match rec {
                Some(r) if r.status == Status::Done => format!("done      {}", first(&r.detail)),
                Some(r) => format!("FAILED    {}", first(&r.detail)),
                None => "pending".to_string(),
            };
            format!("{:>2}. {:<34} {state}", i + 1, s.title)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Ctx {
        ran: Vec<&'static str>,
        fail_at: Option<&'static str>,
    }

    fn step(name: &'static str) -> Step<Ctx> {
        Step {
            name,
            title: name,
            slow: false,
            run: |c, _| {
                let name = c.ran.len();
                let names = ["one", "two", "three"];
                let me = names[name.min(2)];
                if c.fail_at == Some(me) {
                    return Err(crate::fsutil::FsError::ReadOnly { path: me.into() }.into());
                }
                c.ran.push(me);
                Ok(format!("{me} ok"))
            },
        }
    }

    #[test]
    fn a_failed_run_resumes_at_the_failed_step() {
        let dir = tempfile::tempdir().expect("tempdir");
        let steps = [step("one"), step("two"), step("three")];
        let mut j = Journal::new(dir.path(), "integrate", "web");
        let mut ctx = Ctx {
            ran: vec![],
            fail_at: Some("two"),
        };
        assert!(run(&mut ctx, &steps, &mut j, &crate::report::Silent).is_err());
        assert_eq!(ctx.ran, ["one"]);

        // A new process: the journal on disk says step one is done.
        let mut j = Journal::load(dir.path(), "integrate", "web")
            .expect("load")
            .expect("journal exists");
        assert!(j.is_done("one") && !j.is_done("two"));
        let mut ctx = Ctx {
            ran: vec!["one"],
            fail_at: None,
        };
        run(&mut ctx, &steps, &mut j, &crate::report::Silent).expect("resumed run");
        assert_eq!(
            ctx.ran,
            ["one", "two", "three"],
            "step one was not run again"
        );
    }

    #[test]
    fn a_second_run_for_the_same_host_is_refused_while_the_first_runs() {
        let dir = tempfile::tempdir().expect("tempdir");
        let first = Journal::new(dir.path(), "integrate", "web");
        let held = first.lock().expect("first run locks");
        let mut second = Journal::new(dir.path(), "integrate", "web");
        let mut ctx = Ctx {
            ran: vec![],
            fail_at: None,
        };
        let err = run(
            &mut ctx,
            &[step("one")],
            &mut second,
            &crate::report::Silent,
        )
        .expect_err("second run refused");
        assert!(
            err.to_string()
                .contains("another `pve integrate` for `web` is running"),
            "{err}"
        );
        assert!(ctx.ran.is_empty(), "no step ran");
        // Another host is not affected; the same host runs once released.
        Journal::new(dir.path(), "integrate", "db")
            .lock()
            .expect("other host");
        drop(held);
        run(
            &mut ctx,
            &[step("one")],
            &mut second,
            &crate::report::Silent,
        )
        .expect("runs after release");
        assert_eq!(ctx.ran, ["one"]);
        // The run state stays out of git.
        let ignore =
            std::fs::read_to_string(dir.path().join(journal::JOURNAL_DIR).join(".gitignore"))
                .expect(".gitignore");
        assert!(ignore.lines().any(|l| l == "*"));
    }

    #[test]
    fn a_journal_folder_that_cannot_be_made_stops_the_run_before_any_step() {
        let dir = tempfile::tempdir().expect("tempdir");
        // A file where the folder should be.
        std::fs::create_dir_all(dir.path().join("vms")).expect("mkdir");
        let blocker = dir.path().join(journal::JOURNAL_DIR);
        std::fs::write(&blocker, "not a folder").expect("write");
        let mut j = Journal::new(dir.path(), "integrate", "web");
        let mut ctx = Ctx {
            ran: vec![],
            fail_at: None,
        };
        let err =
            run(&mut ctx, &[step("one")], &mut j, &crate::report::Silent).expect_err("refused");
        assert!(err.to_string().contains("cannot create"), "{err}");
        assert!(err.to_string().contains(".journal"), "{err}");
        assert!(ctx.ran.is_empty(), "no step ran");
        assert_eq!(
            std::fs::read_to_string(&blocker).expect("read"),
            "not a folder",
            "the file in the way is untouched"
        );
    }

    #[test]
    fn a_corrupt_journal_is_named_with_the_fix() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = Journal::path_for(dir.path(), "integrate", "web");
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(&p, "{ not json").expect("write");
        let err = Journal::load(dir.path(), "integrate", "web").expect_err("corrupt");
        assert!(err.to_string().contains("corrupt"), "{err}");
        assert!(err.help().is_some_and(|h| h.contains("delete it")));
    }
}
