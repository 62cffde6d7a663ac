//! `--watch`: one frame of a command's output after another. On a terminal
//! each frame replaces the last (cursor home, clear); in a pipe or a log
//! the frames follow each other, so nothing is lost.

use std::io::{IsTerminal, Write};

/// Shows `text` as the next frame; `clear` asks for the screen to be
/// cleared first when stdout is a terminal (not for JSON lines). False
/// when stdout is gone (`pve status --watch | head`): time to stop.
pub fn redraw(text: &str, clear: bool) -> bool {
    let mut out = std::io::stdout().lock();
    let home = if clear && std::io::stdout().is_terminal() {
        &b"\x1b[H\x1b[2J"[..]
    } else {
        &b""[..]
    };
    out.write_all(home)
        .and_then(|()| out.write_all(text.as_bytes()))
        .and_then(|()| out.flush())
        .is_ok()
}
