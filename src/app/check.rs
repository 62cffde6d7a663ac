//! `pve check`.

use crate::check;
use crate::cli::check::{Args, Format};
use crate::diag::{escape_line, render_human, Diagnostic, JsonDiagnostic};
use crate::error::{exit, AppError, Result};
use crate::fleet::{FleetError, SourceFile};
use crate::report::Reporter as _;

use super::Context;

pub fn run(ctx: &Context, args: Args) -> Result<u8> {
    let loaded = match (ctx.load(), args.format) {
        (Ok(loaded), _) => loaded,
        // A file that does not parse or evaluate is one finding, in the
        // same JSON as every other (exit 2, as for any unreadable file).
        (Err(AppError::Fleet(FleetError::Invalid { file, diagnostic })), Format::Json) => {
            print_json(std::slice::from_ref(&*diagnostic), &file)?;
            return Ok(exit::INPUT);
        }
        (Err(e), _) => return Err(e),
    };
    let (diags, allowed) = check::check_with_allowed(&loaded);
    let failed = check::fails(&diags, args.strict);
    match args.format {
        Format::Json => print_json_with_allowed(&diags, &allowed, &loaded.file)?,
        Format::Human => {
            let report = crate::ui::Terminal::new();
            report.block(&render_human(&diags, &loaded.file));
            if args.show_allowed && !allowed.is_empty() {
                report.block(&allowed_lines(&allowed, &loaded.file));
            }
            let errors = diags.iter().filter(|d| d.is_error()).count();
            let warnings = diags.len() - errors;
            let hosts = loaded.fleet.hosts.len();
            let allowed = match allowed.len() {
                0 => String::new(),
                n => format!(", {n} allowed"),
            };
            report.note(&format!(
                "{}: {}, {}, {}{allowed}",
                loaded.file.path.display(),
                counted(hosts, "host"),
                counted(errors, "error"),
                counted(warnings, "warning")
            ));
        }
    }
    // The process ends here: freeing a large fleet's values piece by piece
    // would only delay the exit (the OS takes the memory back at once).
    std::mem::forget(loaded);
    Ok(if failed { exit::FINDINGS } else { exit::OK })
}

/// `allowed: file:line:col: error[code]: message`, one line per finding
/// an `allow` set aside (`--show-allowed`).
fn allowed_lines(allowed: &[Diagnostic], file: &SourceFile) -> String {
    allowed
        .iter()
        .map(|d| {
            let severity = if d.is_error() { "error" } else { "warning" };
            format!(
                "allowed: {}: {severity}[{}]: {}\n",
                escape_line(&file.location(d.span.start().into()), 1000),
                d.code.as_str(),
                escape_line(&d.message, 1000)
            )
        })
        .collect()
}

fn print_json(diags: &[Diagnostic], file: &SourceFile) -> Result<()> {
    print_json_with_allowed(diags, &[], file)
}

/// The findings, then those an `allow` set aside (marked `"allowed": true`).
fn print_json_with_allowed(
    diags: &[Diagnostic],
    allowed: &[Diagnostic],
    file: &SourceFile,
) -> Result<()> {
    let marked = allowed.iter().map(|d| JsonDiagnostic {
        allowed: true,
        ..JsonDiagnostic::new(d, file)
    });
    let json: Vec<_> = diags
        .iter()
        .map(|d| JsonDiagnostic::new(d, file))
        .chain(marked)
        .collect();
    let mut text = serde_json::to_string_pretty(&json).unwrap_or_else(|_| "[]".into());
    text.push('\n');
    super::print(&text)?;
    Ok(())
}

/// `1 error`, `2 errors`, `0 warnings`.
use crate::plural::plural as counted;
