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
    /// Byte range of the match in the transcript text.
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

/// Normalised transcript plus the dialogue's cursor.
#[derive(Debug, Clone, Default)]
pub struct Transcript {
    norm: Normalizer,
    cursor: usize,
}

impl Transcript {
    /// An empty transcript with the cursor at 0.
    pub fn new() -> Self {
        Self::default()
    }

    /// Append a raw chunk (normalised on the way in). Returns the offset from which the text
    /// changed (see [`Normalizer::push`]).
    pub fn push(&mut self, bytes: &[u8], at: Instant) -> usize {
        let changed = self.norm.push(bytes, at);
        // A backspace may erase text the cursor had already passed; keep the cursor in range.
        self.cursor = self.cursor.min(self.norm.text().len());
        changed
    }

    /// End of stream (see [`Normalizer::finish`]).
    pub fn finish(&mut self) {
        self.norm.finish();
    }

    /// The whole normalised text.
    pub fn text(&self) -> &str {
        self.norm.text()
    }

    /// The normaliser, for its time map.
    pub fn normalizer(&self) -> &Normalizer {
        &self.norm
    }

    /// Current cursor (byte offset into [`text`](Transcript::text)).
    pub fn cursor(&self) -> usize {
        self.cursor
    }

    /// Move the cursor; clamped to the text and to a character boundary.
    pub fn set_cursor(&mut self, offset: usize) {
        let text = self.norm.text();
        let mut o = offset.min(text.len());
        while !text.is_char_boundary(o) {
            o -= 1;
        }
        self.cursor = o;
    }

    /// Text from the cursor to the end, not yet consumed by any match.
    pub fn unmatched(&self) -> &str {
        &self.norm.text()[self.cursor..]
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
    /// `search_from` (which must be ≥ the cursor); `before` still starts at the cursor. The
    /// engine uses this to avoid rescanning a long unmatched tail on every chunk.
    pub fn expect_from(&mut self, patterns: &[Regex], search_from: usize) -> Option<Match> {
        let mut from = search_from.max(self.cursor).min(self.norm.text().len());
        while !self.norm.text().is_char_boundary(from) {
            from -= 1;
        }
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
            start: caps_start,
            end: caps_end,
            before: text[self.cursor..caps_start].to_string(),
            matched: text[caps_start..caps_end].to_string(),
            groups,
            group_names: names,
            at: self.norm.time_at(caps_end.saturating_sub(1)),
        };
        self.cursor = caps_end;
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
}
