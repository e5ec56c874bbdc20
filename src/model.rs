//! The machine-readable result types of SPEC.md (`report.json`). Stable names: change only with a
//! changelog note.

use serde::{Deserialize, Serialize};
use std::fmt;

/// The audit phases, in the order they run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    Host,
    Virt,
    Iso,
    Boot,
}

impl Phase {
    pub const ALL: [Phase; 4] = [Phase::Host, Phase::Virt, Phase::Iso, Phase::Boot];

    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Host => "host",
            Phase::Virt => "virt",
            Phase::Iso => "iso",
            Phase::Boot => "boot",
        }
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How one condition ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pass,
    Fail,
    Skip,
    /// The harness could not judge the condition (not the image's fault).
    Error,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pass => "pass",
            Status::Fail => "fail",
            Status::Skip => "skip",
            Status::Error => "error",
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The overall verdict of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Pass,
    Fail,
    Error,
    /// Nothing failed, but something that should have been judged was not.
    Incomplete,
    Interrupted,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Fail => "fail",
            Verdict::Error => "error",
            Verdict::Incomplete => "incomplete",
            Verdict::Interrupted => "interrupted",
        }
    }

    pub fn exit_code(self) -> i32 {
        match self {
            Verdict::Pass => crate::exit_codes::PASS,
            Verdict::Fail => crate::exit_codes::FAILED,
            Verdict::Error => crate::exit_codes::HARNESS,
            Verdict::Incomplete => crate::exit_codes::INCOMPLETE,
            Verdict::Interrupted => crate::exit_codes::INTERRUPTED,
        }
    }
}

/// What a judge or a check decided about one condition, before timing is attached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub status: Status,
    /// One line a person understands: what was seen and, on failure, what to do.
    pub message: String,
    /// The matched text or observed value that proves the status.
    pub evidence: String,
    pub blocked_by: Option<String>,
    /// Pass with a caveat (e.g. ttyS0 is a console but not the last one).
    pub warnings: Vec<String>,
    pub skip_kind: SkipKind,
    /// The failure has its own explanation (a failure signature's line): the condition's
    /// generic hint would mislead.
    pub suppress_hint: bool,
    /// Replay: the line of the log where the evidence is.
    pub log_line: Option<u64>,
    /// A failure only because the wait ran out (no line showed it): on a guest starved of CPU
    /// it says nothing of the image.
    pub timed_out: bool,
    /// A root cause by itself (it saw the guest die: a panic, emergency mode): no earlier
    /// failure explains it, whatever the catalog says.
    pub root_cause: bool,
}

/// What a skip means for the verdict and for dependents.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SkipKind {
    /// Should have been judged and was not (blocked, interrupted, not observed): counts
    /// against the run unless the profile allows it, and blocks dependents.
    #[default]
    Counts,
    /// Does not apply to this run (no tap networking): neither counts nor blocks.
    NotApplicable,
    /// Left out by the user (--only/--skip): does not count, but blocks dependents.
    Deselected,
}

impl Outcome {
    fn new(status: Status, message: impl Into<String>, evidence: impl Into<String>) -> Self {
        Outcome {
            status,
            message: one_line(&message.into()),
            evidence: evidence.into(),
            blocked_by: None,
            warnings: Vec::new(),
            skip_kind: SkipKind::Counts,
            suppress_hint: false,
            log_line: None,
            timed_out: false,
            root_cause: false,
        }
    }
    pub fn pass(message: impl Into<String>, evidence: impl Into<String>) -> Self {
        Self::new(Status::Pass, message, evidence)
    }
    pub fn fail(message: impl Into<String>, evidence: impl Into<String>) -> Self {
        Self::new(Status::Fail, message, evidence)
    }
    /// A failure because the time ran out before the condition was met.
    pub fn timed_out(message: impl Into<String>, evidence: impl Into<String>) -> Self {
        let mut o = Self::new(Status::Fail, message, evidence);
        o.timed_out = true;
        o
    }
    pub fn error(message: impl Into<String>) -> Self {
        Self::new(Status::Error, message, "")
    }
    /// A skip because the condition does not apply to this run; it never fails the run.
    pub fn not_applicable(message: impl Into<String>) -> Self {
        let mut o = Self::new(Status::Skip, message, "");
        o.skip_kind = SkipKind::NotApplicable;
        o
    }
    /// A skip of a condition no input of this kind can show (replay of a foreign log, a probe
    /// the catalog gives no `replay:` form): it says nothing of the image or the log, so, like
    /// one that does not apply, it neither counts nor blocks — what needs it is judged on its
    /// own evidence.
    pub fn out_of_reach(message: impl Into<String>) -> Self {
        Self::not_applicable(message)
    }
    /// A skip because the user left the condition out.
    pub fn deselected(message: impl Into<String>) -> Self {
        let mut o = Self::new(Status::Skip, message, "");
        o.skip_kind = SkipKind::Deselected;
        o
    }
    /// A skip that does count: the condition should have been judged but could not be.
    pub fn skip(message: impl Into<String>) -> Self {
        Self::new(Status::Skip, message, "")
    }
    pub fn blocked(by: &str, by_status: Status) -> Self {
        let mut o = Self::new(
            Status::Skip,
            format!("blocked: prerequisite {by} did not pass ({by_status})"),
            "",
        );
        o.blocked_by = Some(by.to_string());
        o
    }
    pub fn with_warning(mut self, warning: impl Into<String>) -> Self {
        self.warnings.push(one_line(&warning.into()));
        self
    }
}

/// Collapse to one line: reports promise a one-line message.
pub fn one_line(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for (i, part) in s
        .split(['\n', '\r'])
        .filter(|p| !p.trim().is_empty())
        .enumerate()
    {
        if i > 0 {
            out.push_str(" / ");
        }
        out.push_str(part.trim());
    }
    out
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConditionReport {
    pub id: String,
    pub phase: Phase,
    pub status: Status,
    pub message: String,
    pub evidence: String,
    pub started_ms: u64,
    pub duration_ms: u64,
    /// Relative path of the condition's transcript in the report folder.
    pub transcript: Option<String>,
    pub blocked_by: Option<String>,
    /// A failure: the earlier failed condition that likely explains it (the root of the
    /// chain: the catalog's `explained_by`/`follows`, followed back).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub likely_cause: Option<String>,
    /// Replay: the line of the replayed log where the evidence is (1-based raw line number).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_line: Option<u64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// Relative paths of diagnostics collected when the condition failed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub diagnostics: Vec<String>,
    /// Internal: what a skip means for the verdict and dependents.
    #[serde(skip)]
    pub skip_kind: SkipKind,
}

impl ConditionReport {
    /// Where this result goes when the report lists root causes first: 0 a failure or error
    /// nothing else explains, 1 a failure with a likely cause, 2 the rest.
    pub fn cause_rank(&self) -> u8 {
        match (self.status, &self.likely_cause) {
            (Status::Fail | Status::Error, None) => 0,
            (Status::Fail | Status::Error, Some(_)) => 1,
            _ => 2,
        }
    }

    /// Should have been judged, was not, and the profile does not allow it.
    pub fn unjudged(&self, allowed_skips: &[String]) -> bool {
        self.status == Status::Skip
            && self.skip_kind == SkipKind::Counts
            && !allowed_skips.iter().any(|a| a == &self.id)
    }

    /// Does this result let dependent conditions run?
    pub fn satisfies_dependents(&self) -> bool {
        self.status == Status::Pass
            || (self.status == Status::Skip && self.skip_kind == SkipKind::NotApplicable)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IsoInfo {
    pub path: String,
    pub sha256: Option<String>,
    pub bytes: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub bootaudit_version: String,
    pub verdict: Verdict,
    /// Why the run is incomplete, in one line ("not judged: storage.tools (…)").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verdict_reason: Option<String>,
    pub profile: String,
    pub iso: Option<IsoInfo>,
    pub accel: Option<String>,
    pub started_at: String,
    pub duration_ms: u64,
    /// `bootaudit replay`: the log that was judged (path as given).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replayed_log: Option<String>,
    /// What booted, and how (a live run that reached the boot).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot: Option<BootInfo>,
    /// The machine bootaudit ran on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// `qemu-system-… --version`'s first line, where host.qemu ran it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qemu_version: Option<String>,
    /// The boot on the run's time axis, where the console was read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeline: Option<Timeline>,
    pub conditions: Vec<ConditionReport>,
}

/// The boot on the conditions' time axis (ms since the run started): when the guest was
/// powered on, the milestones the console showed (the profile's `milestones`, in their order,
/// each at its first line), and what the guest says of its own boot.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Timeline {
    /// When QEMU started running the guest (none in a replay).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub power_on_ms: Option<u64>,
    pub milestones: Vec<Milestone>,
    /// The profile's `boot_analysis` command's output (systemd-analyze), read once the boot
    /// conditions are judged, where a shell was there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guest: Option<GuestBootAnalysis>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Milestone {
    pub name: String,
    /// Ms since the run started; none where the log has no times (a foreign log).
    pub at_ms: Option<u64>,
    /// The console line that marks it.
    pub line: String,
    /// Replay: the log line (1-based).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_line: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GuestBootAnalysis {
    pub command: String,
    pub output: String,
    /// The slowest units, slowest first, from lines of the form `<time> <unit>`.
    pub slowest_units: Vec<UnitTime>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UnitTime {
    pub unit: String,
    pub ms: u64,
}

/// Which boot entry a run booted, and how.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BootInfo {
    /// `bios` or `uefi`.
    pub firmware: String,
    /// The entry's label as its menu shows it (none when the image has no readable config).
    pub entry: Option<String>,
    /// The config file and line it comes from (`isolinux/isolinux.cfg:8`).
    pub config: Option<String>,
    /// `menu-default` (the loader booted its default), `menu` (the harness chose it in the
    /// loader's menu) or `direct` (QEMU booted the entry's kernel and initrd itself).
    pub how: String,
    /// False in direct mode: the image's boot loader did not run.
    pub bootloader_exercised: bool,
    /// The kernel command line in direct mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cmdline: Option<String>,
}

impl Report {
    /// `N passed, N failed, N skipped, N errors in T s`: the counts every summary shows.
    pub fn tally(&self) -> String {
        let count = |s: Status| self.conditions.iter().filter(|c| c.status == s).count();
        format!(
            "{} passed, {} failed, {} skipped, {} errors in {:.1}s",
            count(Status::Pass),
            count(Status::Fail),
            count(Status::Skip),
            count(Status::Error),
            self.duration_ms as f64 / 1000.0
        )
    }

    /// The failed and errored conditions, root causes first, then what they likely caused
    /// (catalog order within each): what to fix first.
    pub fn failures_first(&self) -> Vec<&ConditionReport> {
        let mut failed: Vec<&ConditionReport> = self
            .conditions
            .iter()
            .filter(|c| c.cause_rank() < 2)
            .collect();
        failed.sort_by_key(|c| c.cause_rank());
        failed
    }

    /// The verdict the conditions imply. Interruption is decided by the caller.
    /// A proven failure outranks a condition that could not be judged (an error): it is an
    /// answer about the image, the error only about the run.
    pub fn judge_verdict(conditions: &[ConditionReport], allowed_skips: &[String]) -> Verdict {
        if conditions.iter().any(|c| c.status == Status::Fail) {
            return Verdict::Fail;
        }
        if conditions.iter().any(|c| c.status == Status::Error) {
            return Verdict::Error;
        }
        if conditions.iter().any(|c| c.unjudged(allowed_skips)) {
            Verdict::Incomplete
        } else {
            Verdict::Pass
        }
    }

    /// Why a run with these conditions is incomplete, in one line: "not judged: storage.tools
    /// (not observed in the log); 2 more blocked behind them". None if nothing is unjudged.
    pub fn incomplete_reason(
        conditions: &[ConditionReport],
        allowed_skips: &[String],
    ) -> Option<String> {
        let unjudged: Vec<&ConditionReport> = conditions
            .iter()
            .filter(|c| c.unjudged(allowed_skips))
            .collect();
        if unjudged.is_empty() {
            return None;
        }
        // Those skipped behind another unjudged one say only that: name the first ones.
        let mut roots: Vec<String> = unjudged
            .iter()
            .filter(|c| c.blocked_by.is_none())
            .map(|c| format!("{} ({})", c.id, c.message))
            .collect();
        // All of them behind something that is not itself unjudged (an allowed skip): name
        // the first with what holds it.
        if roots.is_empty() {
            roots = unjudged
                .iter()
                .take(1)
                .map(|c| format!("{} ({})", c.id, c.message))
                .collect();
        }
        let behind = unjudged.len() - roots.len();
        let mut line = format!("not judged: {}", roots.join("; "));
        if behind > 0 {
            line.push_str(&format!("; {behind} more blocked behind them"));
        }
        Some(line)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cond(id: &str, status: Status) -> ConditionReport {
        ConditionReport {
            id: id.into(),
            phase: Phase::Host,
            status,
            message: String::new(),
            evidence: String::new(),
            started_ms: 0,
            duration_ms: 0,
            transcript: None,
            blocked_by: None,
            likely_cause: None,
            log_line: None,
            warnings: vec![],
            diagnostics: vec![],
            skip_kind: SkipKind::Counts,
        }
    }

    #[test]
    fn verdict_counts_skips_unless_allowed() {
        let c = vec![cond("a", Status::Pass), cond("virt.kvm", Status::Skip)];
        // Nothing failed: incomplete, with its own reason, not "fail".
        assert_eq!(Report::judge_verdict(&c, &[]), Verdict::Incomplete);
        let mut skipped = cond("virt.kvm", Status::Skip);
        skipped.message = "not observed in the log".into();
        let mut behind = cond("virt.tun", Status::Skip);
        behind.blocked_by = Some("virt.kvm".into());
        assert_eq!(
            Report::incomplete_reason(&[skipped, behind], &[]).as_deref(),
            Some("not judged: virt.kvm (not observed in the log); 1 more blocked behind them")
        );
        // Blocked behind an allowed skip only: still a reason that names one.
        let mut held = cond("virt.tun", Status::Skip);
        held.blocked_by = Some("virt.kvm".into());
        held.message = "blocked by virt.kvm".into();
        let allowed = cond("virt.kvm", Status::Skip);
        assert_eq!(
            Report::incomplete_reason(&[allowed, held], &["virt.kvm".into()]).as_deref(),
            Some("not judged: virt.tun (blocked by virt.kvm)")
        );
        let mut deselected = cond("iso.bootable", Status::Skip);
        deselected.skip_kind = SkipKind::Deselected;
        assert_eq!(Report::judge_verdict(&[deselected], &[]), Verdict::Pass);
        assert_eq!(
            Report::judge_verdict(&c, &["virt.kvm".into()]),
            Verdict::Pass
        );
        let mut na = cond("virt.tun", Status::Skip);
        na.skip_kind = SkipKind::NotApplicable;
        assert_eq!(Report::judge_verdict(&[na], &[]), Verdict::Pass);
        // A proven failure outranks what could not be judged; an error outranks the skips it
        // blocked.
        let c = vec![cond("a", Status::Fail), cond("b", Status::Error)];
        assert_eq!(Report::judge_verdict(&c, &[]), Verdict::Fail);
        let c = vec![cond("b", Status::Error), cond("c", Status::Skip)];
        assert_eq!(Report::judge_verdict(&c, &[]), Verdict::Error);
    }

    #[test]
    fn one_line_joins_lines() {
        assert_eq!(one_line("a\r\nb\n\n c "), "a / b / c");
    }
}
