//! What one evaluation may spend. A hosts.nix under 2 KB can describe a
//! value of 2^40 elements (`a1 = [ a0 a0 ]; a2 = [ a1 a1 ]; ...`), or a
//! string of 2^40 bytes with `+`, or a comparison that walks such a value;
//! the budget stops each in well under a second, with an error at the
//! expression that crossed it. The limits sit far above any real fleet (a
//! generated 40,000-host fleet of 19 MB, `scripts/gen-fleet 40000`,
//! evaluates within them) and far below a machine's memory (a budget spent
//! on lists peaks near 300 MB).

use std::cell::Cell;

use rowan::TextRange;

use super::eval::EvalError;

/// Evaluation steps (expressions evaluated, values forced, comparisons).
pub const MAX_STEPS: u64 = 20_000_000;
/// Values built: list elements and attributes, lazy and strict.
pub const MAX_VALUES: u64 = 2_000_000;
/// Bytes of strings and paths built.
pub const MAX_STRING_BYTES: u64 = 64 * 1024 * 1024;

#[derive(Default)]
pub struct Budget {
    steps: Cell<u64>,
    values: Cell<u64>,
    bytes: Cell<u64>,
}

impl Budget {
    /// What was spent so far: a read split over threads adds up the parts
    /// to know whether one evaluation of the whole file would have stayed
    /// within the limits.
    pub fn spent(&self) -> Spent {
        Spent {
            steps: self.steps.get(),
            values: self.values.get(),
            bytes: self.bytes.get(),
        }
    }
    #[inline]
    pub fn step(&self, span: TextRange) -> Result<(), EvalError> {
        spend(&self.steps, 1, MAX_STEPS, "evaluation steps", span)
    }
    #[inline]
    pub fn values(&self, n: usize, span: TextRange) -> Result<(), EvalError> {
        spend(&self.values, n as u64, MAX_VALUES, "values built", span)
    }
    /// Spends all of `cost` at once when that stays within every limit
    /// (then the same calls one by one would not have failed either: the
    /// counters only grow); `false`, spending nothing, otherwise.
    pub fn spend_all(&self, cost: Spent) -> bool {
        let total = self.spent().plus(cost);
        if !total.within_limits() {
            return false;
        }
        self.steps.set(total.steps);
        self.values.set(total.values);
        self.bytes.set(total.bytes);
        true
    }
    pub fn bytes(&self, n: usize, span: TextRange) -> Result<(), EvalError> {
        spend(
            &self.bytes,
            n as u64,
            MAX_STRING_BYTES,
            "bytes of strings built",
            span,
        )
    }
}

/// What one evaluation spent, by kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Spent {
    pub steps: u64,
    pub values: u64,
    pub bytes: u64,
}

impl Spent {
    /// Both together, as one evaluation spending each would have.
    pub fn plus(self, other: Spent) -> Spent {
        Spent {
            steps: self.steps.saturating_add(other.steps),
            values: self.values.saturating_add(other.values),
            bytes: self.bytes.saturating_add(other.bytes),
        }
    }

    pub fn within_limits(self) -> bool {
        self.steps <= MAX_STEPS && self.values <= MAX_VALUES && self.bytes <= MAX_STRING_BYTES
    }
}

// Inlined: a read of 10,000 hosts spends a few hundred thousand times, and
// the call was most of the cost; the message is built out of line.
#[inline]
fn spend(c: &Cell<u64>, n: u64, max: u64, what: &str, span: TextRange) -> Result<(), EvalError> {
    let total = c.get().saturating_add(n);
    c.set(total);
    if total > max {
        return Err(exceeded(max, what, span));
    }
    Ok(())
}

#[cold]
#[inline(never)]
fn exceeded(max: u64, what: &str, span: TextRange) -> EvalError {
    EvalError::new(
        span,
        format!("evaluation budget exceeded: more than {max} {what}"),
    )
    .with_help(
        "hosts.nix is data about machines; an expression here multiplies its values \
         (e.g. `a2 = [ a1 a1 ]` or `s2 = s1 + s1` repeated)",
    )
}
