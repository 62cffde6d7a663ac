//! `--watch`: one frame of a command's output after another. On a terminal
//! each frame replaces the last (cursor home, clear); in a pipe or a log
//! the frames follow each other, so nothing is lost.

use std::io::{IsTerminal, Write};

/// Shows `text` as the next frame; `clear` asks for the screen to be
/// cleared first when stdout is a terminal (not for JSON lines).
pub fn redraw(text: &str, clear: bool) {
    let mut out = std::io::stdout().lock();
    if clear && std::io::stdout().is_terminal() {
        let _ = out.write_all(b"\x1b[H\x1b[2J");
    }
    let _ = out.write_all(text.as_bytes());
    let _ = out.flush();
}
