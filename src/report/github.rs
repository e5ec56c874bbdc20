//! GitHub Actions: an `::error` workflow command per failed condition (an annotation on the
//! job and the pull request, titled with the condition's id), and a Markdown job summary
//! appended to `$GITHUB_STEP_SUMMARY`: the verdict, what failed, the boot milestones and
//! where the report folder is. On when `GITHUB_ACTIONS=true` or with `--github`.

use crate::engine::events::{Event, Reporter};
use crate::model::{Report, Status};
use std::io::Write;
use std::path::PathBuf;

pub struct GithubReporter {
    out_dir: String,
    /// Where the annotations go: stdout, unless it carries the JSON report.
    annotations_on_stderr: bool,
    summary: Option<PathBuf>,
}

impl GithubReporter {
    /// The reporter for this run, if GitHub's output is wanted.
    pub fn from_env(flag: bool, stdout_is_json: bool) -> Option<Self> {
        let on_actions = std::env::var("GITHUB_ACTIONS").is_ok_and(|v| v == "true");
        (flag || on_actions).then(|| GithubReporter {
            out_dir: String::new(),
            annotations_on_stderr: stdout_is_json,
            summary: std::env::var_os("GITHUB_STEP_SUMMARY")
                .filter(|p| !p.is_empty())
                .map(PathBuf::from),
        })
    }

    fn finish(&self, report: &Report) {
        let text = annotations(report);
        // The runner reads workflow commands on both streams; stdout may be the JSON report.
        let _ = match self.annotations_on_stderr {
            true => std::io::stderr().lock().write_all(text.as_bytes()),
            false => std::io::stdout().lock().write_all(text.as_bytes()),
        };
        if let Some(path) = &self.summary {
            let written = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .and_then(|mut f| f.write_all(summary(report, &self.out_dir).as_bytes()));
            if let Err(e) = written {
                eprintln!(
                    "bootaudit: warning: could not write the job summary to {}: {e}",
                    path.display()
                );
            }
        }
    }
}

impl Reporter for GithubReporter {
    fn event(&mut self, event: &Event<'_>) {
        match event {
            Event::RunStarted { out_dir, .. } => self.out_dir = out_dir.display().to_string(),
            Event::RunFinished(report) => self.finish(report),
            _ => {}
        }
    }
}

/// A workflow command's data: `%`, CR and LF escaped.
fn escape_data(s: &str) -> String {
    s.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// A workflow command's property: as data, and `:` and `,` too.
fn escape_property(s: &str) -> String {
    escape_data(s).replace(':', "%3A").replace(',', "%2C")
}

/// One `::error` line per failed or errored condition, root causes first.
pub fn annotations(report: &Report) -> String {
    report
        .failures_first()
        .iter()
        .map(|c| {
            let what = match c.status {
                Status::Error => "could not be judged",
                _ => "failed",
            };
            let cause = c
                .likely_cause
                .as_ref()
                .map(|k| format!(" (likely caused by {k})"))
                .unwrap_or_default();
            format!(
                "::error title={}::{}\n",
                escape_property(&format!("bootaudit: {} {what}{cause}", c.id)),
                escape_data(&c.message)
            )
        })
        .collect()
}

/// Text for a Markdown table cell: one line, with HTML and Markdown punctuation escaped, so
/// what a guest printed shows as text and cannot become markup, a link or an image.
fn cell(s: &str) -> String {
    let mut out = String::new();
    for c in crate::model::one_line(s).chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\\' | '`' | '*' | '_' | '[' | ']' | '|' | '#' | '~' | '!' | '(' | ')' => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out
}

/// A code span, where the text allows one (no backtick of its own); escaped text otherwise.
fn code(s: &str) -> String {
    match s.contains(['`', '|', '\n', '\r']) {
        true => cell(s),
        false => format!("`{s}`"),
    }
}

/// The job summary in Markdown.
pub fn summary(report: &Report, out_dir: &str) -> String {
    let icon = match report.verdict {
        crate::model::Verdict::Pass => "✅",
        crate::model::Verdict::Fail => "❌",
        _ => "⚠️",
    };
    let mut md = format!(
        "## {icon} bootaudit: {:?}\n\n{} — profile {}",
        report.verdict,
        report.tally(),
        code(&report.profile)
    );
    if let Some(iso) = &report.iso {
        md.push_str(&format!(", image {}", code(&iso.path)));
    }
    if let Some(a) = &report.accel {
        md.push_str(&format!(", accel {a}"));
    }
    if let Some(reason) = &report.verdict_reason {
        md.push_str(&format!("\n\n{}", cell(reason)));
    }
    md.push_str("\n\n");
    let failed = report.failures_first();
    if !failed.is_empty() {
        md.push_str("| condition | status | cause | message |\n|---|---|---|---|\n");
        for c in failed {
            md.push_str(&format!(
                "| {} | {} | {} | {} |\n",
                code(&c.id),
                c.status,
                c.likely_cause
                    .as_deref()
                    .map(code)
                    .unwrap_or_else(|| "root cause".into()),
                cell(&c.message)
            ));
        }
        md.push('\n');
    }
    if let Some(line) = report
        .timeline
        .as_ref()
        .and_then(crate::timeline::summary_line)
    {
        md.push_str(&format!("**Boot:** {}\n\n", cell(&line)));
    }
    if !out_dir.is_empty() {
        md.push_str(&format!(
            "Report folder: {} (report.html, junit.xml, serial.log, conditions/); upload it as an artifact to keep it.\n\n",
            code(out_dir)
        ));
    }
    md
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_guest_message_stays_text_in_the_summary() {
        assert_eq!(
            cell("<img src=x> [a](http://x) `c` |"),
            "&lt;img src=x&gt; \\[a\\]\\(http://x\\) \\`c\\` \\|"
        );
        assert_eq!(code("a`b"), "a\\`b");
        assert_eq!(code("audit-report"), "`audit-report`");
    }

    #[test]
    fn escapes_workflow_commands() {
        assert_eq!(escape_data("50%\nnext\r"), "50%25%0Anext%0D");
        assert_eq!(escape_property("a: b, c"), "a%3A b%2C c");
    }
}
