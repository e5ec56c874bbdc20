//! report.html: the report for people, one self-contained file (no network, no external
//! script, style or font). The verdict first, then what failed with its message and evidence,
//! the boot timeline with every condition on the same time axis, the conditions by phase,
//! each condition's transcript with its evidence marked, and the serial log with a filter.
//!
//! Everything the guest printed reaches the page through maud's escaping: a hostile console
//! line is text, never markup.

use crate::model::{ConditionReport, Phase, Report, Status, Timeline};
use maud::{html, Markup, PreEscaped, DOCTYPE};
use std::collections::BTreeMap;

/// The serial log embedded in the page is cut after this many bytes (a flood or a gigabyte
/// replay); the file in the report folder stays whole.
pub const MAX_SERIAL_BYTES: usize = 2 << 20;

/// A condition's transcript embedded in the page is cut after this many bytes (a flood during
/// one condition); conditions/ID.log keeps it whole.
pub const MAX_TRANSCRIPT_BYTES: usize = 256 << 10;

/// The head of the readable console, as much as the page embeds.
pub struct SerialLog {
    pub text: String,
    /// The log goes on past `text`.
    pub cut: bool,
}

impl SerialLog {
    /// At most [`MAX_SERIAL_BYTES`] of `path`, ending at a whole line.
    pub fn read_head(path: &std::path::Path) -> std::io::Result<SerialLog> {
        use std::io::Read;
        let mut head = Vec::new();
        let file = std::fs::File::open(path)?;
        let len = file.metadata()?.len();
        file.take(MAX_SERIAL_BYTES as u64).read_to_end(&mut head)?;
        let cut = len > head.len() as u64;
        if cut {
            head.truncate(head.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1));
        }
        Ok(SerialLog {
            text: String::from_utf8_lossy(&head).into_owned(),
            cut,
        })
    }
}

/// The head of `text`, at most `max` bytes ending at a whole line, and whether it was cut.
fn head_lines(text: &str, max: usize) -> (&str, bool) {
    if text.len() <= max {
        return (text, false);
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let end = text[..end].rfind('\n').map_or(end, |i| i + 1);
    (&text[..end], true)
}

const STYLE: &str = include_str!("html/style.css");
const SCRIPT: &str = include_str!("html/script.js");

/// The page. `transcripts`: condition id → its transcript; `serial_log`: the readable console
/// (serial.log), where the run has one.
pub fn render(
    report: &Report,
    transcripts: &BTreeMap<String, String>,
    serial_log: Option<&SerialLog>,
) -> String {
    let verdict = format!("{:?}", report.verdict);
    let image = report
        .iso
        .as_ref()
        .map(|i| file_name(&i.path))
        .or_else(|| report.replayed_log.as_deref().map(file_name))
        .unwrap_or_default();
    let failed = report.failures_first();
    let page = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { "bootaudit: " (verdict) " — " (report.profile) " " (image) }
                style { (PreEscaped(STYLE)) }
            }
            body data-verdict=(report.verdict.as_str()) {
                header class={ "verdict " (report.verdict.as_str()) } {
                    h1 { (verdict) }
                    p class="counts" { (report.tally()) }
                    @if let Some(reason) = &report.verdict_reason {
                        p class="reason" { (reason) }
                    }
                    p class="facts" { (facts(report)) }
                }
                @if !failed.is_empty() {
                    section id="failures" {
                        h2 { "What failed" }
                        @for c in &failed { (failure(c)) }
                    }
                }
                (timeline(report.timeline.as_ref(), report))
                section id="conditions" {
                    h2 { "Conditions" }
                    @for phase in Phase::ALL {
                        @let in_phase: Vec<_> = report.conditions.iter().filter(|c| c.phase == phase).collect();
                        @if !in_phase.is_empty() {
                            h3 { (phase) }
                            table class="conditions" {
                                thead { tr { th { "status" } th { "condition" } th { "time" } th { "message" } } }
                                tbody {
                                    @for c in in_phase {
                                        tr class=(c.status.as_str()) {
                                            td class="status" { (status_label(c.status)) }
                                            td class="id" { a href={ "#t-" (c.id) } { (c.id) } }
                                            td class="time" { (seconds(c.duration_ms)) }
                                            td class="message" { (c.message) }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
                section id="transcripts" {
                    h2 { "Transcripts" }
                    @for c in &report.conditions {
                        (transcript(c, transcripts.get(&c.id).map(String::as_str)))
                    }
                }
                (serial(serial_log, report))
                footer {
                    "bootaudit " (report.bootaudit_version) " · started " (report.started_at)
                    @if let Some(h) = &report.hostname { " on " (h) }
                }
                script { (PreEscaped(SCRIPT)) }
            }
        }
    };
    page.into_string()
}

fn file_name(path: &str) -> String {
    std::path::Path::new(path)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.to_string())
}

fn seconds(ms: u64) -> String {
    format!("{:.1}s", ms as f64 / 1000.0)
}

fn status_label(s: Status) -> &'static str {
    match s {
        Status::Pass => "PASS",
        Status::Fail => "FAIL",
        Status::Skip => "SKIP",
        Status::Error => "ERROR",
    }
}

/// Profile, image, accelerator, boot entry: one line under the verdict.
fn facts(r: &Report) -> String {
    let mut parts = vec![format!("profile {}", r.profile)];
    if let Some(iso) = &r.iso {
        parts.push(file_name(&iso.path));
    }
    if let Some(log) = &r.replayed_log {
        parts.push(format!("replay of {log}"));
    }
    if let Some(a) = &r.accel {
        parts.push(format!("accel {a}"));
    }
    if let Some(b) = &r.boot {
        let entry = b.entry.as_deref().unwrap_or("?");
        parts.push(format!("{} boot of '{entry}' ({})", b.firmware, b.how));
    }
    parts.join(" · ")
}

fn failure(c: &ConditionReport) -> Markup {
    html! {
        article class={ "failure " (c.status.as_str()) } id={ "f-" (c.id) } {
            h3 {
                span class="badge" { (status_label(c.status)) } " " (c.id)
                @match &c.likely_cause {
                    Some(cause) => { span class="cause" { " caused by " a href={ "#f-" (cause) } { (cause) } } }
                    None => { span class="cause" { " root cause" } }
                }
            }
            p class="message" { (c.message) }
            @if !c.evidence.is_empty() {
                pre class="evidence" { (c.evidence) }
            }
            p class="links" {
                a href={ "#t-" (c.id) } { "transcript" }
                @if let Some(l) = c.log_line { " · log line " (l) }
                @for d in &c.diagnostics { " · " span class="diag" { (d) } }
            }
        }
    }
}

/// Where the axis puts `ms`, as a percentage of the run.
fn x(ms: u64, total: u64) -> f64 {
    (ms as f64 / total.max(1) as f64 * 100.0).clamp(0.0, 100.0)
}

/// The boot stages between the milestones and every condition as a bar, on one axis: the run
/// from its start to its end. Rows are markup (labels stay legible at any width); bars are
/// placed in percent of the run.
fn timeline(t: Option<&Timeline>, r: &Report) -> Markup {
    let empty = Timeline::default();
    let t = t.unwrap_or(&empty);
    // A replay's milestones keep the recorded run's times, which may outlast the replay.
    let last = t
        .milestones
        .iter()
        .filter_map(|m| m.at_ms)
        .max()
        .unwrap_or(0);
    let total = r.duration_ms.max(last).max(1);
    let mut points: Vec<(String, u64)> = Vec::new();
    if let Some(p) = t.power_on_ms {
        points.push(("power-on".into(), p));
    }
    points.extend(
        t.milestones
            .iter()
            .filter_map(|m| Some((m.name.clone(), m.at_ms?))),
    );
    let untimed: Vec<_> = t.milestones.iter().filter(|m| m.at_ms.is_none()).collect();
    let summary = crate::timeline::summary_line(t);
    let booted = t.power_on_ms.is_some() || !t.milestones.is_empty();
    let bar = |from: u64, to: u64| {
        let left = x(from, total);
        format!(
            "left:{left:.2}%;width:{:.2}%",
            (x(to, total) - left).max(0.3)
        )
    };
    html! {
        section id="timeline" {
            h2 { "Boot timeline" }
            @if !booted {
                p class="summary" { "This run did not boot." }
            } @else {
                p class="summary" {
                    (summary.as_deref().unwrap_or("The console showed none of the profile's milestones."))
                }
                @if !points.is_empty() {
                    div class="timeline" role="img" aria-label="boot stages and conditions on one time axis" {
                        div class="row stages" {
                            span class="label" { "boot" }
                            span class="track" {
                                @for (i, (name, at)) in points.iter().enumerate() {
                                    @let end = points.get(i + 1).map_or(*at, |p| p.1);
                                    span class={ "stage s" (i % 6) } style=(bar(*at, end))
                                        title={ (name) " at " (seconds(*at)) } {}
                                }
                            }
                        }
                        // A replay's conditions were judged on its own clock, not the recorded one.
                        @for c in r.conditions.iter().filter(|c| r.replayed_log.is_none() && (c.duration_ms > 0 || c.status != Status::Skip)) {
                            div class="row" {
                                span class="label" { a href={ "#t-" (c.id) } { (c.id) } }
                                span class="track" {
                                    span class={ "bar " (c.status.as_str()) }
                                        style=(bar(c.started_ms, c.started_ms + c.duration_ms))
                                        title={ (c.id) ": " (status_label(c.status)) " " (seconds(c.duration_ms)) } {}
                                }
                            }
                        }
                        div class="row axis" {
                            span class="label" {}
                            span class="track" { span class="tick0" { "0s" } span class="tick1" { (seconds(total)) } }
                        }
                    }
                    ol class="legend" {
                        @for (i, (name, at)) in points.iter().enumerate() {
                            li { span class={ "swatch s" (i % 6) } {} (name) " " (seconds(*at)) }
                        }
                    }
                }
                @if !untimed.is_empty() {
                    ol class="milestones" {
                        @for m in &untimed {
                            li { (m.name) @if let Some(l) = m.log_line { " — log line " (l) } ": " code { (m.line) } }
                        }
                    }
                }
            }
            @if let Some(g) = &t.guest {
                details class="guest" {
                    summary { "The guest's own account of its boot" }
                    @if !g.slowest_units.is_empty() {
                        table class="units" {
                            thead { tr { th { "unit" } th { "time" } } }
                            tbody { @for u in &g.slowest_units { tr { td { (u.unit) } td class="time" { (seconds(u.ms)) } } } }
                        }
                    }
                    pre { (g.output) }
                }
            }
        }
    }
}

/// The lines of the condition's evidence worth finding in its transcript.
fn evidence_needles(evidence: &str) -> Vec<&str> {
    evidence
        .lines()
        .map(str::trim)
        .filter(|l| l.chars().count() >= 4)
        .take(20)
        .collect()
}

/// Whether a transcript line shows the evidence (the line's text, after its time and
/// direction, holds an evidence line or is held in one).
fn shows_evidence(line: &str, needles: &[&str]) -> bool {
    let text = strip_stamp(line).trim();
    !text.is_empty()
        && needles
            .iter()
            .any(|n| text.contains(n) || (text.chars().count() >= 8 && n.contains(text)))
}

/// A transcript line without its `  12.345 < ` stamp (or a replay excerpt's `12: `).
fn strip_stamp(line: &str) -> &str {
    let t = line.trim_start();
    let Some((first, rest)) = t.split_once(' ') else {
        return t;
    };
    if first.parse::<f64>().is_ok() {
        return rest.split_once(' ').map_or(rest, |(_, r)| r);
    }
    if first.ends_with(':') && first[..first.len() - 1].parse::<u64>().is_ok() {
        return rest;
    }
    t
}

fn transcript(c: &ConditionReport, text: Option<&str>) -> Markup {
    let needles = evidence_needles(&c.evidence);
    let open = matches!(c.status, Status::Fail | Status::Error);
    html! {
        details class={ "transcript " (c.status.as_str()) } id={ "t-" (c.id) } open[open] {
            summary { span class="badge" { (status_label(c.status)) } " " (c.id) " " span class="time" { (seconds(c.duration_ms)) } }
            p class="message" { (c.message) }
            @match text {
                Some(t) if !t.is_empty() => {
                    @let (shown, cut) = head_lines(t, MAX_TRANSCRIPT_BYTES);
                    pre {
                        @for line in shown.lines() {
                            @if shows_evidence(line, &needles) { mark { (line) } "\n" }
                            @else { (line) "\n" }
                        }
                    }
                    @if cut { p class="note" { "The transcript is cut here; conditions/" (c.id) ".log has all of it." } }
                }
                _ => { p class="none" { "No console exchange." } }
            }
        }
    }
}

fn serial(log: Option<&SerialLog>, r: &Report) -> Markup {
    html! {
        section id="serial" {
            h2 { "Serial log" }
            @match log.filter(|l| !l.text.trim().is_empty()) {
                Some(log) => {
                    @let (shown, cut) = head_lines(&log.text, MAX_SERIAL_BYTES);
                    @let cut = cut || log.cut;
                    p class="filter" {
                        label for="filter" { "Filter " }
                        input id="filter" type="search" placeholder="text or /regex/" autocomplete="off";
                        " " span id="filter-count" {}
                    }
                    pre id="serial-log" {
                        @for line in shown.lines() { span class="l" { (line) "\n" } }
                    }
                    @if cut { p class="note" { "The log is cut here; serial.log in the report folder has all of it." } }
                }
                None => {
                    p class="note" {
                        @match (&r.replayed_log, &r.timeline) {
                            (Some(l), _) => { "The replayed log is " (l) "; each condition's transcript quotes the lines its verdict rests on." }
                            (None, Some(_)) => { "The serial log could not be read: see serial.log in the report folder." }
                            (None, None) => { "This run did not boot: there is no serial log." }
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Milestone, SkipKind, Verdict};

    fn cond(id: &str, phase: Phase, status: Status, started: u64, took: u64) -> ConditionReport {
        ConditionReport {
            id: id.into(),
            phase,
            status,
            message: format!("{id} message <b>not bold</b>"),
            evidence: String::new(),
            started_ms: started,
            duration_ms: took,
            transcript: None,
            blocked_by: None,
            likely_cause: None,
            log_line: None,
            warnings: vec![],
            diagnostics: vec![],
            skip_kind: SkipKind::Counts,
        }
    }

    fn report() -> Report {
        let mut failed = cond("storage.status", Phase::Boot, Status::Fail, 5000, 2000);
        failed.evidence = "STATE=failed".into();
        Report {
            bootaudit_version: "0".into(),
            verdict: Verdict::Fail,
            verdict_reason: None,
            profile: "p".into(),
            iso: None,
            accel: Some("tcg".into()),
            started_at: "2026-01-01T00:00:00Z".into(),
            duration_ms: 10_000,
            replayed_log: None,
            boot: None,
            hostname: Some("ci-1".into()),
            qemu_version: None,
            timeline: Some(Timeline {
                power_on_ms: Some(500),
                milestones: vec![Milestone {
                    name: "login prompt".into(),
                    at_ms: Some(4000),
                    line: "host login:".into(),
                    log_line: None,
                }],
                guest: None,
            }),
            conditions: vec![cond("host.qemu", Phase::Host, Status::Pass, 0, 100), failed],
        }
    }

    #[test]
    fn a_hostile_console_stays_text() {
        let transcripts = BTreeMap::from([(
            "storage.status".to_string(),
            "   5.100 < <script>alert(1)</script>\n   5.200 < STATE=failed\n".to_string(),
        )]);
        let page = render(
            &report(),
            &transcripts,
            Some(&SerialLog {
                text: "   1.0 < </pre><img src=x onerror=alert(1)>\n".into(),
                cut: false,
            }),
        );
        assert!(!page.contains("<script>alert"), "{page}");
        assert!(!page.contains("<img"));
        assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(page.contains("&lt;b&gt;not bold&lt;/b&gt;"));
        // The evidence line is marked in the transcript, the other is not.
        assert!(
            page.contains("<mark>   5.200 &lt; STATE=failed</mark>"),
            "{page}"
        );
        assert!(!page.contains("<mark>   5.100"));
    }

    #[test]
    fn the_verdict_and_failures_come_first_and_nothing_is_fetched() {
        let page = render(&report(), &BTreeMap::new(), None);
        let verdict = page.find("<h1>Fail</h1>").unwrap();
        let failures = page.find("id=\"failures\"").unwrap();
        let timeline = page.find("id=\"timeline\"").unwrap();
        let conditions = page.find("id=\"conditions\"").unwrap();
        assert!(verdict < failures && failures < timeline && timeline < conditions);
        for external in ["src=\"http", "href=\"http", "@import", "url("] {
            assert!(!page.contains(external), "{external}");
        }
        assert!(
            page.contains("class=\"stage s0\""),
            "the power-on stage is drawn"
        );
        assert!(page.contains("class=\"bar fail\""));
    }

    #[test]
    fn long_logs_are_cut_at_a_whole_line() {
        let (head, cut) = head_lines("● one\n● two\n● three\n", 12);
        assert_eq!((head, cut), ("● one\n", true));
        assert_eq!(head_lines("short\n", 100), ("short\n", false));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("serial.log");
        std::fs::write(&path, "●".repeat(MAX_SERIAL_BYTES) + "\n").unwrap();
        let log = SerialLog::read_head(&path).unwrap();
        assert!(log.cut && log.text.is_empty());
        let page = render(
            &report(),
            &BTreeMap::new(),
            Some(&SerialLog {
                text: "a\n".repeat(10),
                cut: true,
            }),
        );
        assert!(page.contains("The log is cut here"));
    }

    #[test]
    fn finds_the_evidence_after_the_stamp() {
        assert_eq!(strip_stamp("   12.345 < hello world"), "hello world");
        assert_eq!(strip_stamp("12: a log line"), "a log line");
        assert!(shows_evidence(
            "  1.0 < LAN IPv4 address: 10.0.2.15",
            &["LAN IPv4 address: 10.0.2.15"]
        ));
        assert!(!shows_evidence("  1.0 < ok", &["LAN IPv4 address"]));
    }
}
