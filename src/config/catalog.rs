//! The condition catalog: what each condition is, what it needs first, and how it is checked.
//! `builtin` conditions are implemented in code (the host, virt and iso phases and the console
//! dialogues); `probe` and `watch` conditions are pure data: a command to run in the guest and
//! the patterns that judge its output, or a pattern to see on the console.
//!
//! The YAML is flat (no nested `probe:` map) so that serde keeps exact error positions; the
//! fields that belong to a kind are checked in [`ConditionDef::check`].

use super::builtin::Builtin;
use super::pattern::PatternSrc;
use super::units::Span;
use crate::model::Phase;
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Catalog {
    /// None in a catalog that only brings signatures or milestones.
    #[serde(default)]
    pub conditions: Vec<ConditionDef>,
    /// Diagnostics its conditions name; a profile's own of the same name win.
    #[serde(default)]
    pub diagnostics: std::collections::BTreeMap<String, super::profile::Diagnostic>,
    /// Signatures that go with its conditions (a panic, emergency mode, CPU stalls), added to
    /// the profile's; a profile's signature of the same name wins.
    #[serde(default)]
    pub failure_signatures: Vec<super::profile::Signature>,
    #[serde(default)]
    pub stall_signatures: Vec<super::profile::StallSignature>,
    /// Boot milestones, added to the profile's (a profile's of the same name wins).
    #[serde(default)]
    pub milestones: Vec<super::profile::MilestoneDef>,
    /// The guest's own boot analysis, unless the profile has one.
    #[serde(default)]
    pub boot_analysis: Option<super::profile::BootAnalysis>,
}

fn boot_phase() -> Phase {
    Phase::Boot
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckKind {
    /// Implemented in code: `builtin:` names the kind.
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
    /// As written; default: the kind's own phase (a builtin's, or boot for a probe or watch).
    #[serde(rename = "phase", default)]
    pub phase_written: Option<Phase>,
    /// The phase it runs in (set when loading, from `phase_written` or the kind).
    #[serde(skip, default = "boot_phase")]
    pub phase: Phase,
    /// One line: the condition passes when …
    pub passes_when: String,
    /// What the harness cannot judge this condition without (a probe needs a shell, a root
    /// probe root): a failed one skips this one, naming it in `blocked_by`.
    #[serde(default)]
    pub requires: Vec<String>,
    /// Earlier conditions whose failure would explain this one's: this one is judged anyway,
    /// and its failure names the failed one as its likely cause.
    #[serde(default)]
    pub explained_by: Vec<String>,
    /// Earlier conditions this one can only pass after (the image shows it only once they
    /// hold): when one failed, this one is judged on what the guest shows at once, without
    /// waiting, and a failure names it as the likely cause.
    #[serde(default)]
    pub follows: Vec<String>,
    pub check: CheckKind,
    /// For `check: builtin`: which check implemented in code (src/config/builtin.rs).
    pub builtin: Option<String>,
    /// A probe that, when it passes, proves the harness reached root (`id -u` = 0 through the
    /// profile's escalation): later root commands and diagnostics run as root.
    #[serde(default)]
    pub grants_root: bool,
    /// Default wait for boot conditions, before TCG and --timeout-scale scaling.
    pub timeout: Option<Span>,
    /// What to do when it fails: appended to the failure message.
    pub hint: Option<String>,
    /// Names of the profile's diagnostics to collect when this condition fails.
    #[serde(default)]
    pub diagnostics: Vec<String>,

    // probe fields
    /// Shell command; `{var}` placeholders come from the profile's `vars`.
    #[serde(default, deserialize_with = "super::scalar::optional_text")]
    pub run: Option<String>,
    #[serde(default)]
    pub run_as: RunAs,
    /// Every pattern must match the output for a pass.
    #[serde(default)]
    pub pass: Vec<PatternSrc>,
    /// Any of these means the state will never come: fail at once, quoting the match.
    #[serde(default)]
    pub fail_fast: Vec<PatternSrc>,
    /// States from which the pass state cannot follow, each with why it is final: when every
    /// pattern of one matches (and the pass patterns do not), fail at once.
    #[serde(default)]
    pub final_states: Vec<FinalState>,
    /// Required exit code (none: any).
    pub exit_code: Option<i32>,
    /// Re-run every `poll` until it passes or the timeout ends (state that settles over time).
    pub poll: Option<Span>,
    /// Capture group 1 of this pattern is the evidence (default: the output's lines).
    pub evidence: Option<PatternSrc>,

    /// The catalog file it comes from (set when loading).
    #[serde(skip)]
    pub source: String,
    /// Its place in that file's `conditions:` list (set when loading, to locate errors).
    #[serde(skip)]
    pub index: usize,

    /// How a log captured by another harness shows this probe (`bootaudit replay`).
    #[serde(default)]
    pub replay: Vec<ReplayForm>,

    // watch fields
    pub pattern: Option<PatternSrc>,
}

impl CheckKind {
    pub fn name(self) -> &'static str {
        match self {
            CheckKind::Builtin => "builtin",
            CheckKind::Probe => "probe",
            CheckKind::Watch => "watch",
        }
    }

    /// The phases a check of this kind can run in, and why only those; `None` for a builtin,
    /// whose kind has its own phase (src/config/builtin.rs). A probe needs the guest's shell,
    /// a watch its console: only the boot phase has a guest (src/engine/phases/).
    pub fn runs_only_in(self) -> Option<(Phase, &'static str)> {
        match self {
            CheckKind::Builtin => None,
            CheckKind::Probe => Some((Phase::Boot, "runs a command in the guest's shell")),
            CheckKind::Watch => Some((Phase::Boot, "reads the guest's console")),
        }
    }
}

/// A state a probe's output shows from which its pass state cannot follow.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FinalState {
    /// Every pattern must match the output.
    pub when: Vec<PatternSrc>,
    /// Why the state is final, for the failure message.
    pub why: String,
    /// On how many checks in a row it must show (default 1): a state that a restart or a
    /// link's bring-up passes through for an instant is final only once it stays.
    pub in_a_row: Option<u32>,
}

/// One way a foreign log (another harness's transcript, no bootaudit frames) can show a probe:
/// which command, what its output must look like, and how to put that output in the live
/// probe's words so the condition's own judge decides. Semantics in docs/replay.md.
///
/// Patterns here match a whole line or command (they are anchored); `{var}` is a profile
/// variable; in `each_line` and `judge_as`, `{name}` is a named capture first.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplayForm {
    /// The command, after the reader took off what does not change its output (`sudo`,
    /// `VAR=value`, `sh -c '…'`, `2>/dev/null`, `2>&1`, `|| true`, `| cat`, a final `;`).
    pub command: Option<PatternSrc>,
    /// Instead of a command, something the reader itself recognises in the dialogue.
    pub from: Option<ReaderEvidence>,
    /// Instead of a command, a line anywhere in the log that shows the state by itself (a
    /// service's own announcement, a journal line); only `judge_as` and `log_shows` apply.
    pub console: Option<PatternSrc>,
    /// Who must have run the command for the output to count.
    #[serde(default)]
    pub ran_as: RanAs,
    /// Any output line matching one of these makes the exchange no observation.
    #[serde(default)]
    pub reject: Vec<PatternSrc>,
    /// Output lines set aside before the shape is checked (headings, warnings).
    #[serde(default)]
    pub ignore: Vec<PatternSrc>,
    /// The output starts at the first line matching this; lines before it belong to other
    /// commands (typed-ahead echoes). For outputs that name what they are about (a status
    /// block's heading).
    pub block_start: Option<PatternSrc>,
    /// With `block_start`: the block ends before the first later line matching this (the next
    /// link's or unit's heading).
    pub block_end: Option<PatternSrc>,
    /// The first output line must match.
    pub first_line: Option<PatternSrc>,
    /// Every output line must match (the output's shape).
    pub lines: Option<PatternSrc>,
    /// Each must match some output line; named captures feed `judge_as`.
    #[serde(default)]
    pub find: Vec<PatternSrc>,
    /// At most this many output lines.
    pub max_lines: Option<usize>,
    /// An empty output is an observation too (a file that is still empty).
    #[serde(default)]
    pub empty: bool,
    /// Each output line rewritten (captures of `lines`), e.g. `  {lv} {vg}`.
    pub each_line: Option<String>,
    /// The judge's input made from the captures, e.g. `ActiveState={state}`.
    pub judge_as: Option<String>,
    /// The form counts only in a log with a line matching this (unanchored), e.g. proof that a
    /// unit is loaded where `systemctl is-active` would print `inactive` for a missing one too.
    pub log_shows: Option<PatternSrc>,
}

/// Evidence the foreign-log reader finds in the dialogue itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReaderEvidence {
    /// `sudo -i` / `sudo su -` / `su -` and what followed: a root prompt or uid (`0`, or the
    /// uid shown), or the refusal (a password prompt, "not in the sudoers file").
    Escalation,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RanAs {
    /// Whoever ran it.
    #[default]
    Anyone,
    /// Root: typed with `sudo`, or in a shell the log shows to be root.
    Root,
    /// Typed with `sudo` (a root shell does not count: the condition is about sudo itself).
    Sudo,
}

impl ReplayForm {
    /// What is inconsistent about the fields.
    pub fn check(&self) -> Result<(), String> {
        let output_fields = self.lines.is_some()
            || self.block_start.is_some()
            || self.block_end.is_some()
            || self.first_line.is_some()
            || !self.find.is_empty()
            || !self.ignore.is_empty()
            || !self.reject.is_empty()
            || self.each_line.is_some()
            || self.max_lines.is_some()
            || self.empty
            || self.ran_as != RanAs::Anyone;
        match (&self.command, self.from, &self.console) {
            (Some(_), None, None) => {}
            (None, Some(_), None)
                if output_fields || self.judge_as.is_some() || self.log_shows.is_some() =>
            {
                return Err("`from` takes no output fields: the reader knows the output".into())
            }
            (None, None, Some(_)) if output_fields => return Err(
                "a `console` form takes only `judge_as` and `log_shows`: the line is the output"
                    .into(),
            ),
            (None, Some(_), None) | (None, None, Some(_)) => {}
            (None, None, None) => {
                return Err("a replay form needs `command`, `console` or `from: escalation`".into())
            }
            _ => {
                return Err(
                    "a replay form takes one of `command`, `console` and `from`, not both".into(),
                )
            }
        }
        if self.each_line.is_some() && self.lines.is_none() {
            return Err(
                "`each_line` rewrites with the captures of `lines`: give `lines` too".into(),
            );
        }
        if self.block_end.is_some() && self.block_start.is_none() {
            return Err("`block_end` ends a block: give `block_start` too".into());
        }
        if self.each_line.is_some() && self.judge_as.is_some() {
            return Err("use `each_line` or `judge_as`, not both".into());
        }
        Ok(())
    }

    /// Every pattern of the form.
    pub fn patterns(&self) -> impl Iterator<Item = &PatternSrc> {
        self.command
            .iter()
            .chain(&self.console)
            .chain(&self.reject)
            .chain(&self.ignore)
            .chain(&self.block_start)
            .chain(&self.block_end)
            .chain(&self.first_line)
            .chain(&self.lines)
            .chain(&self.find)
            .chain(&self.log_shows)
    }

    /// The capture names a template may use.
    pub fn capture_names(&self) -> Vec<String> {
        let mut names = Vec::new();
        for p in self
            .command
            .iter()
            .chain(&self.console)
            .chain(&self.block_start)
            .chain(&self.first_line)
            .chain(&self.lines)
            .chain(&self.find)
        {
            names.extend(p.group_names());
        }
        names
    }
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
    Builtin(Builtin),
    Probe(ProbeDef<'a>),
    Watch { pattern: &'a PatternSrc },
}

#[derive(Debug, Clone)]
pub struct ProbeDef<'a> {
    pub run: &'a str,
    pub run_as: RunAs,
    pub grants_root: bool,
    pub pass: &'a [PatternSrc],
    pub fail_fast: &'a [PatternSrc],
    pub final_states: &'a [FinalState],
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
            || !self.final_states.is_empty()
            || self.exit_code.is_some()
            || self.poll.is_some()
            || self.evidence.is_some()
            || self.run_as != RunAs::User
            || self.grants_root
            || !self.replay.is_empty();
        match self.check {
            CheckKind::Builtin if probe_fields || self.pattern.is_some() => {
                Err("a builtin check takes no run/pass/fail_fast/final_states/exit_code/poll/evidence/replay/pattern fields".into())
            }
            CheckKind::Builtin => match &self.builtin {
                Some(kind) => Builtin::resolve(kind, self.phase).map(CheckDef::Builtin),
                None => Err(format!(
                    "a builtin check needs `builtin: KIND` (kinds of the {} phase: {})",
                    self.phase,
                    Builtin::ALL
                        .iter()
                        .filter(|b| b.phase() == self.phase)
                        .map(|b| b.kind())
                        .collect::<Vec<_>>()
                        .join(", ")
                )),
            },
            _ if self.builtin.is_some() => Err("`builtin:` belongs to `check: builtin`".into()),
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
                for form in &self.replay {
                    form.check()?;
                }
                if let Some(f) = self.final_states.iter().find(|f| f.when.is_empty()) {
                    return Err(format!("the final state `{}` needs `when` patterns", f.why));
                }
                if let Some(f) = self
                    .final_states
                    .iter()
                    .find(|f| f.in_a_row.unwrap_or(1) > 1 && self.poll.is_none())
                {
                    return Err(format!(
                        "the final state `{}` must show on several checks in a row (`in_a_row`): give the probe a `poll`",
                        f.why
                    ));
                }
                if self.grants_root && self.run_as != RunAs::Root {
                    return Err("`grants_root` proves root through the escalation: give it `run_as: root`".into());
                }
                Ok(CheckDef::Probe(ProbeDef {
                    run,
                    run_as: self.run_as,
                    grants_root: self.grants_root,
                    pass: &self.pass,
                    fail_fast: &self.fail_fast,
                    final_states: &self.final_states,
                    exit_code: self.exit_code,
                    poll: self.poll,
                    evidence: self.evidence.as_ref(),
                }))
            }
        }
    }
}
