//! The catalog's `replay:` forms, compiled: how a foreign log shows a probe, and how its output
//! is put in the live probe's words for the condition's own judge (docs/replay.md).

use super::foreign::{Exchange, Observation};
use crate::config::catalog::{RanAs, ReaderEvidence, ReplayForm};
use crate::config::pattern::{fill_with, PatternSrc};
use regex::{Captures, Regex};
use std::collections::BTreeMap;
use std::sync::OnceLock;

/// One compiled form of one condition.
#[derive(Debug, Clone)]
pub struct Form {
    pub from: Option<ReaderEvidence>,
    command: Option<Regex>,
    pub console: Option<Regex>,
    ran_as: RanAs,
    reject: Vec<Regex>,
    ignore: Vec<Regex>,
    block_start: Option<Regex>,
    block_end: Option<Regex>,
    first_line: Option<Regex>,
    lines: Option<Regex>,
    find: Vec<Regex>,
    max_lines: Option<usize>,
    empty: bool,
    each_line: Option<String>,
    judge_as: Option<String>,
    /// Index into the survey's `log_shows` facts.
    pub log_shows: Option<usize>,
    vars: BTreeMap<String, String>,
}

/// Compile a pattern that must match a whole line (or command).
fn anchored(p: &PatternSrc, vars: &BTreeMap<String, String>) -> Result<Regex, String> {
    PatternSrc(format!("^(?:{})$", p.0)).resolve(vars)
}

impl Form {
    /// `log_shows` patterns are collected in `facts` (one survey fact each).
    pub fn compile(
        form: &ReplayForm,
        vars: &BTreeMap<String, String>,
        facts: &mut Vec<Regex>,
    ) -> Result<Form, String> {
        let many = |ps: &[PatternSrc]| {
            ps.iter()
                .map(|p| anchored(p, vars))
                .collect::<Result<Vec<_>, _>>()
        };
        let one = |p: &Option<PatternSrc>| p.as_ref().map(|p| anchored(p, vars)).transpose();
        let log_shows = match &form.log_shows {
            Some(p) => {
                facts.push(p.resolve(vars)?);
                Some(facts.len() - 1)
            }
            None => None,
        };
        Ok(Form {
            from: form.from,
            command: one(&form.command)?,
            console: one(&form.console)?,
            ran_as: form.ran_as,
            reject: many(&form.reject)?,
            ignore: many(&form.ignore)?,
            block_start: one(&form.block_start)?,
            block_end: one(&form.block_end)?,
            first_line: one(&form.first_line)?,
            lines: one(&form.lines)?,
            find: many(&form.find)?,
            max_lines: form.max_lines,
            empty: form.empty,
            each_line: form.each_line.clone(),
            judge_as: form.judge_as.clone(),
            log_shows,
            vars: vars.clone(),
        })
    }

    /// What this exchange says for the condition, if it is this form's probe.
    pub fn observe(&self, ex: &Exchange) -> Option<Observation> {
        let cmd_caps = self.command.as_ref()?.captures(&ex.plain)?;
        let sudo = ex.sudo;
        let as_root = sudo || ex.root == Some(true);
        match self.ran_as {
            RanAs::Anyone => {}
            RanAs::Root if as_root => {}
            RanAs::Sudo if sudo => {}
            _ => return None,
        }
        if ex
            .output
            .iter()
            .any(|l| self.reject.iter().any(|r| r.is_match(l)))
        {
            return None;
        }
        let mut output: Vec<&str> = ex
            .output
            .iter()
            .map(String::as_str)
            .filter(|l| !self.ignore.iter().any(|r| r.is_match(l)))
            .collect();
        // Named captures of every pattern, for the templates (the first value of a name wins).
        let mut captured: BTreeMap<String, String> = BTreeMap::new();
        let mut keep = |re: &Regex, caps: &Captures<'_>| {
            for (name, value) in caps_map(re, caps) {
                captured.entry(name).or_insert(value);
            }
        };
        keep(self.command.as_ref()?, &cmd_caps);
        // What the messages call it: the command, or the block it found under the command.
        let mut label = ex.command.clone();
        let mut line = ex.line;
        if let Some(start) = &self.block_start {
            let at = output.iter().position(|l| start.is_match(l))?;
            output.drain(..at);
            keep(start, &start.captures(output[0])?);
            // The block ends where the next one starts (another link, another unit).
            if let Some(end) = &self.block_end {
                if let Some(n) = output.iter().skip(1).position(|l| end.is_match(l)) {
                    output.truncate(n + 1);
                }
            }
            label = format!("{}` under `{}", output[0].trim(), ex.command);
            // The block's own line, where the excerpt still has it.
            if let Some((n, _)) = ex.excerpt.iter().find(|(_, t)| t.trim_end() == output[0]) {
                line = *n;
            }
        }
        if output.is_empty() && !self.empty {
            return None;
        }
        if self.max_lines.is_some_and(|m| output.len() > m) {
            return None;
        }
        if let (Some(re), Some(first)) = (&self.first_line, output.first()) {
            keep(re, &re.captures(first)?);
        }
        let mut per_line = Vec::new();
        if let Some(re) = &self.lines {
            for line in &output {
                let caps = re.captures(line)?;
                per_line.push(caps_map(re, &caps));
                keep(re, &caps);
            }
        }
        for re in &self.find {
            let caps = output.iter().find_map(|l| re.captures(l))?;
            keep(re, &caps);
        }
        let judged = match (&self.each_line, &self.judge_as) {
            // Each line's own captures first, then the form's.
            (Some(t), _) => per_line
                .into_iter()
                .map(|mut own| {
                    for (k, v) in &captured {
                        own.entry(k.clone()).or_insert_with(|| v.clone());
                    }
                    self.fill(t, &own)
                })
                .collect::<Option<Vec<_>>>()?
                .join("\n"),
            (None, Some(t)) => self.fill(t, &captured)?,
            (None, None) => output.join("\n"),
        };
        Some(Observation {
            command: label,
            exit_code: inferred_exit(&output.join("\n")),
            output: judged,
            line,
            excerpt: ex.excerpt.clone(),
        })
    }

    /// What a log line shows by itself, for a `console` form.
    pub fn observe_line(
        &self,
        no: u64,
        line: &str,
        excerpt: Vec<(u64, String)>,
    ) -> Option<Observation> {
        let re = self.console.as_ref()?;
        let caps = re.captures(line)?;
        let output = match &self.judge_as {
            Some(t) => self.fill(t, &caps_map(re, &caps))?,
            None => line.trim().to_string(),
        };
        Some(Observation {
            command: line.trim().chars().take(100).collect(),
            output,
            exit_code: 0,
            line: no,
            excerpt,
        })
    }

    fn fill(&self, template: &str, captured: &BTreeMap<String, String>) -> Option<String> {
        fill_with(
            template,
            |n| captured.get(n).or(self.vars.get(n)).cloned(),
            |s| s.to_string(),
        )
        .ok()
    }
}

fn caps_map(re: &Regex, caps: &Captures<'_>) -> BTreeMap<String, String> {
    re.capture_names()
        .flatten()
        .filter_map(|n| {
            caps.name(n)
                .map(|m| (n.to_string(), m.as_str().to_string()))
        })
        .collect()
}

/// Logs carry no exit codes: 0 unless the output shows an error.
fn inferred_exit(output: &str) -> i32 {
    static ERR: OnceLock<Regex> = OnceLock::new();
    let err = ERR.get_or_init(|| {
        Regex::new(r"(?i)\b(error|denied|failed|not found|no such|cannot|invalid|unrecognized|not permitted)\b")
            .expect("static regex")
    });
    i32::from(err.is_match(output))
}

/// The command as a form matches it: whitespace collapsed, and what does not change its output
/// taken off — `VAR=value` and `sudo [options]` in front (reported: `true` when sudo was used),
/// one `sh -c '…'` wrapper, and `2>/dev/null`, `2>&1`, `</dev/null`, `|| true`, `| cat` and a
/// final `;` at the end.
pub fn plain_command(command: &str) -> (String, bool) {
    static PREFIX: OnceLock<Regex> = OnceLock::new();
    static WRAP: OnceLock<Regex> = OnceLock::new();
    static SUFFIX: OnceLock<Regex> = OnceLock::new();
    let prefix = PREFIX.get_or_init(|| {
        Regex::new(r"^(?:(?P<sudo>sudo(?: -[nEHSk]+| -u root| --non-interactive| --preserve-env)*) |[A-Za-z_][A-Za-z0-9_]*=\S* |env |command |exec )")
            .expect("static regex")
    });
    let wrap = WRAP.get_or_init(|| {
        Regex::new(r#"^(?:ba|da)?sh -l?c (?:'(?P<s>[^']*)'|"(?P<d>[^"]*)")$"#)
            .expect("static regex")
    });
    let suffix = SUFFIX.get_or_init(|| {
        Regex::new(r"(?: 2>/dev/null| 2>&1| </dev/null| \|\| true| \|\| :| \| cat| ?;)$")
            .expect("static regex")
    });
    let mut cmd = command.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut sudo = false;
    loop {
        let before = cmd.len();
        if let Some(c) = prefix.captures(&cmd) {
            let rest = &cmd[c[0].len()..];
            // `sudo -i`, `sudo -s`: an escalation, not a command run through sudo.
            if !rest.starts_with('-') {
                sudo |= c.name("sudo").is_some();
                cmd = rest.to_string();
            }
        }
        if let Some(c) = wrap.captures(&cmd) {
            cmd = c
                .name("s")
                .or(c.name("d"))
                .map_or("", |m| m.as_str())
                .trim()
                .to_string();
        }
        if let Some(m) = suffix.find(&cmd) {
            cmd = cmd[..m.start()].trim_end().to_string();
        }
        if cmd.len() == before {
            return (cmd, sudo);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_commands() {
        assert_eq!(
            plain_command("sudo -n sh -c 'vgs --noheadings -o vg_name'"),
            ("vgs --noheadings -o vg_name".to_string(), true)
        );
        assert_eq!(
            plain_command("SYSTEMD_PAGER=cat  systemctl is-active pre-nixos 2>/dev/null || true"),
            ("systemctl is-active pre-nixos".to_string(), false)
        );
        assert_eq!(
            plain_command("cat /run/x 2>&1 | cat;"),
            ("cat /run/x".to_string(), false)
        );
        // An escalation stays what it is.
        assert_eq!(plain_command("sudo -i"), ("sudo -i".to_string(), false));
    }
}
