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

#[cfg(test)]
mod tests {
    use super::*;
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

/// When the raw lines `lines` (1-based, as `for_each_line` numbers them) of a run's
/// serial.raw began to arrive, from its serial.timing (`<byte offset> <ms since the run
/// started>` per chunk received): the time of the chunk holding each line's first byte, as
/// the live run times a line (a prompt's line ends only when something is typed). None where
/// either file lacks it.
pub fn line_times(
    raw: &std::path::Path,
    timing: &std::path::Path,
    lines: &[u64],
) -> std::io::Result<Vec<Option<u64>>> {
    use std::io::{BufRead, Read};
    let Some(&last) = lines.iter().max() else {
        return Ok(Vec::new());
    };
    // The byte offset where each wanted line starts, in one pass up to the last one wanted.
    let mut starts: std::collections::BTreeMap<u64, u64> = Default::default();
    if lines.contains(&1) {
        starts.insert(1, 0);
    }
    let mut file = std::io::BufReader::new(std::fs::File::open(raw)?);
    let (mut line, mut offset) = (1u64, 0u64);
    let mut chunk = vec![0u8; 64 << 10];
    'read: while line < last {
        let n = file.read(&mut chunk)?;
        if n == 0 {
            break;
        }
        for &b in &chunk[..n] {
            offset += 1;
            if b == b'\n' {
                line += 1;
                if lines.contains(&line) {
                    starts.insert(line, offset);
                }
                if line >= last {
                    break 'read;
                }
            }
        }
    }
    let stamps: Vec<(u64, u64)> = std::io::BufReader::new(std::fs::File::open(timing)?)
        .lines()
        .map_while(Result::ok)
        .filter_map(|l| {
            let (o, t) = l.split_once(' ')?;
            Some((o.parse().ok()?, t.trim().parse().ok()?))
        })
        .collect();
    Ok(lines
        .iter()
        .map(|l| {
            let start = *starts.get(l)?;
            let i = stamps.partition_point(|(o, _)| *o <= start);
            (i > 0).then(|| stamps[i - 1].1)
        })
        .collect())
}

#[cfg(test)]
mod timing_tests {
    #[test]
    fn a_line_is_timed_by_the_chunk_that_brought_its_start() {
        let dir = tempfile::tempdir().unwrap();
        let (raw, timing) = (
            dir.path().join("serial.raw"),
            dir.path().join("serial.timing"),
        );
        // "one\n" came at 100 ms, "tw" at 200, "o\nthree" at 300.
        std::fs::write(&raw, "one\ntwo\nthree").unwrap();
        std::fs::write(&timing, "0 100\n4 200\n6 300\n").unwrap();
        let got = super::line_times(&raw, &timing, &[1, 2, 3]).unwrap();
        assert_eq!(got, [Some(100), Some(200), Some(300)]);
        assert_eq!(super::line_times(&raw, &timing, &[9]).unwrap(), [None]);
    }
}
