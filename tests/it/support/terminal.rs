//! A program on a pseudo-terminal (util-linux `script`), answered the way a
//! person would: each answer is typed only once its question is on the
//! screen.
//!
//! Typing before the question is up is not the same thing: between two
//! questions pve runs ssh, tofu and sops, and a child that reads the
//! terminal would swallow the answer. Waiting a fixed time instead is what
//! made these tests fail on a loaded machine; here the wait is on the
//! screen itself, under a deadline far above any real delay.

use std::io::{Read as _, Write as _};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// How long a question may take to appear before the test gives up.
const DEADLINE: Duration = Duration::from_secs(120);

#[derive(Default)]
struct Screen {
    bytes: Vec<u8>,
    closed: bool,
}

pub struct Terminal {
    child: Child,
    stdin: Option<ChildStdin>,
    screen: Arc<(Mutex<Screen>, Condvar)>,
    reader: Option<std::thread::JoinHandle<()>>,
    /// Screen offset after the last question answered: the next question
    /// is looked for after it, so a repeated question is seen again.
    cursor: usize,
}

pub struct Finished {
    pub status: ExitStatus,
    /// Everything the terminal showed (stdout and stderr of the program,
    /// and the echo of what was typed).
    pub screen: String,
}

impl Terminal {
    /// Runs `argv` (already one shell word list, as `script -c` wants it)
    /// on a pseudo-terminal; `configure` sets the environment of `script`,
    /// which the program inherits.
    pub fn spawn(command_line: &str, configure: impl FnOnce(&mut Command)) -> Terminal {
        let mut cmd = Command::new("script");
        configure(&mut cmd);
        cmd.args(["-qefc", command_line, "/dev/null"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        let mut child = cmd.spawn().expect("script runs");
        let stdin = child.stdin.take();
        let mut stdout = child.stdout.take().expect("stdout");
        let screen = Arc::new((Mutex::new(Screen::default()), Condvar::new()));
        let shared = Arc::clone(&screen);
        let reader = std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            loop {
                let n = stdout.read(&mut buf).unwrap_or(0);
                let (lock, changed) = &*shared;
                let mut s = lock.lock().expect("screen lock");
                if n == 0 {
                    s.closed = true;
                } else {
                    s.bytes.extend_from_slice(&buf[..n]);
                }
                changed.notify_all();
                if n == 0 {
                    return;
                }
            }
        });
        Terminal {
            child,
            stdin,
            screen,
            reader: Some(reader),
            cursor: 0,
        }
    }

    /// Waits until `question` appears after the last answered one, then
    /// types `answer` (a line end is added).
    pub fn answer(&mut self, question: &str, answer: &str) {
        self.wait_for(question);
        let stdin = self.stdin.as_mut().expect("the terminal is still open");
        stdin
            .write_all(format!("{answer}\n").as_bytes())
            .expect("type");
        stdin.flush().expect("flush");
    }

    /// Waits until `text` appears after the cursor and moves the cursor
    /// past it. Panics with the screen so far when the program ended or
    /// the deadline passed without it.
    pub fn wait_for(&mut self, text: &str) {
        let (lock, changed) = &*self.screen;
        let start = Instant::now();
        let mut s = lock.lock().expect("screen lock");
        loop {
            let seen = String::from_utf8_lossy(&s.bytes[self.cursor..]).into_owned();
            if let Some(at) = seen.find(text) {
                // `seen` may differ in length from the bytes where lossy
                // decoding replaced something; advance by the byte count
                // of the prefix, which is exact for valid UTF-8.
                self.cursor += seen[..at + text.len()].len();
                return;
            }
            let waited = start.elapsed();
            assert!(
                !s.closed,
                "the program ended without showing {text:?}; the screen:\n{}",
                String::from_utf8_lossy(&s.bytes)
            );
            assert!(
                waited < DEADLINE,
                "{text:?} did not appear within {DEADLINE:?}; the screen:\n{}",
                String::from_utf8_lossy(&s.bytes)
            );
            s = changed
                .wait_timeout(s, DEADLINE - waited)
                .expect("screen lock")
                .0;
        }
    }

    /// Closes the keyboard and waits for the program to end.
    pub fn finish(mut self) -> Finished {
        drop(self.stdin.take());
        let status = self.child.wait().expect("wait");
        if let Some(r) = self.reader.take() {
            r.join().expect("reader");
        }
        let s = self.screen.0.lock().expect("screen lock");
        Finished {
            status,
            screen: String::from_utf8_lossy(&s.bytes).into_owned(),
        }
    }
}
