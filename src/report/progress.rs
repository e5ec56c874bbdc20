//! The terminal display on stderr: one line per finished condition, a spinner with the
//! elapsed time for the running one (on a terminal only), and the summary.

use crate::engine::events::{Event, Reporter};
use crate::model::Status;
use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::time::Duration;

pub struct ProgressReporter {
    spinner: Option<ProgressBar>,
    tty: bool,
    /// Colour on a terminal, unless NO_COLOR is set (https://no-color.org).
    colour: bool,
    out_dir: String,
}

impl Default for ProgressReporter {
    fn default() -> Self {
        Self::new()
    }
}

impl ProgressReporter {
    pub fn new() -> Self {
        let tty = std::io::stderr().is_terminal();
        ProgressReporter {
            spinner: None,
            tty,
            colour: tty && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()),
            out_dir: String::new(),
        }
    }

    fn line(&self, text: &str) {
        match &self.spinner {
            Some(s) => s.suspend(|| eprintln!("{text}")),
            None => eprintln!("{text}"),
        }
    }

    fn paint(&self, status: Status) -> String {
        let (label, colour) = match status {
            Status::Pass => ("PASS", "32"),
            Status::Fail => ("FAIL", "31"),
            Status::Skip => ("SKIP", "33"),
            Status::Error => ("ERR ", "35"),
        };
        if self.colour {
            format!("\x1b[{colour}m{label}\x1b[0m")
        } else {
            label.to_string()
        }
    }
}

impl Reporter for ProgressReporter {
    fn event(&mut self, event: &Event<'_>) {
        match event {
            Event::RunStarted { profile, out_dir } => {
                self.out_dir = out_dir.display().to_string();
                self.line(&format!(
                    "bootaudit: profile {profile}, report in {}",
                    self.out_dir
                ));
            }
            Event::PhaseStarted(p) => self.line(&format!("── {p}")),
            Event::Note(n) => self.line(&format!("   note: {n}")),
            Event::ConditionStarted { id, phase, .. } if self.tty => {
                let s = ProgressBar::new_spinner();
                s.set_style(
                    ProgressStyle::with_template("   {spinner} {prefix} {msg} [{elapsed}]")
                        .expect("static template"),
                );
                s.set_prefix(format!("{phase}: {id}"));
                s.enable_steady_tick(Duration::from_millis(250));
                self.spinner = Some(s);
            }
            Event::Progress { detail, .. } => {
                if let Some(s) = &self.spinner {
                    s.set_message(detail.to_string());
                }
            }
            Event::ConditionFinished(c) => {
                if let Some(s) = self.spinner.take() {
                    s.finish_and_clear();
                }
                let mut text = format!(
                    "   {} {:<26} {:>6.1}s  {}",
                    self.paint(c.status),
                    c.id,
                    c.duration_ms as f64 / 1000.0,
                    c.message
                );
                for w in &c.warnings {
                    text.push_str(&format!("\n          warning: {w}"));
                }
                self.line(&text);
            }
            Event::RunFinished(report) => {
                self.line(&format!(
                    "bootaudit: {:?} — {}; report: {}",
                    report.verdict,
                    report.tally(),
                    self.out_dir
                ));
                if let Some(reason) = &report.verdict_reason {
                    self.line(&format!("   {reason}"));
                }
                if let Some(line) = report
                    .timeline
                    .as_ref()
                    .and_then(crate::timeline::summary_line)
                {
                    self.line(&format!("   boot: {line}"));
                }
                // What to fix first: the failures nothing else explains, then their effects.
                for c in report.failures_first() {
                    let label = match &c.likely_cause {
                        None => "root cause".to_string(),
                        Some(cause) => format!("caused by {cause}"),
                    };
                    self.line(&format!("   {} {:<26} {label}", self.paint(c.status), c.id));
                }
            }
            _ => {}
        }
    }
}
