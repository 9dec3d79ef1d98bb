//! Progress on stderr for long commands (`demo`, `dead-letters replay`): a bar redrawn in place on a terminal,
//! plain lines at most every few seconds otherwise (CI logs, pipes), so logs stay readable either way.

use std::io::{IsTerminal as _, Write as _};
use std::time::{Duration, Instant};

/// How often a plain (non-terminal) progress line is printed.
const PLAIN_EVERY: Duration = Duration::from_secs(3);
/// Width of the bar in characters.
const BAR: usize = 24;

/// One progress display.
#[derive(Debug)]
pub struct Progress {
    label: String,
    tty: bool,
    last_line: Option<Instant>,
    drawn: bool,
}

impl Progress {
    /// A display for `label`; a bar when stderr is a terminal.
    pub fn new(label: &str) -> Self {
        Self { label: label.to_owned(), tty: std::io::stderr().is_terminal(), last_line: None, drawn: false }
    }

    /// The text of one update: `label [#####.....] done/total detail`.
    pub fn line(label: &str, done: u64, total: u64, detail: &str) -> String {
        let filled =
            (done.min(total) * BAR as u64).checked_div(total).map_or(BAR, |f| usize::try_from(f).unwrap_or(BAR));
        let bar: String = "#".repeat(filled) + &".".repeat(BAR - filled);
        format!("{label} [{bar}] {done}/{total} {detail}")
    }

    /// Shows `done` of `total`, with `detail` after the bar.
    pub fn set(&mut self, done: u64, total: u64, detail: &str) {
        let text = Self::line(&self.label, done, total, detail);
        let mut err = std::io::stderr().lock();
        if self.tty {
            let _ = write!(err, "\r\x1b[2K{text}");
            let _ = err.flush();
            self.drawn = true;
        } else if self.last_line.is_none_or(|t| t.elapsed() >= PLAIN_EVERY) {
            let _ = writeln!(err, "{text}");
            self.last_line = Some(Instant::now());
        }
    }

    /// Shows the final state on its own line.
    pub fn finish(&mut self, done: u64, total: u64, detail: &str) {
        let text = Self::line(&self.label, done, total, detail);
        let mut err = std::io::stderr().lock();
        if self.tty && self.drawn {
            let _ = writeln!(err, "\r\x1b[2K{text}");
        } else {
            let _ = writeln!(err, "{text}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bar_fills_in_proportion_and_never_overflows() {
        assert_eq!(Progress::line("x", 0, 10, ""), format!("x [{}] 0/10 ", ".".repeat(BAR)));
        assert_eq!(Progress::line("x", 5, 10, "d"), format!("x [{}{}] 5/10 d", "#".repeat(12), ".".repeat(12)));
        assert_eq!(Progress::line("x", 12, 10, ""), format!("x [{}] 12/10 ", "#".repeat(BAR)));
        assert_eq!(Progress::line("x", 0, 0, ""), format!("x [{}] 0/0 ", "#".repeat(BAR)));
    }
}
