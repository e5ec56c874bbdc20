//! Checks against the real serial logs in `../shared/corpus/nixos-serial` (captured by the old
//! pexpect harness). The logs are not part of this repository; when the folder is absent the
//! tests print a notice and pass, so a checkout without `shared/` still builds and tests.

use std::path::{Path, PathBuf};
use std::time::Duration;

use bootaudit_console::{deadline_in, Console, ConsoleConfig, ExpectError, Normalizer};
use regex::Regex;
use tokio::time::Instant;

fn corpus_dir() -> Option<PathBuf> {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    [repo.join("../shared"), PathBuf::from("/work/shared")]
        .into_iter()
        .map(|p| p.join("corpus/nixos-serial"))
        .find(|p| p.join("annotations.yaml").is_file())
}

fn logs() -> Option<Vec<(String, Vec<u8>)>> {
    let Some(dir) = corpus_dir() else {
        eprintln!("NOTICE: ../shared/corpus/nixos-serial not found; corpus checks skipped");
        return None;
    };
    let mut v: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .map(|p| {
            (
                p.file_stem().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect();
    v.sort();
    assert!(!v.is_empty(), "corpus folder has no logs");
    Some(v)
}

/// Per-transcript fields of annotations.yaml that these tests use: (id, autologin, signatures).
/// A tiny line parser is enough for the flat layout of that file and avoids a YAML dependency.
fn annotations() -> Vec<(String, String, Vec<String>)> {
    let text = std::fs::read_to_string(corpus_dir().unwrap().join("annotations.yaml")).unwrap();
    let mut out: Vec<(String, String, Vec<String>)> = Vec::new();
    let mut in_sigs = false;
    for line in text.lines() {
        if let Some(id) = line.strip_prefix("- id: ") {
            out.push((id.trim().to_string(), String::new(), Vec::new()));
            in_sigs = false;
        } else if let Some(v) = line.strip_prefix("  autologin: ") {
            out.last_mut().unwrap().1 = v.trim().to_string();
        } else if line.starts_with("  failure_signatures:") {
            in_sigs = !line.contains("[]");
        } else if in_sigs {
            match line.strip_prefix("  - ") {
                Some(item) => out.last_mut().unwrap().2.push(unquote(item)),
                None => in_sigs = false,
            }
        }
    }
    out
}

fn unquote(s: &str) -> String {
    let s = s.trim();
    if let Some(inner) = s.strip_prefix('\'').and_then(|x| x.strip_suffix('\'')) {
        inner.replace("''", "'")
    } else if let Some(inner) = s.strip_prefix('"').and_then(|x| x.strip_suffix('"')) {
        inner.replace("\\\"", "\"").replace("\\\\", "\\")
    } else {
        s.to_string()
    }
}

fn collapse_ws(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[test]
fn every_log_normalises_to_clean_text() {
    let Some(logs) = logs() else { return };
    for (id, raw) in &logs {
        let t = Normalizer::normalize_all(raw);
        for (i, c) in t.char_indices() {
            let bad = (c < ' ' && c != '\n' && c != '\t') || ('\u{7f}'..='\u{9f}').contains(&c);
            assert!(
                !bad,
                "{id}: control {c:?} at {i}: {:?}",
                &t[i.saturating_sub(40)..i]
            );
        }
        assert!(!t.contains("[?2004"), "{id}: bracketed-paste residue");
        assert!(!t.contains("]0;"), "{id}: OSC title residue");
        assert!(
            !t.contains("lqqq"),
            "{id}: DEC line drawing left as letters"
        );
    }
}

#[test]
fn split_feeding_gives_the_same_text_on_real_logs() {
    let Some(logs) = logs() else { return };
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    for (id, raw) in &logs {
        let whole = Normalizer::normalize_all(raw);
        for round in 0..6 {
            let mut n = Normalizer::new();
            let now = Instant::now();
            let mut pos = 0;
            while pos < raw.len() {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                // Round 0 is byte by byte; the others use chunks of 1..=64 bytes, like a tty.
                let len = if round == 0 { 1 } else { 1 + (x % 64) as usize };
                let end = (pos + len).min(raw.len());
                n.push(&raw[pos..end], now);
                pos = end;
            }
            n.finish();
            assert!(n.text() == whole, "{id}: split round {round} differs");
        }
    }
}

#[test]
fn autologin_and_annotated_failure_lines_are_found() {
    let Some(logs) = logs() else { return };
    let auto = Regex::new(r"(?m)^\S+ login: (\S+) \(automatic login\)").unwrap();
    let mut checked_sigs = 0;
    for (id, autologin, sigs) in annotations() {
        let Some((_, raw)) = logs.iter().find(|(i, _)| *i == id) else {
            continue;
        };
        let t = Normalizer::normalize_all(raw);
        if autologin == "nixos" || autologin == "root" {
            let users: Vec<&str> = auto
                .captures_iter(&t)
                .map(|c| c.get(1).unwrap().as_str())
                .collect();
            assert!(
                users.contains(&autologin.as_str()),
                "{id}: autologin {autologin} not found, saw {users:?}"
            );
        }
        // The annotators' quotes come from the log with escapes and CRs stripped: every piece
        // (split at the '…' elisions) must be readable in our text too.
        let flat = collapse_ws(&t);
        for sig in sigs {
            for piece in sig.split('…').map(collapse_ws).filter(|p| !p.is_empty()) {
                assert!(
                    flat.contains(&piece),
                    "{id}: annotated line piece {piece:?} not in normalised text"
                );
                checked_sigs += 1;
            }
        }
    }
    assert!(
        checked_sigs > 10,
        "annotations parsed: {checked_sigs} signature pieces"
    );
}

/// The trap of T39: `ESC[?2004l\r` right before each uid. Replayed through the engine, the uid
/// probes read 1000 then 0 — not 2004 or 20.
#[tokio::test]
async fn replayed_t39_reads_uids_not_bracketed_paste_digits() {
    let Some(logs) = logs() else { return };
    let Some((_, raw)) = logs.iter().find(|(id, _)| id == "T39") else {
        return;
    };
    let mut con = Console::replay(std::io::Cursor::new(raw.clone()), ConsoleConfig::default());
    let d = || deadline_in(Duration::from_secs(10));
    con.expect(
        &[Regex::new(r"login: nixos \(automatic login\)").unwrap()],
        d(),
    )
    .await
    .unwrap();
    let probe = Regex::new(r"PRE-NIXOS> id -u\n").unwrap();
    let uid = Regex::new(r"(?m)^(\d+)\n").unwrap();
    let mut uids = Vec::new();
    while con.expect(std::slice::from_ref(&probe), d()).await.is_ok() {
        match con.expect(std::slice::from_ref(&uid), d()).await {
            Ok(m) => uids.push(m.get(1).unwrap().to_string()),
            Err(ExpectError::Closed { .. }) => break,
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(uids.first().map(String::as_str), Some("1000"));
    assert!(uids[1..].iter().all(|u| u == "0"), "{uids:?}");
    assert!(!uids.iter().any(|u| u.starts_with("20")));
}

/// Kernel/profile signatures over the whole corpus: the annotated unit failure lines hit.
#[tokio::test]
async fn signatures_fire_on_real_failure_lines() {
    let Some(logs) = logs() else { return };
    let Some((_, raw)) = logs.iter().find(|(id, _)| id == "T05") else {
        return;
    };
    let config = ConsoleConfig::default().signature(
        "unit-failed",
        Regex::new(r"Failed to start Pre-NixOS setup").unwrap(),
    );
    let mut con = Console::replay(std::io::Cursor::new(raw.clone()), config);
    let r = con
        .expect(
            &[Regex::new("this never appears").unwrap()],
            deadline_in(Duration::from_secs(10)),
        )
        .await;
    match r {
        Err(ExpectError::Signature {
            pattern_name, line, ..
        }) => {
            assert_eq!(pattern_name, "unit-failed");
            assert!(line.contains("Failed to start Pre-NixOS setup"), "{line}");
        }
        other => panic!("{other:?}"),
    }
}
