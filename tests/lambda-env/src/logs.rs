//! The environment's log stream: every line the runtime and the extensions print, plus the platform's own lines
//! (`INIT_START`, `START`, `END`, `REPORT`), as CloudWatch would receive them from Lambda.
//!
//! Each line is tagged with its source and with the lifecycle phase it was read in, so a test can ask "did the
//! extension serve this during init?" rather than guess from timing. The book is bounded, so a long `make run`
//! does not grow without limit.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

/// Lines kept; older ones are dropped first.
const MAX_LINES: usize = 100_000;

/// The source name of the platform's own lines.
pub const PLATFORM: &str = "lambda";

/// One log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    /// When it was read.
    pub at: SystemTime,
    /// `lambda` for the platform, `runtime` for the function, or the extension's file name.
    pub source: String,
    /// The phase it was read in: `init`, `idle`, `invoke`, `shutdown` or `stopped`. Lines are read as they come, so
    /// one written just before a phase ended may carry the next phase's tag.
    pub phase: &'static str,
    /// The line, without its newline.
    pub text: String,
}

#[derive(Debug, Default)]
struct Book {
    lines: VecDeque<LogLine>,
    phase: &'static str,
}

/// The shared, bounded log book; cheap to clone.
#[derive(Debug, Clone)]
pub struct LogBook {
    inner: Arc<Mutex<Book>>,
    echo: bool,
}

impl LogBook {
    /// A new book; with `echo`, every line is also written to stderr as `source | text`.
    pub fn new(echo: bool) -> Self {
        Self {
            inner: Arc::new(Mutex::new(Book {
                lines: VecDeque::new(),
                phase: "init",
            })),
            echo,
        }
    }

    fn book(&self) -> std::sync::MutexGuard<'_, Book> {
        // A panic while holding the lock cannot leave a half-written line behind, so the data is still good.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sets the phase that following lines are tagged with.
    pub fn set_phase(&self, phase: &'static str) {
        self.book().phase = phase;
    }

    /// Appends a line from `source`.
    pub fn push(&self, source: &str, text: &str) {
        if self.echo {
            eprintln!("{source:>12} | {text}");
        }
        let mut book = self.book();
        let phase = book.phase;
        if book.lines.len() >= MAX_LINES {
            book.lines.pop_front();
        }
        book.lines.push_back(LogLine {
            at: SystemTime::now(),
            source: source.to_owned(),
            phase,
            text: text.to_owned(),
        });
    }

    /// A copy of every line kept.
    pub fn lines(&self) -> Vec<LogLine> {
        self.book().lines.iter().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_carry_the_phase_they_were_read_in() {
        let book = LogBook::new(false);
        book.push("ext", "a");
        book.set_phase("invoke");
        book.push("runtime", "b");
        let lines = book.lines();
        assert_eq!(
            lines
                .iter()
                .map(|l| (l.phase, l.text.as_str()))
                .collect::<Vec<_>>(),
            [("init", "a"), ("invoke", "b")]
        );
    }
}
