//! How the library tells the user something and asks them something,
//! without printing or reading the terminal itself.
//!
//! Workflows, OpenTofu runs and edits take a [`Reporter`] (and, where they
//! may need an answer, a [`Prompt`]). The command-line layer implements both
//! for a terminal and for `--json` (`crate::ui`); tests and library callers
//! can use [`Silent`] and [`NoPrompt`].

/// A workflow step changed state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StepStatus {
    Started,
    Done,
    Skipped,
    Failed,
}

/// One step event of a workflow (`pve new`, `integrate`, `remove`).
#[derive(Debug, Clone, serde::Serialize)]
pub struct StepEvent<'a> {
    pub workflow: &'a str,
    pub host: &'a str,
    pub step: &'a str,
    #[serde(skip)]
    pub title: &'a str,
    pub index: usize,
    pub total: usize,
    pub status: StepStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seconds: Option<f64>,
    /// Whether the step is slow enough to deserve a spinner while it runs.
    #[serde(skip)]
    pub slow: bool,
}

/// Where progress and messages go.
pub trait Reporter {
    /// A workflow step started, finished, was skipped or failed.
    fn step(&self, event: &StepEvent<'_>);
    /// A one-line note for the person running the command ("the VM moved
    /// from … to …"). Not part of the command's result.
    fn note(&self, text: &str);
    /// A block shown as it is (a diff, a summary of what will happen).
    fn block(&self, text: &str);
    /// A slow task begins (a spinner on a terminal, one line otherwise).
    /// The returned guard ends it: [`Task::done`] on success; dropped
    /// without `done`, it reports the task as failed.
    fn task(&self, message: &str) -> Box<dyn Task>;
}

/// A slow task in progress; see [`Reporter::task`].
pub trait Task {
    fn done(self: Box<Self>);
}

/// Why a question could not be answered.
#[derive(Debug, thiserror::Error)]
pub enum PromptError {
    /// Nobody can answer: no terminal, and no flag gave the answer. `help`
    /// is what the asking command advises (default: pass --yes).
    #[error("refusing to {action} without confirmation: there is no terminal to ask on")]
    NoTerminal {
        action: String,
        help: Option<String>,
    },
    /// The terminal could not be read.
    #[error("cannot read the answer: {0}")]
    Read(#[from] std::io::Error),
}

/// Asks the user.
pub trait Prompt {
    /// Shows `question` and reads a yes/no answer; with `must_type`, the
    /// answer must be exactly that word. `action` names what is being
    /// confirmed, for the error when nobody can answer.
    fn confirm(
        &mut self,
        action: &str,
        question: &str,
        must_type: Option<&str>,
    ) -> Result<bool, PromptError>;

    /// Shows `question` and reads one line of text (trimmed).
    fn ask(&mut self, action: &str, question: &str) -> Result<String, PromptError>;
}

/// A reporter that shows nothing (library callers, unit tests).
pub struct Silent;

impl Reporter for Silent {
    fn step(&self, _: &StepEvent<'_>) {}
    fn note(&self, _: &str) {}
    fn block(&self, _: &str) {}
    fn task(&self, _: &str) -> Box<dyn Task> {
        Box::new(SilentTask)
    }
}

struct SilentTask;

impl Task for SilentTask {
    fn done(self: Box<Self>) {}
}

/// A prompt that can never ask: every question is refused with
/// [`PromptError::NoTerminal`].
pub struct NoPrompt;

impl Prompt for NoPrompt {
    fn confirm(&mut self, action: &str, _: &str, _: Option<&str>) -> Result<bool, PromptError> {
        Err(PromptError::NoTerminal {
            action: action.to_string(),
            help: None,
        })
    }
    fn ask(&mut self, action: &str, _: &str) -> Result<String, PromptError> {
        Err(PromptError::NoTerminal {
            action: action.to_string(),
            help: None,
        })
    }
}
