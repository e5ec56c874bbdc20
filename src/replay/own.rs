//! bootaudit's own logs: every framed command announces itself on a line of its own
//! (`BA_<token>_BEGIN <command>`) and ends with `BA_<token>_END rc=N`, so the command, its
//! output and its exit code are read back exactly, one frame at a time.

use bootaudit_console::{parse_between, NoiseFilter, MARKER_PREFIX};
use regex::Regex;
use std::sync::OnceLock;

/// Output kept per frame; a longer one is cut (no probe prints that much).
const MAX_FRAME_BYTES: usize = 4 << 20;

/// One framed command found in the log.
#[derive(Debug, Clone)]
pub struct FramedRun {
    pub command: String,
    pub output: String,
    pub exit_code: i32,
    /// Log line of the begin marker.
    pub line: u64,
    pub excerpt: Vec<(u64, String)>,
}

/// A line that opens a frame: the token and the command it names.
pub fn begin_marker(line: &str) -> Option<(&str, &str)> {
    static RE: OnceLock<Regex> = OnceLock::new();
    let re = RE.get_or_init(|| {
        Regex::new(&format!(
            "{MARKER_PREFIX}_([a-z0-9]{{1,32}})_BEGIN(?: (.*))?$"
        ))
        .expect("static regex")
    });
    if !line.contains(MARKER_PREFIX) {
        return None;
    }
    let c = re.captures(line)?;
    Some((
        c.get(1).expect("group").as_str(),
        c.get(2).map_or("", |m| m.as_str()),
    ))
}

struct Open {
    token: String,
    end: String,
    command: String,
    between: String,
    line: u64,
    excerpt: Vec<(u64, String)>,
}

/// Reads frames line by line.
#[derive(Default)]
pub struct Frames {
    open: Option<Open>,
}

impl Frames {
    /// Feed one log line; returns the frame it closed, if any.
    pub fn line(&mut self, no: u64, line: &str, noise: &NoiseFilter) -> Option<FramedRun> {
        if let Some(open) = &mut self.open {
            super::quote_into(&mut open.excerpt, no, line);
            if let Some(at) = line.find(&open.end) {
                let rc: String = line[at + open.end.len()..]
                    .chars()
                    .take_while(char::is_ascii_digit)
                    .collect();
                if let Ok(rc) = rc.parse::<i32>() {
                    let open = self.open.take().expect("open frame");
                    let mut between = open.between;
                    between.push_str(&line[..at]);
                    let out = parse_between(&between, rc, noise);
                    return Some(FramedRun {
                        command: open.command,
                        output: out.text(),
                        exit_code: rc,
                        line: open.line,
                        excerpt: open.excerpt,
                    });
                }
            }
            if open.between.len() + line.len() < MAX_FRAME_BYTES {
                open.between.push_str(line);
                open.between.push('\n');
            }
        }
        // A begin marker with another token: the open frame never ended (an interrupted run).
        if let Some((token, command)) = begin_marker(line) {
            if self.open.as_ref().is_none_or(|o| o.token != token) {
                self.open = Some(Open {
                    token: token.to_string(),
                    end: format!("{MARKER_PREFIX}_{token}_END rc="),
                    command: command.to_string(),
                    between: String::new(),
                    line: no,
                    excerpt: vec![super::quoted(no, line)],
                });
            }
        }
        None
    }
}

/// Does this file look like a report's serial.log (`   12.345 < text`, `    0.100 > sent`)?
/// Its first non-empty lines decide: every one of them stamped and marked.
pub fn is_readable_transcript(path: &std::path::Path) -> bool {
    use std::io::Read;
    let mut head = Vec::new();
    let Ok(f) = std::fs::File::open(path) else {
        return false;
    };
    if f.take(8192).read_to_end(&mut head).is_err() {
        return false;
    }
    // A head cut mid-line ends in a part of a line that proves nothing either way.
    let cut = head.len() == 8192 && !head.ends_with(b"\n");
    if cut {
        let end = head.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        head.truncate(end);
    }
    let text = String::from_utf8_lossy(&head);
    let mut lines = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .take(20)
        .peekable();
    lines.peek().is_some()
        && lines.all(|l| {
            let rest = l.trim_start();
            let Some((stamp, tail)) = rest.split_once(' ') else {
                return false;
            };
            let stamped = stamp.split_once('.').is_some_and(|(s, ms)| {
                !s.is_empty()
                    && s.bytes().all(|b| b.is_ascii_digit())
                    && ms.len() == 3
                    && ms.bytes().all(|b| b.is_ascii_digit())
            });
            stamped && matches!(tail.chars().next(), Some('<' | '>' | ':'))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Long lines put the 8 KiB cut inside a stamp: the cut piece decides nothing.
    #[test]
    fn a_serial_log_of_long_lines_is_still_known() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("serial.log");
        let long = "x".repeat(600);
        let first = format!("{:>9.3} < {}\n", 0.0, "y".repeat(187));
        let text: String = first
            + &(1..40)
                .map(|i| format!("{:>9.3} < {long}{i}\n", i as f64 / 10.0))
                .collect::<String>();
        // The cut must fall inside the digits of a stamp: `    3.` is no stamp.
        let at = 8192 - text[..8192].rfind('\n').unwrap();
        assert_eq!(at, 7, "the cut lands {at} bytes into a line");
        std::fs::write(&path, &text).unwrap();
        assert!(is_readable_transcript(&path));
    }
    use bootaudit_console::frame_with_token;

    #[test]
    fn reads_back_what_the_framing_wrote() {
        let framed = frame_with_token("id -u", "abc1").unwrap();
        assert!(
            framed.line.contains("BA\"\"_abc1_BEGIN"),
            "the echo never opens a frame"
        );
        let log = "$ echo\nBA_abc1_BEGIN id -u\n0\n[   3.1] kernel says\n\nBA_abc1_END rc=0\n$ ";
        let mut frames = Frames::default();
        let noise = NoiseFilter::default_console();
        let runs: Vec<FramedRun> = log
            .lines()
            .enumerate()
            .filter_map(|(i, l)| frames.line(i as u64 + 1, l, &noise))
            .collect();
        assert_eq!(runs.len(), 1);
        assert_eq!(runs[0].command, "id -u");
        assert_eq!(runs[0].output, "0");
        assert_eq!(runs[0].exit_code, 0);
        assert_eq!(runs[0].line, 2);
        assert_eq!(runs[0].excerpt.len(), 5);
    }
}

/// A run's own serial.raw normalised again chunk by chunk with the arrival times its
/// serial.timing recorded (`<byte offset> <ms since the run started>` per chunk), as the live
/// console normalised it: the milestones found in it get the times the live run gave them.
/// None for a log too large to hold (they keep their log lines only).
pub fn timed_milestones(
    raw: &std::path::Path,
    timing: &std::path::Path,
    mut scanner: crate::timeline::MilestoneScanner,
) -> std::io::Result<Option<Vec<crate::model::Milestone>>> {
    use std::io::BufRead;
    const MAX_RAW_BYTES: u64 = 256 << 20;
    if std::fs::metadata(raw)?.len() > MAX_RAW_BYTES {
        return Ok(None);
    }
    let bytes = std::fs::read(raw)?;
    let stamps: Vec<(usize, u64)> = std::io::BufReader::new(std::fs::File::open(timing)?)
        .lines()
        .map_while(Result::ok)
        .filter_map(|l| {
            let (o, t) = l.split_once(' ')?;
            Some((o.parse().ok()?, t.trim().parse().ok()?))
        })
        .collect();
    let base = tokio::time::Instant::now();
    let mut normalizer = bootaudit_console::Normalizer::new();
    for (i, &(from, ms)) in stamps.iter().enumerate() {
        let to = stamps
            .get(i + 1)
            .map_or(bytes.len(), |s| s.0)
            .min(bytes.len());
        if from < to {
            normalizer.push(
                &bytes[from..to],
                base + std::time::Duration::from_millis(ms),
            );
        }
    }
    normalizer.finish();
    crate::timeline::scan_text(&mut scanner, normalizer.text(), |offset| {
        let at = normalizer.time_at(offset)?;
        Some(at.duration_since(base).as_millis() as u64)
    });
    Ok(Some(scanner.finish()))
}

#[cfg(test)]
mod timing_tests {
    use regex::Regex;

    #[test]
    fn milestones_get_the_times_their_text_arrived() {
        let dir = tempfile::tempdir().unwrap();
        let (raw, timing) = (
            dir.path().join("serial.raw"),
            dir.path().join("serial.timing"),
        );
        // One raw line drawn over time with a carriage return: its text came at 300 ms.
        std::fs::write(&raw, "boot\nwait\rLoader 2\n").unwrap();
        std::fs::write(&timing, "0 100\n5 200\n10 300\n").unwrap();
        let scanner = crate::timeline::MilestoneScanner::new(vec![
            ("first".into(), Regex::new("^boot").unwrap()),
            ("loader".into(), Regex::new("Loader \\d").unwrap()),
        ]);
        let got = super::timed_milestones(&raw, &timing, scanner)
            .unwrap()
            .unwrap();
        let got: Vec<_> = got.iter().map(|m| (m.name.as_str(), m.at_ms)).collect();
        assert_eq!(got, [("first", Some(100)), ("loader", Some(300))]);
    }
}
