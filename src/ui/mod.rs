//! The command-line layer's side of [`crate::report`]: progress and
//! questions on a terminal, or JSON events on stdout for `--json`. The only
//! place (with the binaries) that prints or reads the terminal.

pub mod screen;

use std::io::{BufRead, IsTerminal, Write};
use std::time::{Duration, Instant};

use crate::report::{Prompt, PromptError, Reporter, StepEvent, StepStatus, Task};

/// Human progress on stderr: a step list, a spinner on slow steps when
/// stderr is a terminal, notes and blocks as they come.
pub struct Terminal {
    spinner: std::cell::RefCell<Option<indicatif::ProgressBar>>,
}

impl Terminal {
    pub fn new() -> Terminal {
        Terminal {
            spinner: std::cell::RefCell::new(None),
        }
    }
}

impl Default for Terminal {
    fn default() -> Self {
        Terminal::new()
    }
}

impl Reporter for Terminal {
    fn step(&self, e: &StepEvent<'_>) {
        if let Some(pb) = self.spinner.borrow_mut().take() {
            pb.finish_and_clear();
        }
        let mark = match e.status {
            StepStatus::Started => {
                if e.slow && std::io::stderr().is_terminal() {
                    let pb = indicatif::ProgressBar::new_spinner();
                    pb.set_message(format!("[{}/{}] {}", e.index, e.total, e.title));
                    pb.enable_steady_tick(Duration::from_millis(120));
                    *self.spinner.borrow_mut() = Some(pb);
                }
                return;
            }
            StepStatus::Done => "ok",
            StepStatus::Skipped => "--",
            StepStatus::Failed => "!!",
        };
        let time = e.seconds.map(|s| format!(" ({s:.1}s)")).unwrap_or_default();
        let detail = e
            .detail
            .filter(|d| !d.is_empty())
            .map(|d| format!(": {d}"))
            .unwrap_or_default();
        eprintln!("[{}/{}] {mark} {}{detail}{time}", e.index, e.total, e.title);
    }

    fn note(&self, text: &str) {
        eprintln!("{text}");
    }

    fn block(&self, text: &str) {
        eprint!("{text}");
        if !text.is_empty() && !text.ends_with('\n') {
            eprintln!();
        }
    }

    fn task(&self, message: &str) -> Box<dyn Task> {
        Box::new(TerminalTask::start(message))
    }
}

/// A spinner while a slow task runs when stderr is a terminal; one plain
/// line otherwise (logs and tests stay readable).
struct TerminalTask {
    message: String,
    start: Instant,
    spinner: Option<indicatif::ProgressBar>,
}

impl TerminalTask {
    fn start(message: &str) -> TerminalTask {
        let spinner = if std::io::stderr().is_terminal() {
            let pb = indicatif::ProgressBar::new_spinner();
            pb.set_message(format!("{message}…"));
            pb.enable_steady_tick(Duration::from_millis(120));
            Some(pb)
        } else {
            eprintln!("{message}…");
            None
        };
        TerminalTask {
            message: message.to_string(),
            start: Instant::now(),
            spinner,
        }
    }

    fn finish(&mut self, word: &str) {
        if let Some(pb) = self.spinner.take() {
            pb.finish_and_clear();
            eprintln!(
                "  {} {word} ({:.1}s)",
                self.message,
                self.start.elapsed().as_secs_f64()
            );
        }
    }
}

impl Task for TerminalTask {
    fn done(mut self: Box<Self>) {
        self.finish("done");
    }
}

impl Drop for TerminalTask {
    fn drop(&mut self) {
        self.finish("failed");
    }
}

/// `--json`: one JSON object per step event on stdout; notes and blocks go
/// to stderr so stdout stays machine-readable.
pub struct Json;

impl Reporter for Json {
    fn step(&self, e: &StepEvent<'_>) {
        if let Ok(line) = serde_json::to_string(e) {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{line}");
            let _ = out.flush();
        }
    }
    fn note(&self, text: &str) {
        eprintln!("{text}");
    }
    fn block(&self, text: &str) {
        eprint!("{text}");
    }
    fn task(&self, message: &str) -> Box<dyn Task> {
        eprintln!("{message}…");
        Box::new(QuietTask)
    }
}

struct QuietTask;

impl Task for QuietTask {
    fn done(self: Box<Self>) {}
}

/// Whether a person can answer questions here.
pub fn interactive() -> bool {
    std::io::stdin().is_terminal() && std::io::stderr().is_terminal()
}

/// Questions on the terminal; `yes` (from `--yes`) answers every yes/no
/// question for the user; without a terminal and without `--yes`, refuses.
pub struct TerminalPrompt {
    pub yes: bool,
    /// The advice when nobody can answer (default: pass --yes).
    pub help: Option<String>,
    /// The advice when nobody can type the word a question asks for
    /// (default: `help`).
    pub typed_help: Option<String>,
}

impl TerminalPrompt {
    pub fn new(yes: bool) -> TerminalPrompt {
        TerminalPrompt {
            yes,
            help: None,
            typed_help: None,
        }
    }

    fn refusal(&self, action: &str, typed: bool) -> PromptError {
        let help = if typed {
            self.typed_help.clone().or_else(|| self.help.clone())
        } else {
            self.help.clone()
        };
        PromptError::NoTerminal {
            action: action.to_string(),
            help,
        }
    }
}

impl Prompt for TerminalPrompt {
    fn confirm(
        &mut self,
        action: &str,
        question: &str,
        must_type: Option<&str>,
    ) -> Result<bool, PromptError> {
        if self.yes {
            return Ok(true);
        }
        if !interactive() {
            return Err(self.refusal(action, must_type.is_some()));
        }
        let hint = if must_type.is_some() { "" } else { " [y/N]" };
        let answer = read_answer(&format!("{question}{hint}"))?;
        Ok(match must_type {
            Some(w) => answer == w,
            None => matches!(answer.as_str(), "y" | "Y" | "yes" | "Yes"),
        })
    }

    fn ask(&mut self, action: &str, question: &str) -> Result<String, PromptError> {
        if !interactive() {
            return Err(self.refusal(action, false));
        }
        read_answer(question)
    }
}

/// One line from stdin after `question` on stderr (trimmed). The end of
/// input is an error, not an empty answer.
pub fn read_answer(question: &str) -> Result<String, PromptError> {
    let mut err = std::io::stderr().lock();
    let _ = write!(err, "{question} ");
    let _ = err.flush();
    drop(err);
    let mut line = String::new();
    let n = std::io::stdin().lock().read_line(&mut line)?;
    if n == 0 {
        return Err(PromptError::Read(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "the input ended",
        )));
    }
    Ok(line.trim().to_string())
}

/// Writes to stdout; a closed pipe (`pve eval | head`) is not an error.
pub fn print(text: &str) -> crate::error::Result<u8> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => Ok(crate::error::exit::OK),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(crate::error::exit::OK),
        Err(source) => Err(OutputError::Stdout { source }.into()),
    }
}

/// Prints an error the way a person can act on: rustc-style with the source
/// line when it has a position, then the help.
pub fn report_error(err: &crate::error::AppError) {
    use crate::error::AppError;
    use crate::fleet::FleetError;
    let mut stderr = std::io::stderr().lock();
    if let AppError::Fleet(FleetError::Invalid { file, diagnostic }) = err {
        let _ = write!(
            stderr,
            "{}",
            crate::diag::render_human(std::slice::from_ref(diagnostic), file)
        );
        return;
    }
    // Messages carry names and values from hosts.nix and from remotes:
    // escaped, so none can drive the terminal.
    let max = 4000;
    let _ = writeln!(
        stderr,
        "error: {}",
        crate::diag::escape_text(&err.to_string(), max)
    );
    if let Some(h) = err.help() {
        let _ = writeln!(stderr, "  = help: {}", crate::diag::escape_text(&h, max));
    }
}

/// One line from stdin after `question` (and a space) on stderr, trimmed;
/// empty at the end of input. Reads even when stdin is not a terminal (a
/// confirmation piped in).
pub fn read_line(question: &str) -> std::io::Result<String> {
    let mut err = std::io::stderr().lock();
    let _ = write!(err, "{question} ");
    let _ = err.flush();
    drop(err);
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(line.trim().to_string())
}

/// Whether stdin is a terminal (a person, not a pipe).
pub fn stdin_is_terminal() -> bool {
    std::io::stdin().is_terminal()
}

/// All of stdin, at most `max` bytes (more is an error).
pub fn read_stdin(max: u64) -> std::io::Result<Vec<u8>> {
    crate::fsutil::read_limited_from(std::io::stdin(), max)
}

/// A passphrase read from the terminal without echo.
pub fn read_passphrase(prompt: &str) -> std::io::Result<String> {
    rpassword::prompt_password(prompt)
}

/// Output that could not be written (exit 3).
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    #[error("cannot write to stdout: {source}")]
    Stdout {
        #[source]
        source: std::io::Error,
    },
}

impl crate::error::Classify for OutputError {
    fn kind(&self) -> crate::error::Kind {
        crate::error::Kind::External
    }
}
