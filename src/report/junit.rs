//! JUnit XML for CI: one `<testsuite name="bootaudit.PHASE">` per phase, one `<testcase>` per
//! condition. Always well-formed whatever the guest printed: quick-junit escapes markup and
//! strips ANSI and C0 controls, but lets U+FFFE/U+FFFF through, which XML 1.0 forbids, so every
//! string is first filtered to XML 1.0 characters here.

use crate::model::{Phase, Report, Status};
use quick_junit::{NonSuccessKind, TestCase, TestCaseStatus, TestSuite};
use std::collections::BTreeMap;
use std::time::Duration;

/// Keep only characters XML 1.0 allows (and drop ESC so escape codes cannot hide).
pub fn xml_chars(s: &str) -> String {
    s.chars()
        .filter(|&c| {
            matches!(c, '\u{9}' | '\u{A}' | '\u{D}' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..='\u{10FFFF}')
        })
        .collect()
}

/// Render the report; `transcripts` maps condition id → its cleaned transcript.
pub fn render(report: &Report, transcripts: &BTreeMap<String, String>) -> String {
    let mut junit = quick_junit::Report::new("bootaudit");
    junit.set_time(Duration::from_millis(report.duration_ms));
    for phase in Phase::ALL {
        // Root causes first, then what they likely caused, then the rest (catalog order
        // within each): a CI page shows what to fix first at the top.
        let mut conditions: Vec<_> = report
            .conditions
            .iter()
            .filter(|c| c.phase == phase)
            .collect();
        conditions.sort_by_key(|c| c.cause_rank());
        if conditions.is_empty() {
            continue;
        }
        let mut suite = TestSuite::new(format!("bootaudit.{phase}"));
        for c in conditions {
            let message = xml_chars(&c.message);
            let mut status = match c.status {
                Status::Pass => TestCaseStatus::success(),
                Status::Fail => TestCaseStatus::non_success(NonSuccessKind::Failure),
                Status::Error => TestCaseStatus::non_success(NonSuccessKind::Error),
                Status::Skip => TestCaseStatus::skipped(),
            };
            if c.status != Status::Pass {
                status.set_message(message.clone());
                if !c.evidence.is_empty() {
                    status.set_description(xml_chars(&c.evidence));
                }
            }
            let mut case = TestCase::new(xml_chars(&c.id), status);
            case.set_classname(format!("bootaudit.{phase}"));
            case.set_time(Duration::from_millis(c.duration_ms));
            let mut out = format!("{}: {}\n", c.status, message);
            if !c.evidence.is_empty() {
                out.push_str(&format!("evidence: {}\n", c.evidence));
            }
            if let Some(t) = transcripts.get(&c.id) {
                out.push('\n');
                out.push_str(t);
            }
            case.set_system_out(xml_chars(&out));
            suite.add_test_case(case);
        }
        junit.add_test_suite(suite);
    }
    junit.to_string().unwrap_or_else(|e| {
        // quick-junit only fails on writer errors; a String cannot fail, but stay well-formed.
        format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"bootaudit\"><!-- {} --></testsuites>\n", xml_chars(&e.to_string()).replace("--", "- -"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ConditionReport, SkipKind, Verdict};

    fn cond(id: &str, phase: Phase, status: Status) -> ConditionReport {
        cond_with(id, phase, status, "", "")
    }

    fn cond_with(
        id: &str,
        phase: Phase,
        status: Status,
        message: &str,
        evidence: &str,
    ) -> ConditionReport {
        ConditionReport {
            id: id.into(),
            phase,
            status,
            message: message.into(),
            evidence: evidence.into(),
            started_ms: 0,
            duration_ms: 1500,
            transcript: None,
            blocked_by: None,
            likely_cause: None,
            log_line: None,
            warnings: vec![],
            diagnostics: vec![],
            skip_kind: SkipKind::Counts,
        }
    }

    fn report(message: &str, evidence: &str) -> Report {
        let cond = |id: &str, phase, status| cond_with(id, phase, status, message, evidence);
        Report {
            bootaudit_version: "0".into(),
            verdict: Verdict::Fail,
            profile: "p".into(),
            iso: None,
            accel: None,
            started_at: "2026-01-01T00:00:00Z".into(),
            duration_ms: 1,
            replayed_log: None,
            boot: None,
            hostname: None,
            qemu_version: None,
            timeline: None,
            conditions: vec![
                cond("host.qemu", Phase::Host, Status::Pass),
                cond("boot.login", Phase::Boot, Status::Fail),
                cond("shell.ready", Phase::Boot, Status::Skip),
                cond("storage.status", Phase::Boot, Status::Error),
            ],
        }
    }

    const HOSTILE: &str = "\u{1b}[1;31mred\u{1b}[0m \0 nul ]]> cdata <tag> & \u{FFFE}\u{FFFF} \u{7} bell \u{1b}]0;title\u{7} \u{85}";

    #[test]
    fn hostile_bytes_stay_well_formed() {
        let transcripts = BTreeMap::from([("boot.login".to_string(), HOSTILE.repeat(3))]);
        let xml = render(&report(HOSTILE, HOSTILE), &transcripts);
        let doc = roxmltree::Document::parse(&xml).unwrap_or_else(|e| panic!("{e}\n{xml}"));
        let suites: Vec<_> = doc
            .descendants()
            .filter(|n| n.has_tag_name("testsuite"))
            .collect();
        assert_eq!(suites.len(), 2);
        assert_eq!(suites[0].attribute("name"), Some("bootaudit.host"));
        let cases: Vec<_> = doc
            .descendants()
            .filter(|n| n.has_tag_name("testcase"))
            .collect();
        assert_eq!(cases.len(), 4);
        let login = cases
            .iter()
            .find(|c| c.attribute("name") == Some("boot.login"))
            .unwrap();
        assert_eq!(login.attribute("classname"), Some("bootaudit.boot"));
        let failure = login
            .children()
            .find(|n| n.has_tag_name("failure"))
            .expect("failure element");
        let msg = failure.attribute("message").unwrap();
        assert!(msg.contains("]]> cdata <tag> &"), "{msg}");
        assert!(!msg.contains('\u{FFFE}') && !msg.contains('\u{1b}'));
        let out = login
            .children()
            .find(|n| n.has_tag_name("system-out"))
            .unwrap()
            .text()
            .unwrap_or("");
        assert!(out.contains("]]> cdata"), "{out}");
        assert!(doc.descendants().any(|n| n.has_tag_name("skipped")));
        assert!(doc.descendants().any(|n| n.has_tag_name("error")));
    }

    /// Root causes first in each suite, then what they caused, then the rest.
    #[test]
    fn root_causes_come_first() {
        let mut r = report("m", "");
        r.conditions = vec![
            cond("boot.console", Phase::Boot, Status::Pass),
            cond("storage.vg-main", Phase::Boot, Status::Fail),
            cond("storage.status", Phase::Boot, Status::Fail),
            cond("net.lan-ipv4", Phase::Boot, Status::Skip),
        ];
        r.conditions[1].likely_cause = Some("storage.status".into());
        let xml = render(&r, &BTreeMap::new());
        let doc = roxmltree::Document::parse(&xml).unwrap();
        let names: Vec<_> = doc
            .descendants()
            .filter(|n| n.has_tag_name("testcase"))
            .filter_map(|n| n.attribute("name"))
            .collect();
        assert_eq!(
            names,
            [
                "storage.status",
                "storage.vg-main",
                "boot.console",
                "net.lan-ipv4"
            ]
        );
    }

    #[test]
    fn filters_non_xml_chars() {
        assert_eq!(xml_chars("a\u{0}b\u{FFFE}c\u{1b}d\te"), "abcd\te");
    }
}
