//! A step on stderr: a spinner while it runs when stderr is a terminal, one
//! plain line otherwise (logs and tests stay readable).

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub struct Step {
    message: String,
    start: Instant,
    stop: Arc<AtomicBool>,
    spinner: Option<JoinHandle<()>>,
}

impl Step {
    pub fn start(message: impl Into<String>) -> Step {
        let message = message.into();
        let stop = Arc::new(AtomicBool::new(false));
        let spinner = if std::io::stderr().is_terminal() {
            let (m, s) = (message.clone(), stop.clone());
            Some(std::thread::spawn(move || {
                const FRAMES: [char; 4] = ['|', '/', '-', '\\'];
                let mut i = 0;
                while !s.load(Ordering::Relaxed) {
                    eprint!("\r\x1b[2K{} {m}…", FRAMES[i % FRAMES.len()]);
                    let _ = std::io::stderr().flush();
                    i += 1;
                    std::thread::sleep(Duration::from_millis(120));
                }
            }))
        } else {
            eprintln!("{message}…");
            None
        };
        Step {
            message,
            start: Instant::now(),
            stop,
            spinner,
        }
    }

    /// Ends the step, showing how long it took.
    pub fn done(mut self) {
        self.finish("done");
    }

    fn finish(&mut self, word: &str) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.spinner.take() {
            let _ = h.join();
            eprintln!(
                "\r\x1b[2K  {} {word} ({:.1}s)",
                self.message,
                self.start.elapsed().as_secs_f64()
            );
        }
    }
}

impl Drop for Step {
    fn drop(&mut self) {
        if self.spinner.is_some() {
            self.finish("failed");
        }
    }
}
