//! Command framing: wrap a shell command so its output and exit code come back between markers
//! that the terminal's echo of the command line can never produce.
//!
//! The line sent is
//! `printf '%s %s\n' "BA""_<tok>_BEGIN" 'CMD'; { CMD ; } </dev/null 2>&1; printf '\nBA''_%s_END rc=%d\n' <tok> $?`.
//! The begin marker line names the command (as the shell prints it, not as the terminal echoes
//! it): an echo may be garbled by line editing (readline scrolls long lines horizontally on a
//! dumb terminal), but the recording still says which command each frame answers — what
//! `bootaudit replay` needs.
//! The echo shows `"BA""_<tok>…` and `BA''_%s_END`: quotes split every marker, so only the
//! shell's real output contains `BA_<tok>_BEGIN` / `BA_<tok>_END rc=N` — the old harness
//! matched its marker word inside the echoed command and concluded wrongly (corpus T10).
//! Markers are short and the token alphanumeric so a wrapped echo (readline breaks long lines
//! with `\r`) or a glued prompt cannot disturb them; `$?` travels with the end marker, so the
//! exit code costs no second round trip. Stdin is `/dev/null` so a command that reads input
//! (a pager, a confirmation) cannot swallow what the harness types next.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};

use regex::Regex;

/// Prefix of every marker.
pub const MARKER_PREFIX: &str = "BA";

/// Why a command cannot be framed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("the command spans several lines; a framed command must be one line")]
    MultiLine,
    #[error("the command is empty")]
    Empty,
    #[error("the token must be 1 to 32 ASCII letters or digits, got {0:?}")]
    BadToken(String),
}

/// A framed command: the line to send and the regexes of its two markers.
#[derive(Debug, Clone)]
pub struct Framed {
    pub token: String,
    /// The line to send (without line ending).
    pub line: String,
    /// Matches the begin marker line, newline included.
    pub begin_re: Regex,
    /// Matches the end marker line; group 1 is the exit code.
    pub end_re: Regex,
}

/// What a framed command printed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FramedOutput {
    /// Output lines of the command, noise removed, in order.
    pub lines: Vec<String>,
    /// Console lines (kernel, systemd, profile noise) that landed between the markers.
    pub interleaved: Vec<String>,
    /// The command's exit status.
    pub exit_code: i32,
    /// Everything between the markers, unfiltered.
    pub raw: String,
}

impl FramedOutput {
    /// The output lines joined with `\n`.
    pub fn text(&self) -> String {
        self.lines.join("\n")
    }
}

/// A fresh random alphanumeric token (10 lowercase letters/digits). Not cryptographic: it only
/// has to differ from anything the guest prints and from earlier tokens of the run.
pub fn fresh_token() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    // RandomState is seeded from the OS once per process and perturbed per instance; hashing a
    // counter and the time through it gives distinct, unpredictable tokens without a rand crate.
    let mut h = RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    h.write_u64(nanos);
    let mut x = h.finish();
    let mut s = String::with_capacity(10);
    for _ in 0..10 {
        s.push(ALPHABET[(x % 36) as usize] as char);
        x /= 36;
    }
    s
}

/// Quote for a POSIX shell as one word.
pub fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// Frame `cmd` with a fresh token.
pub fn frame(cmd: &str) -> Result<Framed, FrameError> {
    frame_with_token(cmd, &fresh_token())
}

/// Frame `cmd` with its stdin left on the terminal, for a command that must read from it (`su`
/// asking for a password); the command closes its own stdin where it runs something else.
pub fn frame_on_terminal(cmd: &str) -> Result<Framed, FrameError> {
    frame_inner(cmd, &fresh_token(), false)
}

/// Frame `cmd` with the given token (tests, reproducible transcripts).
///
/// `cmd` must be one line and must not end in a comment (`# …` would swallow the closing
/// `; }`); it runs in a `{ …; }` group in the current shell, so `cd` and `export` persist.
pub fn frame_with_token(cmd: &str, token: &str) -> Result<Framed, FrameError> {
    frame_inner(cmd, token, true)
}

fn frame_inner(cmd: &str, token: &str, stdin_null: bool) -> Result<Framed, FrameError> {
    if token.is_empty() || token.len() > 32 || !token.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(FrameError::BadToken(token.to_string()));
    }
    if cmd.contains(['\n', '\r']) {
        return Err(FrameError::MultiLine);
    }
    let cmd = cmd.trim();
    if cmd.is_empty() {
        return Err(FrameError::Empty);
    }
    let p = MARKER_PREFIX;
    let quoted = shell_quote(cmd);
    let stdin = if stdin_null { " </dev/null" } else { "" };
    let line = format!(
        "printf '%s %s\\n' \"{p}\"\"_{token}_BEGIN\" {quoted}; {{ {cmd} ; }}{stdin} 2>&1; \
         printf '\\n{p}''_%s_END rc=%d\\n' {token} $?"
    );
    let begin_re =
        Regex::new(&format!("{p}_{token}_BEGIN(?: [^\n]*)?\n")).expect("static marker regex");
    let end_re =
        Regex::new(&format!("{p}_{token}_END rc=([0-9]+)\n")).expect("static marker regex");
    Ok(Framed {
        token: token.to_string(),
        line,
        begin_re,
        end_re,
    })
}

/// A framed line found in a line of text: the line the harness typed, or the terminal's echo
/// of it after a prompt. It lets a transcript show the command as typed and its framing apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TypedFrame<'a> {
    /// What came before the framed line (a prompt in an echo; empty in a sent line).
    pub before: &'a str,
    pub token: &'a str,
    /// The command, as given to [`frame`].
    pub command: &'a str,
}

/// The inverse of the framing: the framed line in `text`, whole to its end, with its command.
/// `None` for anything else, a wrapped or garbled echo included (that is shown as it came).
pub fn find_typed_frame(text: &str) -> Option<TypedFrame<'_>> {
    let p = MARKER_PREFIX;
    let head = format!("printf '%s %s\\n' \"{p}\"\"_");
    let start = text.find(&head)?;
    let rest = &text[start + head.len()..];
    let (token, rest) = rest.split_once("_BEGIN\" ")?;
    if token.is_empty() || !token.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return None;
    }
    let tail = format!(" 2>&1; printf '\\n{p}''_%s_END rc=%d\\n' {token} $?");
    let middle = rest.trim_end().strip_suffix(tail.as_str())?;
    let middle = middle.strip_suffix(" </dev/null").unwrap_or(middle);
    let group = middle.strip_suffix(" ; }")?;
    // `'CMD'; { CMD`: the split where the quoted half quotes the other half.
    group.match_indices("; { ").find_map(|(at, sep)| {
        let command = &group[at + sep.len()..];
        (shell_quote(command) == group[..at]).then_some(TypedFrame {
            before: &text[..start],
            token,
            command,
        })
    })
}

/// Every begin marker in `text` with the token and the command it announces, in order.
pub fn announced_commands(text: &str) -> Vec<(String, String)> {
    let re = Regex::new(&format!(
        "{MARKER_PREFIX}_([a-z0-9]{{1,32}})_BEGIN ([^\n]*)\n"
    ))
    .expect("static regex");
    re.captures_iter(text)
        .map(|c| (c[1].to_string(), c[2].to_string()))
        .collect()
}

impl Framed {
    /// Find this command's markers in normalised `text` (the first begin marker, then the first
    /// end marker after it) and parse what lies between. `None` if either is missing.
    pub fn extract(&self, text: &str, noise: &NoiseFilter) -> Option<FramedOutput> {
        let b = self.begin_re.find(text)?;
        let e = self.end_re.captures_at(text, b.end())?;
        let m = e.get(0)?;
        let rc = e.get(1)?.as_str().parse().unwrap_or(i32::MAX);
        Some(parse_between(&text[b.end()..m.start()], rc, noise))
    }
}

/// Which console lines are not the command's output.
#[derive(Debug, Clone, Default)]
pub struct NoiseFilter {
    /// A line matching any of these (`is_match`, so anchor with `^` as needed) is noise.
    pub patterns: Vec<Regex>,
    /// A pattern that, found *inside* a line, marks where a console message was glued onto an
    /// unfinished output line; the message (to the end of the line) is noise and the output
    /// continues on the next line.
    pub glued: Option<Regex>,
}

impl NoiseFilter {
    /// No filtering at all.
    pub fn none() -> Self {
        Self::default()
    }

    /// Kernel printk lines (`[   12.345678] …`, also glued mid-line) and systemd status lines
    /// (`[  OK  ] …`, `[FAILED] …`, `         Starting …`). Not for commands whose own output is
    /// kernel log lines (`dmesg`): use [`NoiseFilter::none`] there, or read `raw`.
    pub fn default_console() -> Self {
        NoiseFilter {
            patterns: vec![
                Regex::new(r"^\[\s*\d+\.\d+\] ").unwrap(),
                Regex::new(r"^\[\s*(?:OK|FAILED|DEPEND|TIME|\*+)\s*\] ").unwrap(),
                Regex::new(
                    r"^\s+(?:Starting|Stopping|Mounting|Unmounting|Activating|Deactivating) .*\.\.\.$",
                )
                .unwrap(),
            ],
            glued: Some(Regex::new(r"\[\s*\d+\.\d{6}\] ").unwrap()),
        }
    }

    /// Add patterns (e.g. a profile's `^LAN IPv4 address: `, `^<<< Welcome to `).
    pub fn with(mut self, patterns: impl IntoIterator<Item = Regex>) -> Self {
        self.patterns.extend(patterns);
        self
    }

    /// Whether a whole line is noise.
    pub fn is_noise(&self, line: &str) -> bool {
        self.patterns.iter().any(|p| p.is_match(line))
    }
}

/// Split the text between the begin and end markers into output lines and interleaved console
/// lines. `between` starts right after the begin marker's newline and ends right before the end
/// marker (which the framing puts on a line of its own with an extra leading newline).
pub fn parse_between(between: &str, exit_code: i32, noise: &NoiseFilter) -> FramedOutput {
    let mut lines: Vec<String> = Vec::new();
    let mut interleaved = Vec::new();
    let mut carry: Option<String> = None;
    let mut parts: Vec<&str> = between.split('\n').collect();
    // The end marker starts a line, so the last part is what precedes it on its line: normally
    // empty. Keep it only if something was glued there.
    if parts.last() == Some(&"") {
        parts.pop();
    }
    for part in parts {
        if noise.is_noise(part) {
            interleaved.push(part.to_string());
            continue;
        }
        if let Some(g) = noise.glued.as_ref().and_then(|g| g.find(part)) {
            if g.start() > 0 {
                let prefix = &part[..g.start()];
                interleaved.push(part[g.start()..].to_string());
                let joined = carry.take().unwrap_or_default() + prefix;
                carry = Some(joined);
                continue;
            }
        }
        let line = match carry.take() {
            Some(c) => c + part,
            None => part.to_string(),
        };
        lines.push(line);
    }
    if let Some(c) = carry {
        lines.push(c);
    }
    // The framing's `\n` before the end marker adds one empty line when the output already
    // ended with a newline; it is not the command's.
    if lines.last().is_some_and(|l| l.is_empty()) {
        lines.pop();
    }
    FramedOutput {
        lines,
        interleaved,
        exit_code,
        raw: between.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_framed_line_gives_back_its_command() {
        for cmd in [
            "id -u",
            "printf '%s; { x ; }\\n' \"a b\"",
            "cat /x </dev/null",
        ] {
            for framed in [frame(cmd).unwrap(), frame_on_terminal(cmd).unwrap()] {
                let found = find_typed_frame(&framed.line).expect(cmd);
                assert_eq!((found.before, found.command), ("", cmd));
                assert_eq!(found.token, framed.token);
                let echo = format!("[root@x:~]# {}\r", framed.line);
                let found = find_typed_frame(&echo).expect(cmd);
                assert_eq!((found.before, found.command), ("[root@x:~]# ", cmd));
            }
        }
        let line = frame("id -u").unwrap().line;
        // Cut (a wrapped echo), or not framed at all: nothing.
        assert_eq!(find_typed_frame(&line[..line.len() - 5]), None);
        assert_eq!(find_typed_frame("printf '%s %s\\n' \"BA\"\"_x"), None);
        assert_eq!(find_typed_frame("echo hi"), None);
    }
}
