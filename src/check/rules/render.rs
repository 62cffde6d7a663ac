//! Check and render agree: whatever `pve render` would refuse, `pve check`
//! reports, at the same position. The rule renders every output in memory
//! (nothing is written) and tests every destination as render would.

use crate::diag::{Code, Diagnostic};
use crate::error::AppError;
use crate::fleet::{FleetError, Loaded};

/// `pve render`'s refusals, as check findings.
pub fn render_refusals(l: &Loaded) -> Vec<Diagnostic> {
    // The rules render's gates would run are check rules of their own.
    // Nothing is written, so the read-back that proves the text before a
    // write is skipped: it guards pve's own template, not the fleet.
    // config.tf.json's text is not needed either: only whether it
    // renders, and whether its destination may be written.
    let options = crate::render::Options {
        skip_read_back: true,
        paths_only: true,
        ..Default::default()
    };
    let files = match crate::render::without_gates(|| crate::render::all_with(l, options)) {
        Ok(files) => files,
        // A missing key is the `required` and `proxmox-config` rules' to
        // report: they know when a key is there but of the wrong type or
        // misspelled (one finding per mistake, not two).
        Err(e) => {
            return Some(as_diagnostic(l, e))
                .filter(|d| d.code != Code::MissingKey)
                .into_iter()
                .collect()
        }
    };
    files
        .iter()
        .filter_map(|f| crate::render::ownership::problem(l, &l.root_dir, f))
        .collect()
}

fn as_diagnostic(l: &Loaded, e: AppError) -> Diagnostic {
    match e {
        AppError::Fleet(FleetError::Invalid { diagnostic, .. }) => *diagnostic,
        other => {
            let d = Diagnostic::error(
                Code::Render,
                l.value.span,
                format!("`pve render` would fail: {other}"),
            );
            match other.help() {
                Some(h) => d.help(h),
                None => d,
            }
        }
    }
}
