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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::fleet::{load_source, SourceFile};

    /// The rule renders without the files' text (`paths_only`); what it
    /// finds about the destinations must be what the text would give.
    #[test]
    fn destinations_are_judged_as_with_the_text() {
        let dir = tempfile::tempdir().unwrap();
        let hosts = dir.path().join("hosts.nix");
        let load = || {
            load_source(SourceFile::new(
                hosts.clone(),
                crate::check::testing::fleet(),
            ))
        };
        let loaded = load().unwrap();
        assert_eq!(render_refusals(&loaded), vec![]);

        // What `pve render` wrote: ours, pretty or compact.
        let tofu = dir.path().join(crate::render::TOFU_PATH);
        std::fs::create_dir_all(tofu.parent().unwrap()).unwrap();
        for compact in [false, true] {
            let text = crate::render::tofu::render_json_as(&loaded, compact).unwrap();
            std::fs::write(&tofu, text).unwrap();
            assert_eq!(render_refusals(&load().unwrap()), vec![]);
        }
        // Anything that is not a JSON object is not ours.
        for other in ["my notes\n", "[1, 2]\n", "{\"a\": 1} trailing\n"] {
            std::fs::write(&tofu, other).unwrap();
            let codes: Vec<Code> = render_refusals(&load().unwrap())
                .iter()
                .map(|d| d.code)
                .collect();
            assert_eq!(codes, vec![Code::RenderDestination], "{other:?}");
        }
        std::fs::remove_file(&tofu).unwrap();

        // vms/known_hosts: what render wrote is ours, another file is not.
        let known = dir.path().join(crate::render::KNOWN_HOSTS_PATH);
        std::fs::write(&known, crate::render::known_hosts::render(&loaded).unwrap()).unwrap();
        assert_eq!(render_refusals(&load().unwrap()), vec![]);
        std::fs::write(&known, "my notes\n").unwrap();
        let codes: Vec<Code> = render_refusals(&load().unwrap())
            .iter()
            .map(|d| d.code)
            .collect();
        assert_eq!(codes, vec![Code::RenderDestination]);
    }
}
