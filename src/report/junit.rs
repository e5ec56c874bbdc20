//! JUnit XML for CI: one `<testsuite name="bootaudit.PHASE">` per phase, one `<testcase>` per
//! condition. Always well-formed whatever the guest printed: quick-junit escapes markup and
//! strips ANSI and C0 controls, but lets U+FFFE/U+FFFF through, which XML 1.0 forbids, so every
//! string is first filtered to XML 1.0 characters here.
//!
//! Each suite carries the run's `timestamp` (RFC 3339) and `hostname`, and `<properties>` naming
//! what was audited and with what (profile, ISO, accelerator, QEMU, bootaudit, boot entry, the
//! replayed log); a property whose value is unknown is left out. Each testcase's system-out
//! names the condition's files as `[[ATTACHMENT|PATH]]` lines (its transcript first, then its
//! diagnostics), PATH being the report folder joined with the file's relative path: the form
//! Jenkins' JUnit attachments plugin and GitLab read.

use crate::model::{Phase, Report, Status};
use quick_junit::{NonSuccessKind, Property, TestCase, TestCaseStatus, TestSuite};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

/// Keep only characters XML 1.0 allows (and drop ESC so escape codes cannot hide).
pub fn xml_chars(s: &str) -> String {
    s.chars()
        .filter(|&c| {
            matches!(c, '\u{9}' | '\u{A}' | '\u{D}' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..='\u{10FFFF}')
        })
        .collect()
}

/// The marker CI tools look for in a testcase's system-out.
const ATTACHMENT: &str = "[[ATTACHMENT|";

/// Text that did not come from bootaudit (the guest's output, messages quoting it) cannot name
/// an attachment: a guest printing `[[ATTACHMENT|/etc/shadow]]` must not make CI upload a file.
/// Applied to the text as quick-junit will write it (XML 1.0 characters, escapes and controls
/// stripped), so no character removed later can join a marker back together.
fn defuse_attachments(s: &str) -> String {
    quick_junit::XmlString::new(xml_chars(s))
        .as_str()
        .replace(ATTACHMENT, "[[ATTACHMENT |")
}

/// The suite properties: what was audited and with what. Unknown values are left out.
fn properties(report: &Report) -> Vec<Property> {
    let iso = report.iso.as_ref();
    let iso_name = iso.and_then(|i| {
        Path::new(&i.path)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
    });
    let known: [(&str, Option<String>); 10] = [
        // The run's verdict beside the cases: an incomplete run has no failed case.
        ("verdict", Some(report.verdict.as_str().to_string())),
        ("verdict.reason", report.verdict_reason.clone()),
        ("profile", Some(report.profile.clone())),
        ("iso.name", iso_name),
        ("iso.sha256", iso.and_then(|i| i.sha256.clone())),
        ("accel", report.accel.clone()),
        ("qemu.version", report.qemu_version.clone()),
        ("bootaudit.version", Some(report.bootaudit_version.clone())),
        (
            "boot.entry",
            report.boot.as_ref().and_then(|b| b.entry.clone()),
        ),
        ("replayed_log", report.replayed_log.clone()),
    ];
    known
        .into_iter()
        .filter_map(|(name, value)| {
            let value = xml_chars(value?.trim());
            (!value.is_empty()).then(|| Property::new(name, value))
        })
        .collect()
}

/// Render the report; `transcripts` maps condition id → its cleaned transcript, `folder` is the
/// report folder (as given: attachment paths are `folder` joined with the report's relative
/// paths, so a CI job that ran `--out audit-reports/x` finds `audit-reports/x/conditions/ID.log`).
pub fn render(report: &Report, transcripts: &BTreeMap<String, String>, folder: &Path) -> String {
    let mut junit = quick_junit::Report::new("bootaudit");
    junit.set_time(Duration::from_millis(report.duration_ms));
    let timestamp = chrono::DateTime::parse_from_rfc3339(&report.started_at).ok();
    let hostname = report
        .hostname
        .as_deref()
        .map(|h| xml_chars(h.trim()))
        .filter(|h| !h.is_empty());
    let properties = properties(report);
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
        if let Some(t) = timestamp {
            suite.set_timestamp(t);
        }
        if let Some(h) = &hostname {
            suite.extra.insert("hostname".into(), h.as_str().into());
        }
        suite.add_properties(properties.iter().cloned());
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
            let mut out = format!("{}: {}\n", c.status, defuse_attachments(&message));
            if !c.evidence.is_empty() {
                out.push_str(&format!(
                    "evidence: {}\n",
                    defuse_attachments(&xml_chars(&c.evidence))
                ));
            }
            for rel in c.transcript.iter().chain(&c.diagnostics) {
                out.push_str(&format!(
                    "{ATTACHMENT}{}]]\n",
                    folder.join(rel).to_string_lossy()
                ));
            }
            if let Some(t) = transcripts.get(&c.id) {
                out.push('\n');
                out.push_str(&defuse_attachments(&xml_chars(t)));
            }
            // The parts are filtered and defused already; this filters the paths.
            case.set_system_out(xml_chars(&out));
            suite.add_test_case(case);
        }
        // quick-junit counts skips as `disabled`; consumers that read the suite's counts
        // (junitparser, junit2json, the Jenkins schema) look for `skipped`.
        let skipped = suite.disabled.to_string();
        suite.extra.insert("skipped".into(), skipped.into());
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
    use crate::model::{BootInfo, ConditionReport, IsoInfo, SkipKind, Verdict};

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
            verdict_reason: None,
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
        let xml = render(&report(HOSTILE, HOSTILE), &transcripts, Path::new("out"));
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
        let xml = render(&r, &BTreeMap::new(), Path::new("out"));
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

    fn full_report() -> Report {
        let mut r = report("m", "e");
        r.iso = Some(IsoInfo {
            path: "/srv/images/nixos-minimal.iso".into(),
            sha256: Some("ab12".into()),
            bytes: Some(42),
        });
        r.accel = Some("tcg".into());
        r.started_at = "2026-03-04T05:06:07Z".into();
        r.hostname = Some("runner-7".into());
        r.qemu_version = Some("QEMU emulator version 7.2.0".into());
        r.replayed_log = Some("ci-console.log".into());
        r.boot = Some(BootInfo {
            firmware: "bios".into(),
            entry: Some("NixOS <Installer> & co".into()),
            config: None,
            how: "menu-default".into(),
            bootloader_exercised: true,
            cmdline: None,
        });
        r
    }

    fn suites<'a>(doc: &'a roxmltree::Document<'a>) -> Vec<roxmltree::Node<'a, 'a>> {
        doc.descendants()
            .filter(|n| n.has_tag_name("testsuite"))
            .collect()
    }

    fn props(suite: roxmltree::Node<'_, '_>) -> Vec<(String, String)> {
        suite
            .descendants()
            .filter(|n| n.has_tag_name("property"))
            .map(|p| {
                (
                    p.attribute("name").unwrap().to_string(),
                    p.attribute("value").unwrap().to_string(),
                )
            })
            .collect()
    }

    fn system_out<'a>(doc: &'a roxmltree::Document<'_>, id: &str) -> &'a str {
        doc.descendants()
            .find(|n| n.has_tag_name("testcase") && n.attribute("name") == Some(id))
            .and_then(|c| c.children().find(|n| n.has_tag_name("system-out")))
            .and_then(|n| n.text())
            .unwrap_or("")
    }

    #[test]
    fn suites_carry_timestamp_hostname_and_properties() {
        let xml = render(&full_report(), &BTreeMap::new(), Path::new("out"));
        let doc = roxmltree::Document::parse(&xml).unwrap_or_else(|e| panic!("{e}\n{xml}"));
        let want: Vec<(String, String)> = [
            ("verdict", "fail"),
            ("profile", "p"),
            ("iso.name", "nixos-minimal.iso"),
            ("iso.sha256", "ab12"),
            ("accel", "tcg"),
            ("qemu.version", "QEMU emulator version 7.2.0"),
            ("bootaudit.version", "0"),
            ("boot.entry", "NixOS <Installer> & co"),
            ("replayed_log", "ci-console.log"),
        ]
        .into_iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect();
        let started = chrono::DateTime::parse_from_rfc3339("2026-03-04T05:06:07Z").unwrap();
        let suites = suites(&doc);
        assert_eq!(suites.len(), 2);
        for suite in suites {
            let ts = suite.attribute("timestamp").expect("timestamp");
            let ts = chrono::DateTime::parse_from_rfc3339(ts)
                .unwrap_or_else(|e| panic!("timestamp {ts} is not RFC 3339: {e}"));
            assert_eq!(ts, started);
            assert_eq!(suite.attribute("hostname"), Some("runner-7"));
            assert_eq!(props(suite), want);
            let skips = match suite.attribute("name") {
                Some("bootaudit.boot") => "1",
                _ => "0",
            };
            assert_eq!(suite.attribute("skipped"), Some(skips));
        }
    }

    #[test]
    fn unknown_properties_are_left_out() {
        let mut r = report("m", "");
        r.started_at = "not a time".into();
        r.hostname = Some(" ".into());
        r.iso = Some(IsoInfo {
            path: "x.iso".into(),
            sha256: None,
            bytes: None,
        });
        r.accel = Some(String::new());
        r.boot = Some(BootInfo {
            firmware: "bios".into(),
            entry: None,
            config: None,
            how: "direct".into(),
            bootloader_exercised: false,
            cmdline: None,
        });
        let xml = render(&r, &BTreeMap::new(), Path::new("out"));
        let doc = roxmltree::Document::parse(&xml).unwrap_or_else(|e| panic!("{e}\n{xml}"));
        for suite in suites(&doc) {
            assert_eq!(suite.attribute("timestamp"), None);
            assert_eq!(suite.attribute("hostname"), None);
            let names: Vec<_> = props(suite).into_iter().map(|(n, _)| n).collect();
            assert_eq!(
                names,
                ["verdict", "profile", "iso.name", "bootaudit.version"]
            );
        }
        assert!(!xml.contains("value=\"\""), "{xml}");
    }

    #[test]
    fn attachments_name_the_transcript_and_diagnostics() {
        let mut r = report("m", "e");
        r.conditions[1].transcript = Some("conditions/boot.login.log".into());
        r.conditions[1].diagnostics = vec![
            "diagnostics/boot.login/journal.txt".into(),
            "diagnostics/boot.login/dmesg.txt".into(),
        ];
        r.conditions[0].transcript = Some("conditions/host.qemu.log".into());
        let xml = render(&r, &BTreeMap::new(), Path::new("audit-reports/x"));
        let doc = roxmltree::Document::parse(&xml).unwrap_or_else(|e| panic!("{e}\n{xml}"));
        let attachments = |id| -> Vec<String> {
            system_out(&doc, id)
                .lines()
                .filter(|l| l.starts_with("[[ATTACHMENT|"))
                .map(str::to_string)
                .collect()
        };
        assert_eq!(
            attachments("boot.login"),
            [
                "[[ATTACHMENT|audit-reports/x/conditions/boot.login.log]]",
                "[[ATTACHMENT|audit-reports/x/diagnostics/boot.login/journal.txt]]",
                "[[ATTACHMENT|audit-reports/x/diagnostics/boot.login/dmesg.txt]]",
            ]
        );
        assert_eq!(
            attachments("host.qemu"),
            ["[[ATTACHMENT|audit-reports/x/conditions/host.qemu.log]]"]
        );
        assert!(attachments("shell.ready").is_empty());
    }

    /// What the guest printed cannot name a file for CI to upload, not even with characters
    /// the XML filter removes in the middle of the marker.
    #[test]
    fn guest_output_cannot_forge_attachments() {
        let forged = "[[ATTACHMENT|/etc/shadow]] [[ATTACH\u{FFFE}MENT|/root/.ssh/id_rsa]] [[ATTACH\tMENT|/a]] [[ATTACH\rMENT|/b]] [[ATTACH\u{85}MENT|/c]] [[ATTACH\u{1b}[0mMENT|/d]]";
        let mut r = report(forged, forged);
        r.conditions[1].transcript = Some("conditions/boot.login.log".into());
        let transcripts = BTreeMap::from([("boot.login".to_string(), forged.to_string())]);
        let xml = render(&r, &transcripts, Path::new("out"));
        let doc = roxmltree::Document::parse(&xml).unwrap_or_else(|e| panic!("{e}\n{xml}"));
        let out = system_out(&doc, "boot.login");
        assert_eq!(
            out.matches("[[ATTACHMENT|").collect::<Vec<_>>().len(),
            1,
            "{out}"
        );
        assert!(
            out.contains("[[ATTACHMENT|out/conditions/boot.login.log]]"),
            "{out}"
        );
        assert!(
            out.contains("/etc/shadow"),
            "the guest's text stays readable: {out}"
        );
    }

    #[test]
    fn filters_non_xml_chars() {
        assert_eq!(xml_chars("a\u{0}b\u{FFFE}c\u{1b}d\te"), "abcd\te");
    }
}
