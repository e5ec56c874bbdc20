//! `bootaudit compare OLD NEW`: what changed between two runs — the conditions whose verdict
//! changed (new failures first) and the boot milestones and condition times that grew beyond a
//! threshold. `compare` is pure (two reports in, a `Comparison` out); `run` loads the reports,
//! prints the comparison (human, JSON, HTML) and turns it into an exit code. See docs/compare.md.

use crate::cli::{CompareArgs, Format};
use crate::exit_codes;
use crate::model::{Phase, Report, Status, Timeline, Verdict};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;

/// When a time counts as slower: it grew by more than `slower_by_percent` of the old time AND
/// by more than `at_least_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Thresholds {
    pub slower_by_percent: f64,
    pub at_least_ms: u64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            slower_by_percent: 25.0,
            at_least_ms: 2000,
        }
    }
}

impl Thresholds {
    /// Did a time go from `old_ms` to `new_ms` beyond both thresholds?
    pub fn exceeded(&self, old_ms: u64, new_ms: u64) -> bool {
        let grew = new_ms.saturating_sub(old_ms);
        grew > self.at_least_ms && grew as f64 * 100.0 > self.slower_by_percent * old_ms as f64
    }
}

/// Two runs compared. Field names are stable (`--format json`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Comparison {
    pub old: RunSummary,
    pub new: RunSummary,
    pub verdict: VerdictChange,
    /// Anything here a regression (exit 1): a change with `regression`, a time in `slower`, or
    /// a run verdict that was pass and no longer is.
    pub regression: bool,
    pub thresholds: Thresholds,
    /// Conditions whose status changed: regressions first (new failures, then those that no
    /// longer pass), then the other changes; each group in run order.
    pub changes: Vec<StatusChange>,
    /// Times beyond the thresholds: milestones first, then conditions, in the new run's order.
    pub slower: Vec<Slower>,
    /// What the milestones were measured from; none when no milestone could be compared.
    pub milestones_from: Option<TimeBase>,
    /// What could not be compared, and why (a run without a timeline, a milestone in one run).
    pub notes: Vec<String>,
}

/// One run, as the comparison shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunSummary {
    /// The report as given on the command line (set by the caller: `compare` sees no paths).
    pub path: Option<String>,
    pub verdict: Verdict,
    pub profile: String,
    pub started_at: String,
    pub iso: Option<String>,
    pub replayed_log: Option<String>,
    pub accel: Option<String>,
    pub duration_ms: u64,
}

impl RunSummary {
    fn of(r: &Report) -> Self {
        RunSummary {
            path: None,
            verdict: r.verdict,
            profile: r.profile.clone(),
            started_at: r.started_at.clone(),
            iso: r.iso.as_ref().map(|i| i.path.clone()),
            replayed_log: r.replayed_log.clone(),
            accel: r.accel.clone(),
            duration_ms: r.duration_ms,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct VerdictChange {
    pub old: Verdict,
    pub new: Verdict,
}

/// How a condition's status changed; the order is the order of the list (after regressions
/// first).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    /// Now fail or error; before pass, skip or absent.
    NewFailure,
    /// Passed before, now skips.
    NoLongerPasses,
    /// Failed or could not be judged before, passes now.
    Fixed,
    /// Not in the old run, passes or skips in the new one.
    Appeared,
    /// In the old run, not in the new one (a regression when it passed).
    Disappeared,
    /// Any other change (fail ↔ error, skip → pass, fail → skip).
    Changed,
}

impl ChangeKind {
    fn words(self) -> &'static str {
        match self {
            ChangeKind::NewFailure => "new failure",
            ChangeKind::NoLongerPasses => "no longer passes",
            ChangeKind::Disappeared => "disappeared",
            ChangeKind::Fixed => "fixed",
            ChangeKind::Appeared => "appeared",
            ChangeKind::Changed => "changed",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StatusChange {
    pub id: String,
    pub phase: Phase,
    /// None: the condition is not in that run.
    pub old: Option<Status>,
    pub new: Option<Status>,
    pub change: ChangeKind,
    pub regression: bool,
    /// The new run's message (the old run's when the condition disappeared).
    pub message: String,
    /// The new run's likely cause of a failure.
    pub likely_cause: Option<String>,
}

/// What milestones are measured from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TimeBase {
    /// `timeline.power_on_ms` of each run: the host checks before the boot do not count.
    PowerOn,
    /// The run's start (one of the runs has no power-on time).
    RunStart,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TimingKind {
    Milestone,
    Condition,
}

/// A time that grew beyond the thresholds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Slower {
    pub kind: TimingKind,
    /// The milestone's name or the condition's id.
    pub name: String,
    pub old_ms: u64,
    pub new_ms: u64,
    pub grew_ms: u64,
    /// Growth in percent of the old time, one decimal; none when the old time was 0.
    pub grew_percent: Option<f64>,
}

impl Slower {
    fn new(kind: TimingKind, name: &str, old_ms: u64, new_ms: u64) -> Self {
        let grew_ms = new_ms.saturating_sub(old_ms);
        Slower {
            kind,
            name: name.to_string(),
            old_ms,
            new_ms,
            grew_ms,
            grew_percent: (old_ms > 0)
                .then(|| (grew_ms as f64 * 1000.0 / old_ms as f64).round() / 10.0),
        }
    }
}

/// The change of one condition's status, if any, and whether it is a regression.
fn classify(old: Option<Status>, new: Option<Status>) -> Option<(ChangeKind, bool)> {
    use Status::*;
    if old == new {
        return None;
    }
    let failing = |s: Option<Status>| matches!(s, Some(Fail | Error));
    let kind = match (old, new) {
        (_, Some(Fail | Error)) if !failing(old) => ChangeKind::NewFailure,
        (Some(_), None) => ChangeKind::Disappeared,
        (Some(Pass), Some(_)) => ChangeKind::NoLongerPasses,
        (None, Some(_)) => ChangeKind::Appeared,
        (Some(Fail | Error), Some(Pass)) => ChangeKind::Fixed,
        _ => ChangeKind::Changed,
    };
    let regression = matches!(kind, ChangeKind::NewFailure | ChangeKind::NoLongerPasses)
        || (kind == ChangeKind::Disappeared && old == Some(Pass));
    Some((kind, regression))
}

/// Compare two runs: pure, no I/O.
pub fn compare(old: &Report, new: &Report, thresholds: Thresholds) -> Comparison {
    let mut notes = Vec::new();
    if old.profile != new.profile {
        notes.push(format!(
            "the runs used different profiles ({} and {})",
            old.profile, new.profile
        ));
    }

    // Verdict changes: the new run's conditions in order, then those only the old run has.
    let mut changes: Vec<(usize, StatusChange)> = Vec::new();
    for (i, n) in new.conditions.iter().enumerate() {
        let o = old.conditions.iter().find(|o| o.id == n.id);
        if let Some((change, regression)) = classify(o.map(|o| o.status), Some(n.status)) {
            changes.push((
                i,
                StatusChange {
                    id: n.id.clone(),
                    phase: n.phase,
                    old: o.map(|o| o.status),
                    new: Some(n.status),
                    change,
                    regression,
                    message: n.message.clone(),
                    likely_cause: n.likely_cause.clone(),
                },
            ));
        }
    }
    for (i, o) in old.conditions.iter().enumerate() {
        if new.conditions.iter().any(|n| n.id == o.id) {
            continue;
        }
        let (change, regression) = classify(Some(o.status), None).expect("a change");
        changes.push((
            new.conditions.len() + i,
            StatusChange {
                id: o.id.clone(),
                phase: o.phase,
                old: Some(o.status),
                new: None,
                change,
                regression,
                message: o.message.clone(),
                likely_cause: None,
            },
        ));
    }
    changes.sort_by_key(|(i, c)| (!c.regression, c.change, *i));
    let changes: Vec<StatusChange> = changes.into_iter().map(|(_, c)| c).collect();

    let mut slower = Vec::new();
    let milestones_from = compare_milestones(old, new, thresholds, &mut slower, &mut notes);

    // Condition times: where the condition ended the same way in both runs (a changed verdict
    // is reported above; a skip took no time worth comparing).
    for n in &new.conditions {
        let Some(o) = old.conditions.iter().find(|o| o.id == n.id) else {
            continue;
        };
        if o.status == n.status
            && n.status != Status::Skip
            && thresholds.exceeded(o.duration_ms, n.duration_ms)
        {
            slower.push(Slower::new(
                TimingKind::Condition,
                &n.id,
                o.duration_ms,
                n.duration_ms,
            ));
        }
    }

    let verdict_worse = old.verdict == Verdict::Pass && new.verdict != Verdict::Pass;
    Comparison {
        old: RunSummary::of(old),
        new: RunSummary::of(new),
        verdict: VerdictChange {
            old: old.verdict,
            new: new.verdict,
        },
        regression: verdict_worse || !slower.is_empty() || changes.iter().any(|c| c.regression),
        thresholds,
        changes,
        slower,
        milestones_from,
        notes,
    }
}

/// Milestones by name, on the time base both runs have; pushes the slower ones and notes what
/// could not be compared. Returns the base when at least one milestone was compared.
fn compare_milestones(
    old: &Report,
    new: &Report,
    thresholds: Thresholds,
    slower: &mut Vec<Slower>,
    notes: &mut Vec<String>,
) -> Option<TimeBase> {
    let (ot, nt) = match (&old.timeline, &new.timeline) {
        (Some(o), Some(n)) => (o, n),
        (o, n) => {
            let which = match (o.is_some(), n.is_some()) {
                (false, false) => "neither run has a boot timeline",
                (false, true) => "the old run has no boot timeline",
                _ => "the new run has no boot timeline",
            };
            notes.push(format!("{which}: milestones not compared"));
            return None;
        }
    };
    let base = match (ot.power_on_ms, nt.power_on_ms) {
        (Some(_), Some(_)) => TimeBase::PowerOn,
        (o, n) => {
            if o.is_some() || n.is_some() {
                let lacking = if o.is_none() { "old" } else { "new" };
                notes.push(format!(
                    "milestones measured from the run start: the {lacking} run has no power-on time"
                ));
            }
            TimeBase::RunStart
        }
    };
    let offset = |t: &Timeline| match base {
        TimeBase::PowerOn => t.power_on_ms.unwrap_or(0),
        TimeBase::RunStart => 0,
    };
    let (o_off, n_off) = (offset(ot), offset(nt));
    let mut old_at: BTreeMap<&str, Option<u64>> = BTreeMap::new();
    for m in &ot.milestones {
        old_at.entry(m.name.as_str()).or_insert(m.at_ms);
    }
    let mut seen = Vec::new();
    let mut untimed = Vec::new();
    let mut only_new = Vec::new();
    let mut compared = false;
    for m in &nt.milestones {
        if seen.contains(&m.name.as_str()) {
            continue;
        }
        seen.push(m.name.as_str());
        match (old_at.get(m.name.as_str()), m.at_ms) {
            (None, _) => only_new.push(m.name.as_str()),
            (Some(Some(o)), Some(n)) => {
                compared = true;
                let (o, n) = (o.saturating_sub(o_off), n.saturating_sub(n_off));
                if thresholds.exceeded(o, n) {
                    slower.push(Slower::new(TimingKind::Milestone, &m.name, o, n));
                }
            }
            _ => untimed.push(m.name.as_str()),
        }
    }
    let mut only_old: Vec<&str> = Vec::new();
    for m in &ot.milestones {
        let name = m.name.as_str();
        if !seen.contains(&name) && !only_old.contains(&name) {
            only_old.push(name);
        }
    }
    for (names, what) in [
        (only_old, "only in the old run"),
        (only_new, "only in the new run"),
        (untimed, "without a time in one run (a log without times)"),
    ] {
        if !names.is_empty() {
            notes.push(format!("milestones {what}: {}", names.join(", ")));
        }
    }
    compared.then_some(base)
}

// ---- the command --------------------------------------------------------------------------

const WHAT_TO_PASS: &str = "pass a report folder or its report.json";

/// Read a report folder's report.json, or the report.json given; the error names the file and
/// says what to pass instead.
pub fn load(path: &Path) -> Result<Report, String> {
    let is_dir = path.is_dir();
    let file = if is_dir {
        path.join("report.json")
    } else {
        path.to_path_buf()
    };
    let bytes = match std::fs::read(&file) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && is_dir => {
            return Err(format!(
            "{} has no report.json — pass a report folder that bootaudit wrote, or its report.json",
            path.display()
        ))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(format!(
                "{}: no such file or folder — {WHAT_TO_PASS}",
                file.display()
            ))
        }
        Err(e) => {
            let reason = e.to_string();
            let reason = reason.split(" (os error").next().unwrap_or(&reason);
            return Err(format!(
                "cannot read {}: {reason} — {WHAT_TO_PASS}",
                file.display()
            ));
        }
    };
    serde_json::from_slice::<Report>(&bytes).map_err(|e| {
        let text = e.to_string();
        let reason = text
            .strip_suffix(&format!(" at line {} column {}", e.line(), e.column()))
            .unwrap_or(&text);
        // serde_json calls some shape errors syntax (a number where an enum goes): whether the
        // file is JSON at all is asked of the JSON parser alone.
        let what = match serde_json::from_slice::<serde::de::IgnoredAny>(&bytes) {
            Ok(_) => "is not a bootaudit report.json",
            Err(_) => "is not JSON, so not a bootaudit report.json",
        };
        format!(
            "{} {what} (line {}: {reason}) — {WHAT_TO_PASS}",
            file.display(),
            e.line()
        )
    })
}

pub fn run(args: CompareArgs) -> i32 {
    let (old, new) = match (load(&args.old), load(&args.new)) {
        (Ok(o), Ok(n)) => (o, n),
        (o, n) => {
            for e in [o.err(), n.err()].into_iter().flatten() {
                eprintln!("bootaudit: {e}");
            }
            return exit_codes::USAGE;
        }
    };
    let thresholds = Thresholds {
        slower_by_percent: args.slower_by,
        at_least_ms: (args.at_least * 1000.0).round() as u64,
    };
    let mut c = compare(&old, &new, thresholds);
    c.old.path = Some(args.old.display().to_string());
    c.new.path = Some(args.new.display().to_string());
    if let Some(file) = &args.html {
        // A side output: its failure warns, the comparison and its exit code stand.
        match std::fs::write(file, html_page(&c)) {
            Ok(()) => eprintln!("bootaudit: comparison written to {}", file.display()),
            Err(e) => eprintln!(
                "bootaudit: warning: cannot write {}: {e} — choose another file with --html",
                file.display()
            ),
        }
    }
    let text = match args.format {
        Format::Json => serde_json::to_string_pretty(&c).expect("comparison serialises"),
        Format::Human => human(&c),
    };
    crate::app::print_stdout(text.trim_end());
    if c.regression {
        exit_codes::FAILED
    } else {
        exit_codes::PASS
    }
}

// ---- rendering ----------------------------------------------------------------------------

fn status_word(s: Option<Status>) -> &'static str {
    s.map_or("absent", Status::as_str)
}

fn secs(ms: u64) -> String {
    format!("{:.1} s", ms as f64 / 1000.0)
}

fn growth(s: &Slower) -> String {
    match s.grew_percent {
        Some(p) => format!("+{} (+{p:.0} %)", secs(s.grew_ms)),
        None => format!("+{} (from 0)", secs(s.grew_ms)),
    }
}

fn slower_label(s: &Slower) -> String {
    match s.kind {
        TimingKind::Milestone => format!("milestone {}", s.name),
        TimingKind::Condition => s.name.clone(),
    }
}

/// The thresholds and the milestones' time base in words.
fn threshold_words(c: &Comparison) -> String {
    let t = c.thresholds;
    let base = match c.milestones_from {
        Some(TimeBase::PowerOn) => "; milestones from power-on",
        Some(TimeBase::RunStart) => "; milestones from the run start",
        None => "",
    };
    format!(
        "grew by more than {} % and by more than {}{base}",
        t.slower_by_percent,
        secs(t.at_least_ms)
    )
}

/// One line: is there a regression, and of what.
pub fn summary(c: &Comparison) -> String {
    if !c.regression {
        return "no regression".into();
    }
    let mut parts = Vec::new();
    let n = c.changes.iter().filter(|c| c.regression).count();
    if n > 0 {
        parts.push(format!(
            "{n} condition{} regressed",
            if n == 1 { "" } else { "s" }
        ));
    }
    let n = c.slower.len();
    if n > 0 {
        parts.push(format!(
            "{n} time{} grew beyond the threshold",
            if n == 1 { "" } else { "s" }
        ));
    }
    if c.verdict.old == Verdict::Pass && c.verdict.new != Verdict::Pass {
        parts.push(format!(
            "the run's verdict went from pass to {}",
            Verdict::as_str(c.verdict.new)
        ));
    }
    format!("regression: {}", parts.join(", "))
}

fn run_line(label: &str, r: &RunSummary) -> String {
    let mut parts = vec![
        Verdict::as_str(r.verdict).to_string(),
        format!("profile {}", r.profile),
        format!("started {}", r.started_at),
    ];
    if let Some(iso) = &r.iso {
        parts.push(iso.clone());
    }
    if let Some(log) = &r.replayed_log {
        parts.push(format!("replay of {log}"));
    }
    match &r.path {
        Some(path) => format!("{label}: {path} ({})", parts.join(", ")),
        None => format!("{label}: {}", parts.join(", ")),
    }
}

fn short(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        s.chars().take(max - 1).collect::<String>() + "…"
    }
}

/// The comparison as a readable list (stdout of `--format human`).
pub fn human(c: &Comparison) -> String {
    let mut out = vec![
        run_line("old", &c.old),
        run_line("new", &c.new),
        format!(
            "verdict: {} → {}",
            Verdict::as_str(c.verdict.old),
            Verdict::as_str(c.verdict.new)
        ),
    ];
    let width = c
        .changes
        .iter()
        .map(|x| x.id.len())
        .chain(c.slower.iter().map(|s| slower_label(s).len()))
        .max()
        .unwrap_or(0);
    let change_line = |x: &StatusChange| {
        let mut line = format!(
            "  {:<width$}  {:>6} → {:<6}  {}",
            x.id,
            status_word(x.old),
            status_word(x.new),
            x.change.words()
        );
        if !x.message.is_empty() && x.new != Some(Status::Pass) {
            line.push_str(&format!(": {}", short(&x.message, 120)));
        }
        if let Some(cause) = &x.likely_cause {
            if !x.message.contains(cause.as_str()) {
                line.push_str(&format!(" (likely cause: {cause})"));
            }
        }
        line
    };
    for (title, regression) in [("regressions", true), ("other changes", false)] {
        let group: Vec<&StatusChange> = c
            .changes
            .iter()
            .filter(|x| x.regression == regression)
            .collect();
        if !group.is_empty() {
            out.push(String::new());
            out.push(format!("{title}:"));
            out.extend(group.into_iter().map(change_line));
        }
    }
    out.push(String::new());
    if c.slower.is_empty() {
        out.push(format!("slower ({}): none", threshold_words(c)));
    } else {
        out.push(format!("slower ({}):", threshold_words(c)));
        for s in &c.slower {
            out.push(format!(
                "  {:<width$}  {} → {}  {}",
                slower_label(s),
                secs(s.old_ms),
                secs(s.new_ms),
                growth(s)
            ));
        }
    }
    if !c.notes.is_empty() {
        out.push(String::new());
        out.push("notes:".into());
        out.extend(c.notes.iter().map(|n| format!("  - {n}")));
    }
    out.push(String::new());
    out.push(summary(c));
    out.join("\n") + "\n"
}

/// One status as a table cell.
fn status_cell(s: Option<Status>) -> maud::Markup {
    let w = status_word(s);
    maud::html! { td class={ "status " (w) } { (w) } }
}

/// The comparison as an HTML fragment, `<section id="comparison">…</section>`: maud escapes
/// every text, and there is no script, style or font of its own (the page around it styles
/// the classes), so a run's report.html can embed it.
pub fn html_section(c: &Comparison) -> String {
    let class = if c.regression {
        "regression"
    } else {
        "no-regression"
    };
    let section = maud::html! {
        section id="comparison" {
            h2 { "Comparison of two runs" }
            table class="runs" {
                tr { th {} th { "report" } th { "verdict" } th { "profile" } th { "started" } th { "image" } }
                @for (label, r) in [("old", &c.old), ("new", &c.new)] {
                    @let image = r.iso.clone()
                        .or_else(|| r.replayed_log.as_ref().map(|l| format!("replay of {l}")))
                        .unwrap_or_default();
                    @let v = Verdict::as_str(r.verdict);
                    tr {
                        th { (label) }
                        td { (r.path.as_deref().unwrap_or("")) }
                        td class={ "status " (v) } { (v) }
                        td { (r.profile) }
                        td { (r.started_at) }
                        td { (image) }
                    }
                }
            }
            p class={ "summary " (class) } {
                "Verdict " (Verdict::as_str(c.verdict.old)) " → " (Verdict::as_str(c.verdict.new)) ": " (summary(c))
            }
            @for (title, regression) in [("Regressions", true), ("Other changes", false)] {
                @let group: Vec<&StatusChange> = c.changes.iter().filter(|x| x.regression == regression).collect();
                @if !group.is_empty() {
                    h3 { (title) }
                    table class="changes" {
                        tr { th { "condition" } th { "phase" } th { "was" } th { "now" } th { "change" } th { "message" } }
                        @for x in group {
                            tr {
                                td { code { (x.id) } }
                                td { (x.phase) }
                                (status_cell(x.old))
                                (status_cell(x.new))
                                td { (x.change.words()) }
                                td {
                                    (x.message)
                                    @if let Some(cause) = x.likely_cause.as_ref().filter(|k| !x.message.contains(k.as_str())) {
                                        " (likely cause: " (cause) ")"
                                    }
                                }
                            }
                        }
                    }
                }
            }
            h3 { "Slower" }
            p { "A time counts as slower when it " (threshold_words(c)) "." }
            @if c.slower.is_empty() {
                p { "No time grew beyond the threshold." }
            } @else {
                table class="slower" {
                    tr { th { "what" } th { "was" } th { "now" } th { "grew" } }
                    @for s in &c.slower {
                        tr { td { (slower_label(s)) } td { (secs(s.old_ms)) } td { (secs(s.new_ms)) } td { (growth(s)) } }
                    }
                }
            }
            @if !c.notes.is_empty() {
                h3 { "Notes" }
                ul { @for n in &c.notes { li { (n) } } }
            }
        }
    };
    section.into_string()
}

/// A self-contained page around `html_section`: its style inline, nothing fetched.
pub fn html_page(c: &Comparison) -> String {
    const STYLE: &str = "body{font-family:sans-serif;margin:2em;color:#222}\
        table{border-collapse:collapse;margin:0.5em 0 1.5em}\
        th,td{border:1px solid #ccc;padding:0.25em 0.6em;text-align:left;vertical-align:top}\
        .status.pass{color:#176f2c}.status.fail,.status.error{color:#b00020;font-weight:bold}\
        .status.skip,.status.absent{color:#777}.summary{font-weight:bold}\
        .summary.regression{color:#b00020}.summary.no-regression{color:#176f2c}";
    let title = format!(
        "bootaudit compare: {} → {}",
        c.old.path.as_deref().unwrap_or("old"),
        c.new.path.as_deref().unwrap_or("new")
    );
    let page = maud::html! {
        (maud::DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                title { (title) }
                style { (maud::PreEscaped(STYLE)) }
            }
            body { (maud::PreEscaped(html_section(c))) }
        }
    };
    page.into_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ConditionReport, Milestone, SkipKind};

    fn cond(id: &str, status: Status, duration_ms: u64) -> ConditionReport {
        ConditionReport {
            id: id.into(),
            phase: Phase::Boot,
            status,
            message: format!("{id} is {status}"),
            evidence: String::new(),
            started_ms: 0,
            duration_ms,
            transcript: None,
            blocked_by: None,
            likely_cause: None,
            log_line: None,
            warnings: vec![],
            diagnostics: vec![],
            skip_kind: SkipKind::Counts,
        }
    }

    fn report(conditions: Vec<ConditionReport>) -> Report {
        let verdict = Report::judge_verdict(&conditions, &[]);
        Report {
            bootaudit_version: "0.1.0".into(),
            verdict,
            verdict_reason: None,
            profile: "p".into(),
            iso: None,
            accel: Some("tcg".into()),
            started_at: "2025-01-01T00:00:00Z".into(),
            duration_ms: 60_000,
            replayed_log: None,
            boot: None,
            hostname: None,
            qemu_version: None,
            timeline: None,
            conditions,
        }
    }

    fn timeline(power_on_ms: Option<u64>, milestones: &[(&str, Option<u64>)]) -> Option<Timeline> {
        Some(Timeline {
            power_on_ms,
            milestones: milestones
                .iter()
                .map(|(name, at_ms)| Milestone {
                    name: name.to_string(),
                    at_ms: *at_ms,
                    line: String::new(),
                    log_line: None,
                })
                .collect(),
            guest: None,
        })
    }

    fn ids(c: &Comparison) -> Vec<(&str, ChangeKind, bool)> {
        c.changes
            .iter()
            .map(|x| (x.id.as_str(), x.change, x.regression))
            .collect()
    }

    fn slower(c: &Comparison) -> Vec<(TimingKind, &str)> {
        c.slower.iter().map(|s| (s.kind, s.name.as_str())).collect()
    }

    #[test]
    fn identical_runs_have_no_change_and_no_regression() {
        let r = report(vec![
            cond("a", Status::Pass, 1000),
            cond("b", Status::Skip, 0),
        ]);
        let c = compare(&r, &r, Thresholds::default());
        assert!(c.changes.is_empty() && c.slower.is_empty());
        assert!(!c.regression);
        assert_eq!(summary(&c), "no regression");
    }

    #[test]
    fn every_kind_of_verdict_change_and_new_failures_first() {
        use Status::*;
        let old = report(vec![
            cond("fixed", Fail, 1),
            cond("to-skip", Pass, 1),
            cond("newly-failing", Pass, 1),
            cond("gone-pass", Pass, 1),
            cond("gone-fail", Fail, 1),
            cond("fail-to-error", Fail, 1),
            cond("skip-to-error", Skip, 1),
            cond("skip-to-pass", Skip, 1),
        ]);
        let new = report(vec![
            cond("fixed", Pass, 1),
            cond("to-skip", Skip, 1),
            cond("newly-failing", Fail, 1),
            cond("fail-to-error", Error, 1),
            cond("skip-to-error", Error, 1),
            cond("skip-to-pass", Pass, 1),
            cond("appeared-pass", Pass, 1),
            cond("appeared-fail", Fail, 1),
        ]);
        let c = compare(&old, &new, Thresholds::default());
        use ChangeKind::*;
        assert_eq!(
            ids(&c),
            vec![
                ("newly-failing", NewFailure, true),
                ("skip-to-error", NewFailure, true),
                ("appeared-fail", NewFailure, true),
                ("to-skip", NoLongerPasses, true),
                ("gone-pass", Disappeared, true),
                ("fixed", Fixed, false),
                ("appeared-pass", Appeared, false),
                ("gone-fail", Disappeared, false),
                ("fail-to-error", Changed, false),
                ("skip-to-pass", Changed, false),
            ]
        );
        assert!(c.regression);
        let gone = c.changes.iter().find(|x| x.id == "gone-pass").unwrap();
        assert_eq!((gone.old, gone.new), (Some(Pass), None));
        assert_eq!(gone.message, "gone-pass is pass", "the old run's message");
        assert_eq!(c.verdict.old, Verdict::Fail);
        assert_eq!(c.verdict.new, Verdict::Fail);
    }

    #[test]
    fn fixes_alone_are_no_regression() {
        let old = report(vec![
            cond("a", Status::Fail, 1),
            cond("b", Status::Error, 1),
        ]);
        let new = report(vec![cond("a", Status::Pass, 1), cond("b", Status::Pass, 1)]);
        let c = compare(&old, &new, Thresholds::default());
        assert!(!c.regression, "{c:?}");
        assert_eq!(c.changes.len(), 2);
        assert_eq!(
            (c.verdict.old, c.verdict.new),
            (Verdict::Fail, Verdict::Pass)
        );
    }

    #[test]
    fn a_verdict_that_was_pass_and_is_not_is_a_regression() {
        let r = report(vec![cond("a", Status::Pass, 1)]);
        let mut new = r.clone();
        new.verdict = Verdict::Interrupted;
        let c = compare(&r, &new, Thresholds::default());
        assert!(c.regression && c.changes.is_empty());
        assert!(
            summary(&c).contains("from pass to interrupted"),
            "{}",
            summary(&c)
        );
    }

    #[test]
    fn condition_times_need_both_thresholds() {
        let t = Thresholds::default();
        // +25 % exactly is not more than 25 %; +2 s exactly is not more than 2 s.
        assert!(!t.exceeded(10_000, 12_500));
        assert!(t.exceeded(10_000, 12_501));
        assert!(!t.exceeded(1_000, 3_000), "+200 % but only 2 s");
        assert!(t.exceeded(1_000, 3_001));
        assert!(!t.exceeded(100_000, 120_000), "+20 s but only 20 %");
        assert!(t.exceeded(0, 2_001), "from 0: the seconds decide");
        assert!(!t.exceeded(5_000, 1_000), "faster");
        let strict = Thresholds {
            slower_by_percent: 10.0,
            at_least_ms: 500,
        };
        assert!(strict.exceeded(10_000, 11_001));

        let old = report(vec![
            cond("slow", Status::Pass, 3_000),
            cond("fine", Status::Pass, 3_000),
            cond("now-fails", Status::Pass, 3_000),
            cond("skipped", Status::Skip, 0),
        ]);
        let new = report(vec![
            cond("slow", Status::Pass, 48_000),
            cond("fine", Status::Pass, 3_700),
            cond("now-fails", Status::Fail, 90_000),
            cond("skipped", Status::Skip, 9_000),
        ]);
        let c = compare(&old, &new, t);
        // A changed verdict is reported as such, not as a time; skips have no time to compare.
        assert_eq!(slower(&c), vec![(TimingKind::Condition, "slow")]);
        let s = &c.slower[0];
        assert_eq!((s.old_ms, s.new_ms, s.grew_ms), (3_000, 48_000, 45_000));
        assert_eq!(s.grew_percent, Some(1500.0));
        assert!(c.regression);
    }

    #[test]
    fn a_slower_time_alone_is_a_regression() {
        let old = report(vec![cond("a", Status::Pass, 1_000)]);
        let new = report(vec![cond("a", Status::Pass, 10_000)]);
        let c = compare(&old, &new, Thresholds::default());
        assert!(c.changes.is_empty());
        assert!(c.regression);
        assert_eq!(summary(&c), "regression: 1 time grew beyond the threshold");
    }

    #[test]
    fn milestones_compare_by_name_from_power_on() {
        let mut old = report(vec![]);
        let mut new = report(vec![]);
        // The new run's host checks took 10 s longer: from power-on, only "b" grew.
        old.timeline = timeline(Some(1_000), &[("a", Some(5_000)), ("b", Some(11_000))]);
        new.timeline = timeline(
            Some(11_000),
            &[
                ("b", Some(31_000)),
                ("a", Some(15_500)),
                ("c", Some(40_000)),
            ],
        );
        let c = compare(&old, &new, Thresholds::default());
        assert_eq!(c.milestones_from, Some(TimeBase::PowerOn));
        assert_eq!(slower(&c), vec![(TimingKind::Milestone, "b")]);
        assert_eq!((c.slower[0].old_ms, c.slower[0].new_ms), (10_000, 20_000));
        assert_eq!(c.notes, vec!["milestones only in the new run: c"]);
    }

    #[test]
    fn milestones_from_the_run_start_when_a_run_has_no_power_on_time() {
        let mut old = report(vec![]);
        let mut new = report(vec![]);
        old.timeline = timeline(None, &[("a", Some(5_000)), ("gone", Some(6_000))]);
        new.timeline = timeline(Some(11_000), &[("a", Some(15_500))]);
        let c = compare(&old, &new, Thresholds::default());
        assert_eq!(c.milestones_from, Some(TimeBase::RunStart));
        assert_eq!(slower(&c), vec![(TimingKind::Milestone, "a")]);
        assert_eq!((c.slower[0].old_ms, c.slower[0].new_ms), (5_000, 15_500));
        assert_eq!(
            c.notes,
            vec![
                "milestones measured from the run start: the old run has no power-on time",
                "milestones only in the old run: gone",
            ]
        );
    }

    #[test]
    fn a_missing_timeline_or_untimed_milestones_are_notes_not_regressions() {
        let old = report(vec![cond("a", Status::Pass, 1)]);
        let mut new = old.clone();
        new.timeline = timeline(Some(0), &[("a", Some(99_000))]);
        let c = compare(&old, &new, Thresholds::default());
        assert!(!c.regression);
        assert_eq!(c.milestones_from, None);
        assert_eq!(
            c.notes,
            vec!["the old run has no boot timeline: milestones not compared"]
        );
        let c = compare(&old, &old, Thresholds::default());
        assert_eq!(
            c.notes,
            vec!["neither run has a boot timeline: milestones not compared"]
        );
        let mut replayed = old.clone();
        replayed.timeline = timeline(None, &[("a", None)]);
        let c = compare(&new, &replayed, Thresholds::default());
        assert!(!c.regression);
        assert_eq!(c.milestones_from, None);
        assert!(
            c.notes
                .iter()
                .any(|n| n.contains("without a time") && n.ends_with(": a")),
            "{:?}",
            c.notes
        );
    }

    #[test]
    fn json_field_names_are_stable() {
        let old = report(vec![cond("a", Status::Pass, 1_000)]);
        let new = report(vec![cond("a", Status::Fail, 1_000)]);
        let v = serde_json::to_value(compare(&old, &new, Thresholds::default())).unwrap();
        for key in [
            "old",
            "new",
            "verdict",
            "regression",
            "thresholds",
            "changes",
            "slower",
            "milestones_from",
            "notes",
        ] {
            assert!(v.get(key).is_some(), "{key} missing: {v}");
        }
        assert_eq!(v["verdict"]["old"], "pass");
        assert_eq!(v["thresholds"]["slower_by_percent"], 25.0);
        assert_eq!(v["thresholds"]["at_least_ms"], 2000);
        let change = &v["changes"][0];
        assert_eq!(change["id"], "a");
        assert_eq!(change["old"], "pass");
        assert_eq!(change["new"], "fail");
        assert_eq!(change["change"], "new_failure");
        assert_eq!(change["regression"], true);
    }

    #[test]
    fn human_lists_regressions_before_other_changes() {
        let old = report(vec![cond("x", Status::Fail, 1), cond("y", Status::Pass, 1)]);
        let new = report(vec![cond("x", Status::Pass, 1), cond("y", Status::Fail, 1)]);
        let text = human(&compare(&old, &new, Thresholds::default()));
        let reg = text.find("regressions:").expect(&text);
        let other = text.find("other changes:").expect(&text);
        assert!(reg < other, "{text}");
        assert!(text.contains("y") && text.contains("pass → fail"), "{text}");
        assert!(
            text.trim_end()
                .ends_with("regression: 1 condition regressed"),
            "{text}"
        );
    }

    #[test]
    fn html_is_a_section_with_every_text_escaped() {
        let mut old = report(vec![cond("a", Status::Pass, 1)]);
        old.profile = "<script>alert(1)</script>".into();
        let mut new = report(vec![cond("a", Status::Fail, 1)]);
        new.conditions[0].message = "saw <b>\"x\" & 'y'</b>".into();
        let mut c = compare(&old, &new, Thresholds::default());
        c.new.path = Some("runs/<new>".into());
        let h = html_section(&c);
        assert!(
            h.starts_with("<section id=\"comparison\">") && h.trim_end().ends_with("</section>")
        );
        assert!(!h.contains("<script") && !h.contains("<b>"), "{h}");
        assert!(
            h.contains("&lt;script&gt;") && h.contains("saw &lt;b&gt;&quot;x&quot; &amp; 'y'"),
            "{h}"
        );
        assert!(h.contains("runs/&lt;new&gt;"));
        let page = html_page(&c);
        assert!(page.starts_with("<!DOCTYPE html>") && page.contains(&h));
        for external in ["<script", "<link", "src=", "href=", "@import", "url("] {
            assert!(!page.contains(external), "{external} in the page");
        }
    }
}
