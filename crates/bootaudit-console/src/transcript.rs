//! Transcript buffer: the normalised text with an explicit cursor and first-match `expect`.
//!
//! A dialogue is a sequence of "wait for X, then Y". Each wait must consume exactly what it
//! matched and no more: the earliest match after the cursor wins (ties go to the earlier
//! pattern), and the cursor moves to the end of *that* match — never to the last match in the
//! buffer, which is the trap that made the old harness skip prompts that had already arrived.

use regex::Regex;
use tokio::time::Instant;

use crate::normalize::Normalizer;

/// Matches that extend over more than this many bytes of text already searched may be missed by
/// the incremental search of a growing transcript (see [`Transcript::find_from`]). Generous for
/// console patterns (a prompt, a marker line, a login line) and bounds the work per arriving
/// chunk: on a flooded console every line may arrive as its own chunk, and each costs one scan
/// of this window (the benchmark in docs/benchmarks.md measured 256 KiB as too costly there).
pub const RESCAN_WINDOW: usize = 16 * 1024;

/// One successful `expect`: which pattern matched, where, and what came before it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Match {
    /// Index of the pattern that matched, in the order given.
    pub pattern: usize,
    /// Byte range of the match in the transcript (absolute offsets, see [`Transcript`]).
    pub start: usize,
    pub end: usize,
    /// Text between the cursor (before the call) and the match.
    pub before: String,
    /// The matched text (capture group 0).
    pub matched: String,
    /// Capture groups, index 0 is the whole match; `None` where a group did not take part.
    pub groups: Vec<Option<String>>,
    /// Names of the capture groups, parallel to `groups`.
    pub group_names: Vec<Option<String>>,
    /// Arrival time of the chunk that completed the match.
    pub at: Option<Instant>,
}

impl Match {
    /// Capture group `i` (0 is the whole match).
    pub fn get(&self, i: usize) -> Option<&str> {
        self.groups.get(i).and_then(|g| g.as_deref())
    }

    /// Named capture group.
    pub fn name(&self, name: &str) -> Option<&str> {
        let i = self
            .group_names
            .iter()
            .position(|n| n.as_deref() == Some(name))?;
        self.get(i)
    }
}

/// How much normalised text a [`Transcript`] keeps by default: 32 MiB, far more than any boot
/// prints (a verbose one is a few MiB) and a bound on a console flooded for minutes. Past it
/// the oldest text goes, down to three quarters of the bound, at a line's start where there
/// is one; the raw bytes still reach the event sink whole.
pub const DEFAULT_MAX_TEXT: usize = 32 << 20;

/// Normalised transcript plus the dialogue's cursor.
///
/// Offsets (the cursor, [`Match::start`]/[`Match::end`], [`Transcript::time_at`]) are absolute:
/// they count every byte of text since the start, also those a bounded transcript no longer
/// keeps. [`Transcript::text`] is the text kept, which begins at [`Transcript::start`]; the
/// helpers [`Transcript::text_from`], [`Transcript::slice`] and [`Transcript::line_at`] take
/// absolute offsets and never panic on one that is gone or out of range.
#[derive(Debug, Clone)]
pub struct Transcript {
    norm: Normalizer,
    /// Absolute offset of the first byte kept.
    base: usize,
    cursor: usize,
    max_text: usize,
}

impl Default for Transcript {
    fn default() -> Self {
        Self::with_limit(DEFAULT_MAX_TEXT)
    }
}

impl Transcript {
    /// An empty transcript with the cursor at 0, keeping at most [`DEFAULT_MAX_TEXT`] bytes.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty transcript keeping at most `max_text` bytes of text (at least 64 KiB, so the
    /// rescan window and a long line fit).
    pub fn with_limit(max_text: usize) -> Self {
        Transcript {
            norm: Normalizer::new(),
            base: 0,
            cursor: 0,
            max_text: max_text.max(4 * RESCAN_WINDOW),
        }
    }

    /// Append a raw chunk (normalised on the way in). Returns the absolute offset from which
    /// the text changed (see [`Normalizer::push`]).
    pub fn push(&mut self, bytes: &[u8], at: Instant) -> usize {
        let changed = self.base + self.norm.push(bytes, at);
        if self.norm.text().len() > self.max_text {
            self.trim();
        }
        // A backspace may erase text the cursor had already passed; keep the cursor in range.
        self.cursor = self.cursor.clamp(self.base, self.end());
        changed.max(self.base)
    }

    /// Drop the oldest text down to three quarters of the bound, cutting after a newline when
    /// one is in the next quarter (so the text kept starts with a whole line).
    fn trim(&mut self) {
        let text = self.norm.text();
        let cut = text.len() - self.max_text / 4 * 3;
        let cut = text.as_bytes()[cut..text.len() - self.max_text / 2]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(cut, |i| cut + i + 1);
        self.base += self.norm.drop_front(cut);
    }

    /// End of stream (see [`Normalizer::finish`]).
    pub fn finish(&mut self) {
        self.norm.finish();
        if self.norm.text().len() > self.max_text {
            self.trim();
        }
    }

    /// The normalised text kept; its first byte is at absolute offset [`start`].
    ///
    /// [`start`]: Transcript::start
    pub fn text(&self) -> &str {
        self.norm.text()
    }

    /// Absolute offset of the first byte of [`text`](Transcript::text): how much older text a
    /// bounded transcript dropped (0 until it has).
    pub fn start(&self) -> usize {
        self.base
    }

    /// Absolute offset of the end of the text.
    pub fn end(&self) -> usize {
        self.base + self.norm.text().len()
    }

    /// Bytes of text kept (what the bound limits).
    pub fn retained(&self) -> usize {
        self.norm.text().len()
    }

    /// The bound on [`retained`](Transcript::retained) (after each push).
    pub fn limit(&self) -> usize {
        self.max_text
    }

    /// The byte index into [`text`](Transcript::text) of absolute `offset`, clamped to the
    /// text kept and moved down to a character boundary.
    pub fn relative(&self, offset: usize) -> usize {
        let text = self.norm.text();
        let mut o = offset.saturating_sub(self.base).min(text.len());
        while !text.is_char_boundary(o) {
            o -= 1;
        }
        o
    }

    /// The text kept from absolute `offset` to the end (all of it for an offset already gone).
    pub fn text_from(&self, offset: usize) -> &str {
        &self.norm.text()[self.relative(offset)..]
    }

    /// The text kept between absolute offsets `from` and `to` (clamped; empty if reversed).
    pub fn slice(&self, from: usize, to: usize) -> &str {
        let (a, b) = (self.relative(from), self.relative(to));
        &self.norm.text()[a..b.max(a)]
    }

    /// The whole line (without its newline) containing absolute offset `at`, as far as kept.
    pub fn line_at(&self, at: usize) -> &str {
        let text = self.norm.text();
        let at = self.relative(at);
        let start = text[..at].rfind('\n').map_or(0, |i| i + 1);
        let end = text[at..].find('\n').map_or(text.len(), |i| at + i);
        &text[start..end]
    }

    /// Arrival time of the text at absolute `offset` (see [`Normalizer::time_at`]).
    pub fn time_at(&self, offset: usize) -> Option<Instant> {
        self.norm.time_at(offset.saturating_sub(self.base))
    }

    /// The normaliser, for its time map; its offsets are relative to
    /// [`text`](Transcript::text) (subtract [`start`](Transcript::start)).
    pub fn normalizer(&self) -> &Normalizer {
        &self.norm
    }

    /// Current cursor (absolute byte offset).
    pub fn cursor(&self) -> usize {
        self.cursor
    }

    /// Move the cursor to absolute `offset`; clamped to the text kept and to a character
    /// boundary (so `set_cursor(0)` is the oldest text kept).
    pub fn set_cursor(&mut self, offset: usize) {
        self.cursor = self.base + self.relative(offset);
    }

    /// Text from the cursor to the end, not yet consumed by any match.
    pub fn unmatched(&self) -> &str {
        self.text_from(self.cursor)
    }

    /// The last `max_chars` characters of the unconsumed text (for error messages).
    pub fn unmatched_tail(&self, max_chars: usize) -> String {
        tail_chars(self.unmatched(), max_chars).to_string()
    }

    /// Earliest match of any pattern starting at or after the cursor; on success the cursor moves
    /// to the end of that match.
    pub fn expect(&mut self, patterns: &[Regex]) -> Option<Match> {
        self.expect_from(patterns, self.cursor)
    }

    /// Like [`expect`](Transcript::expect) but only considers matches starting at or after
    /// absolute `search_from` (which must be ≥ the cursor); `before` still starts at the
    /// cursor. The engine uses this to avoid rescanning a long unmatched tail on every chunk.
    pub fn expect_from(&mut self, patterns: &[Regex], search_from: usize) -> Option<Match> {
        let from = self.relative(search_from.max(self.cursor));
        let cursor = self.relative(self.cursor);
        let (idx, caps_start, caps_end, groups, names) = {
            let text = self.norm.text();
            let mut best: Option<(usize, regex::Captures<'_>)> = None;
            for (i, re) in patterns.iter().enumerate() {
                let Some(c) = find_from(re, text, from) else {
                    continue;
                };
                let s = c.get(0).map_or(0, |m| m.start());
                // Strictly earlier start wins; equal start keeps the earlier pattern.
                if best
                    .as_ref()
                    .is_none_or(|(_, b)| s < b.get(0).map_or(0, |m| m.start()))
                {
                    best = Some((i, c));
                }
            }
            let (i, c) = best?;
            let m0 = c.get(0).expect("group 0 always present");
            let groups: Vec<Option<String>> = c
                .iter()
                .map(|g| g.map(|g| g.as_str().to_string()))
                .collect();
            let names: Vec<Option<String>> = patterns[i]
                .capture_names()
                .map(|n| n.map(str::to_string))
                .collect();
            (i, m0.start(), m0.end(), groups, names)
        };
        let text = self.norm.text();
        let m = Match {
            pattern: idx,
            start: self.base + caps_start,
            end: self.base + caps_end,
            before: text[cursor..caps_start].to_string(),
            matched: text[caps_start..caps_end].to_string(),
            groups,
            group_names: names,
            at: self.norm.time_at(caps_end.saturating_sub(1)),
        };
        self.cursor = self.base + caps_end;
        Some(m)
    }
}

/// Search `re` in `text` starting at byte `from`, with the context before `from` visible to
/// look-around assertions (`^` in multi-line mode, `\b`) — unlike searching a sub-slice, which
/// would make `^` match in the middle of a line.
pub fn find_from<'t>(re: &Regex, text: &'t str, from: usize) -> Option<regex::Captures<'t>> {
    if from > text.len() {
        return None;
    }
    re.captures_at(text, from)
}

/// The last `max_chars` characters of `s`.
pub fn tail_chars(s: &str, max_chars: usize) -> &str {
    match s.char_indices().rev().nth(max_chars.saturating_sub(1)) {
        Some((i, _)) if max_chars > 0 => &s[i..],
        _ if max_chars == 0 => "",
        _ => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn re(s: &str) -> Regex {
        Regex::new(s).unwrap()
    }

    fn tr(text: &[u8]) -> Transcript {
        let mut t = Transcript::new();
        t.push(text, Instant::now());
        t
    }

    #[test]
    fn first_match_wins_and_second_stays_matchable() {
        let mut t = tr(b"login: one\r\nlogin: two\r\n");
        let m = t.expect(&[re(r"login: (\w+)")]).unwrap();
        assert_eq!(m.get(1), Some("one"));
        assert_eq!(m.before, "");
        assert_eq!(t.cursor(), "login: one".len());
        let m = t.expect(&[re(r"login: (\w+)")]).unwrap();
        assert_eq!(m.get(1), Some("two"));
        assert_eq!(m.before, "\n");
        assert!(t.expect(&[re(r"login: (\w+)")]).is_none());
    }

    #[test]
    fn earliest_start_wins_across_patterns_ties_by_order() {
        let mut t = tr(b"xx password: yy $ zz");
        let m = t.expect(&[re(r"\$ "), re(r"password: ")]).unwrap();
        assert_eq!(m.pattern, 1, "earlier text wins over earlier pattern");
        assert_eq!(m.before, "xx ");
        // Same start: the earlier pattern wins even if the later one is longer.
        let mut t = tr(b"abc");
        let m = t.expect(&[re("ab"), re("abc")]).unwrap();
        assert_eq!((m.pattern, m.matched.as_str()), (0, "ab"));
    }

    #[test]
    fn caret_respects_context_before_cursor() {
        let mut t = tr(b"xxSTATE=bad\nSTATE=applied\n");
        t.set_cursor(2);
        let m = t.expect(&[re(r"(?m)^STATE=(\w+)")]).unwrap();
        assert_eq!(m.get(1), Some("applied"));
    }

    #[test]
    fn named_groups_and_tail() {
        let mut t = tr(b"LAN IPv4 address: 10.0.2.15\n");
        let m = t
            .expect(&[re(r"LAN IPv4 address: (?P<ip>[0-9.]+)")])
            .unwrap();
        assert_eq!(m.name("ip"), Some("10.0.2.15"));
        assert_eq!(m.name("nope"), None);
        assert_eq!(tail_chars("héllo", 3), "llo");
        assert_eq!(tail_chars("hé", 5), "hé");
        assert_eq!(tail_chars("hé", 0), "");
    }

    #[test]
    fn backspace_behind_cursor_clamps_it() {
        let mut t = tr(b"abc");
        t.set_cursor(3);
        t.push(b"\x08\x08X", Instant::now());
        assert_eq!(t.text(), "aX");
        assert!(t.cursor() <= t.text().len());
    }

    /// Past its bound the transcript drops its oldest text at a line's start; offsets stay
    /// absolute (the same as an unbounded transcript's), the end matches the whole stream,
    /// and a match after many trims carries its absolute place and time.
    #[test]
    fn a_bounded_transcript_keeps_absolute_offsets_and_whole_lines() {
        let limit = 4 * RESCAN_WINDOW;
        let mut t = Transcript::with_limit(limit);
        let mut input = Vec::new();
        for i in 0..40_000 {
            input.extend_from_slice(format!("line {i} of the flood\r\n").as_bytes());
        }
        input.extend_from_slice(b"login: ");
        let whole = Normalizer::normalize_all(&input);
        let at = Instant::now();
        let mut n = 0;
        for (i, c) in input.chunks(977).enumerate() {
            t.push(c, at);
            n += c.len();
            assert!(t.retained() <= limit, "after {n} bytes");
            assert_eq!(t.end(), t.start() + t.text().len());
            if i % 50 == 0 {
                assert!(
                    t.start() == 0 || t.text().starts_with("line "),
                    "whole lines"
                );
            }
        }
        assert_eq!(t.end(), whole.len());
        assert!(t.start() > whole.len() / 2);
        assert_eq!(&whole[t.start()..], t.text());
        let m = t.expect(&[re("login: ")]).unwrap();
        assert_eq!((m.start, m.end), (whole.len() - 7, whole.len()));
        assert_eq!(t.cursor(), whole.len());
        assert_eq!(t.line_at(m.start), "login: ");
        assert_eq!(t.time_at(m.start), Some(at));
        // set_cursor(0) is the oldest text kept; a search from there finds what is kept.
        t.set_cursor(0);
        assert_eq!(t.cursor(), t.start());
        let first = t.expect(&[re(r"line (\d+) ")]).unwrap();
        assert!(first.start >= t.start());
        assert_eq!(&whole[first.start..first.end], first.matched);
    }

    /// Offsets already dropped, past the end or inside a character never panic: they clamp.
    #[test]
    fn stale_and_odd_offsets_clamp() {
        let mut t = Transcript::with_limit(0);
        let at = Instant::now();
        // One long line of two-byte characters: the cut falls inside the line, on a boundary.
        for _ in 0..100 {
            t.push("é".repeat(1000).as_bytes(), at);
        }
        assert!(t.start() > 0 && t.retained() <= t.limit());
        assert!(t.text().starts_with('é'));
        for off in [
            0,
            1,
            t.start() - 1,
            t.start() + 1,
            t.end() - 1,
            t.end() + 99,
        ] {
            let _ = t.text_from(off);
            let _ = t.slice(off, off + 3);
            let _ = t.slice(off + 3, off);
            let _ = t.line_at(off);
            let _ = t.time_at(off);
            t.set_cursor(off);
            assert!(t.cursor() >= t.start() && t.cursor() <= t.end());
            let _ = t.unmatched_tail(10);
        }
        assert_eq!(t.slice(0, 1), "");
        assert_eq!(t.text_from(0), t.text());
        assert_eq!(t.text_from(t.end() + 5), "");
    }
}
