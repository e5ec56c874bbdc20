//! The condition catalog: what each condition is, what it needs first, and how it is checked.
//! `builtin` conditions are implemented in code (the host, virt and iso phases and the console
//! dialogues); `probe` and `watch` conditions are pure data: a command to run in the guest and
//! the patterns that judge its output, or a pattern to see on the console.
//!
//! The YAML is flat (no nested `probe:` map) so that serde keeps exact error positions; the
//! fields that belong to a kind are checked in [`ConditionDef::check`].

use super::pattern::PatternSrc;
use super::units::Span;
use crate::model::Phase;
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Catalog {
    pub conditions: Vec<ConditionDef>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckKind {
    /// Implemented in code, looked up by condition id.
    Builtin,
    /// Run a command in the guest shell and judge its output.
    Probe,
    /// Look for a pattern anywhere in the console output since boot.
    Watch,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConditionDef {
    pub id: String,
    pub phase: Phase,
    /// One line: the condition passes when …
    pub passes_when: String,
    #[serde(default)]
    pub requires: Vec<String>,
    pub check: CheckKind,
    /// Default wait for boot conditions, before TCG and --timeout-scale scaling.
    pub timeout: Option<Span>,
    /// What to do when it fails: appended to the failure message.
    pub hint: Option<String>,
    /// Names of the profile's diagnostics to collect when this condition fails.
    #[serde(default)]
    pub diagnostics: Vec<String>,

    // probe fields
    /// Shell command; `{var}` placeholders come from the profile's `vars`.
    pub run: Option<String>,
    #[serde(default)]
    pub run_as: RunAs,
    /// Every pattern must match the output for a pass.
    #[serde(default)]
    pub pass: Vec<PatternSrc>,
    /// Any of these means the state will never come: fail at once, quoting the match.
    #[serde(default)]
    pub fail_fast: Vec<PatternSrc>,
    /// Required exit code (none: any).
    pub exit_code: Option<i32>,
    /// Re-run every `poll` until it passes or the timeout ends (state that settles over time).
    pub poll: Option<Span>,
    /// Capture group 1 of this pattern is the evidence (default: the output's lines).
    pub evidence: Option<PatternSrc>,

    // watch fields
    pub pattern: Option<PatternSrc>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunAs {
    #[default]
    User,
    Root,
}

/// The kind-specific part of a condition, checked for consistency.
#[derive(Debug, Clone)]
pub enum CheckDef<'a> {
    Builtin,
    Probe(ProbeDef<'a>),
    Watch { pattern: &'a PatternSrc },
}

#[derive(Debug, Clone)]
pub struct ProbeDef<'a> {
    pub run: &'a str,
    pub run_as: RunAs,
    pub pass: &'a [PatternSrc],
    pub fail_fast: &'a [PatternSrc],
    pub exit_code: Option<i32>,
    pub poll: Option<Span>,
    pub evidence: Option<&'a PatternSrc>,
}

impl ConditionDef {
    /// `passes_when` with the profile's vars filled in, for messages and listings.
    pub fn describe(&self, vars: &std::collections::BTreeMap<String, String>) -> String {
        super::pattern::fill(&self.passes_when, vars, |v| v.to_string())
            .unwrap_or_else(|_| self.passes_when.clone())
    }

    /// The typed check, or what is inconsistent about the fields.
    pub fn check(&self) -> Result<CheckDef<'_>, String> {
        let probe_fields = self.run.is_some()
            || !self.pass.is_empty()
            || !self.fail_fast.is_empty()
            || self.exit_code.is_some()
            || self.poll.is_some()
            || self.evidence.is_some()
            || self.run_as != RunAs::User;
        match self.check {
            CheckKind::Builtin if probe_fields || self.pattern.is_some() => {
                Err("a builtin check takes no run/pass/fail_fast/exit_code/poll/evidence/pattern fields".into())
            }
            CheckKind::Builtin => Ok(CheckDef::Builtin),
            CheckKind::Watch => match (&self.pattern, probe_fields) {
                (Some(pattern), false) => Ok(CheckDef::Watch { pattern }),
                (None, _) => Err("a watch check needs `pattern`".into()),
                (Some(_), true) => Err("a watch check takes only `pattern` (no probe fields)".into()),
            },
            CheckKind::Probe => {
                let run = self.run.as_deref().ok_or("a probe check needs `run`")?;
                if self.pattern.is_some() {
                    return Err("a probe check takes `pass`, not `pattern`".into());
                }
                if self.pass.is_empty() && self.exit_code.is_none() {
                    return Err("a probe needs `pass` patterns or an `exit_code`: otherwise it could never fail".into());
                }
                Ok(CheckDef::Probe(ProbeDef {
                    run,
                    run_as: self.run_as,
                    pass: &self.pass,
                    fail_fast: &self.fail_fast,
                    exit_code: self.exit_code,
                    poll: self.poll,
                    evidence: self.evidence.as_ref(),
                }))
            }
        }
    }
}
