//! A recorded serial log as numbered, normalised lines, streamed: memory stays flat whatever
//! the size of the log (replay reads gigabyte captures through here).
//!
//! Each line carries the number of the *raw* line (1-based, counted in `\n` bytes of the file)
//! where it ends, so a quoted line can be found in the file with any editor; a raw line that a
//! lone `\r` or a cursor move splits into several lines gives them all its number.

use crate::normalize::Normalizer;
use std::io::Read;
use std::ops::ControlFlow;

/// A line longer than this (a flood without newlines) is handed on in pieces of about this size.
pub const MAX_LINE_BYTES: usize = 64 * 1024;
const CHUNK_BYTES: usize = 256 * 1024;

/// What the reader saw of the whole log.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LogStats {
    pub bytes: u64,
    /// Raw lines (a last line without `\n` counts).
    pub raw_lines: u64,
}

/// Call `f(line_no, line)` for every normalised line of `source`, in order (without the `\n`).
/// `f` may stop the reading early with `ControlFlow::Break`.
pub fn for_each_line<R: Read>(
    mut source: R,
    mut f: impl FnMut(u64, &str) -> ControlFlow<()>,
) -> std::io::Result<LogStats> {
    let mut normalizer = Normalizer::new();
    let at = tokio::time::Instant::now();
    let mut chunk = vec![0u8; CHUNK_BYTES];
    let mut taken = String::new();
    let mut stats = LogStats::default();
    let mut ended_with_newline = true;
    // Hands every complete line in `taken` to `f`; false when `f` asked to stop.
    let mut deliver = |taken: &mut String, line_no: u64| -> bool {
        let mut go_on = true;
        for line in taken.split_inclusive('\n') {
            if go_on && f(line_no, line.strip_suffix('\n').unwrap_or(line)).is_break() {
                go_on = false;
            }
        }
        taken.clear();
        go_on
    };
    loop {
        let n = match source.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        stats.bytes += n as u64;
        // Segments end at a newline or after MAX_LINE_BYTES, so a piece stays small.
        let segments = chunk[..n]
            .split_inclusive(|&b| b == b'\n')
            .flat_map(|s| s.chunks(MAX_LINE_BYTES));
        for segment in segments {
            normalizer.push(segment, at);
            ended_with_newline = segment.ends_with(b"\n");
            if ended_with_newline {
                stats.raw_lines += 1;
                normalizer.take_lines(&mut taken, false);
                if !deliver(&mut taken, stats.raw_lines) {
                    return Ok(stats);
                }
            } else if normalizer.text().len() >= MAX_LINE_BYTES {
                // A raw line without end so far: hand on the lines a `\r` already finished
                // whole, and cut only a single line that is too long.
                normalizer.take_lines(&mut taken, false);
                if normalizer.text().len() >= MAX_LINE_BYTES {
                    normalizer.take_lines(&mut taken, true);
                    taken.push('\n');
                }
                if !deliver(&mut taken, stats.raw_lines + 1) {
                    return Ok(stats);
                }
            }
        }
    }
    normalizer.finish();
    if !ended_with_newline {
        stats.raw_lines += 1;
    }
    normalizer.take_lines(&mut taken, true);
    if !taken.is_empty() {
        if !taken.ends_with('\n') {
            taken.push('\n');
        }
        deliver(&mut taken, stats.raw_lines.max(1));
    }
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(input: &[u8]) -> Vec<(u64, String)> {
        let mut out = Vec::new();
        for_each_line(input, |n, l| {
            out.push((n, l.to_string()));
            ControlFlow::Continue(())
        })
        .unwrap();
        out
    }

    #[test]
    fn numbers_are_raw_line_numbers() {
        let got = lines(b"one\r\r\ntwo\rTWO\n\x1b[1mthree\x1b[0m\nfour");
        assert_eq!(
            got,
            vec![
                (1, "one".into()),
                (2, "two".into()),
                (2, "TWO".into()),
                (3, "three".into()),
                (4, "four".into())
            ]
        );
    }

    #[test]
    fn nul_bytes_and_invalid_utf8_do_not_stop_the_reader() {
        let got = lines(b"a\0b\xff\xfe c\n\0\0\0\nd\n");
        assert_eq!(got[0], (1, "ab\u{FFFD}\u{FFFD} c".into()));
        assert_eq!(got[1], (2, "".into()));
        assert_eq!(got[2], (3, "d".into()));
    }

    #[test]
    fn a_line_without_end_comes_in_pieces() {
        let input = vec![b'x'; MAX_LINE_BYTES * 3 + 10];
        let got = lines(&input);
        assert!(got.len() >= 3, "{}", got.len());
        // U+FFFD takes 3 bytes for 1: a piece is at most a few times the limit.
        assert!(got
            .iter()
            .all(|(n, l)| *n == 1 && l.len() <= 4 * MAX_LINE_BYTES));
        assert_eq!(got.iter().map(|(_, l)| l.len()).sum::<usize>(), input.len());
    }

    #[test]
    fn a_carriage_return_flood_keeps_its_lines_whole() {
        // Progress redrawn with `\r` for megabytes: each redraw is its own line, none cut.
        let mut input = Vec::new();
        for i in 0..20_000 {
            input.extend_from_slice(format!("\rprogress {i:05} of 20000").as_bytes());
        }
        let got = lines(&input);
        assert_eq!(got.len(), 20_000);
        assert!(got
            .iter()
            .all(|(_, l)| l.len() == "progress 00000 of 20000".len()));
    }

    #[test]
    fn stops_when_asked() {
        let mut seen = 0;
        for_each_line(&b"a\nb\nc\n"[..], |_, _| {
            seen += 1;
            ControlFlow::Break(())
        })
        .unwrap();
        assert_eq!(seen, 1);
    }
}
