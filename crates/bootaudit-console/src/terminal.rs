//! The terminal the guest believes is on its serial line: a cursor on a fixed-size screen, and
//! the answers a VT220-class terminal gives to the queries programs send it.
//!
//! Recent systemd asks the console for the cursor position to learn the terminal's size (it
//! saves the cursor, moves it to row 32766 column 32766, asks `ESC[6n` and restores it: the
//! answer is the bottom-right corner), some shells ask for the device attributes, and each
//! waits for the answer. [`Terminal`] follows the cursor through the bytes the guest writes
//! (printable characters with pending wrap at the last column, CR, LF, BS, TAB, absolute and
//! relative cursor moves, save/restore, reset) and answers, in stream order:
//!
//! | query | name | answer |
//! |---|---|---|
//! | `ESC[6n` | cursor position report | `ESC[<row>;<col>R`, 1-based, from the tracked cursor |
//! | `ESC[5n` | device status | `ESC[0n` (ready, no malfunction) |
//! | `ESC[c`, `ESC[0c` | primary device attributes | `ESC[?62;22c` (VT220-class, ANSI colour) |
//! | `ESC[>c`, `ESC[>0c` | secondary device attributes | `ESC[>1;10;0c` (VT220, firmware 10) |
//! | `ESC[>q`, `ESC[>0q` | XTVERSION | none: a VT220 has no such query (the sender's DA1 sentinel answers) |
//!
//! Characters count one column each (no double-width), which is what the serial consoles'
//! ASCII and box drawing need. The parser keeps its state between calls, so a query split
//! across reads is still recognised; it shares no code with [`crate::normalize`], which removes
//! these sequences from the text.

/// Rows and columns of the screen the console claims to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TerminalSize {
    pub rows: u16,
    pub cols: u16,
}

impl Default for TerminalSize {
    /// 24 × 80: the VT220's screen, and what programs assume of a serial line that never said
    /// otherwise (the size bootaudit's consoles had before it answered anything).
    fn default() -> Self {
        TerminalSize { rows: 24, cols: 80 }
    }
}

/// A query the terminal recognises.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QueryKind {
    /// `ESC[6n`
    CursorPosition,
    /// `ESC[5n`
    Status,
    /// `ESC[c`, `ESC[0c`
    PrimaryAttributes,
    /// `ESC[>c`, `ESC[>0c`
    SecondaryAttributes,
    /// `ESC[>q`, `ESC[>0q`
    Version,
}

/// The primary device attributes answer: conformance level 2 (62, a VT220) with ANSI colour
/// (22). Matches `TERM=vt220`, what agetty and systemd's serial-getty give a serial console.
pub const PRIMARY_ATTRIBUTES: &[u8] = b"\x1b[?62;22c";
/// The secondary device attributes answer: terminal type 1 (VT220), version 10, no options.
pub const SECONDARY_ATTRIBUTES: &[u8] = b"\x1b[>1;10;0c";
/// The device status answer: ready.
pub const STATUS_OK: &[u8] = b"\x1b[0n";

/// One query seen in the stream, with the answer a terminal gives (`None`: it gives none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    pub kind: QueryKind,
    /// The query as received.
    pub raw: Vec<u8>,
    pub answer: Option<Vec<u8>>,
}

impl Query {
    /// The line the sent-direction record shows for it, e.g.
    /// `[answered terminal query ESC[6n with ESC[24;80R]`.
    pub fn record(&self) -> String {
        match &self.answer {
            Some(a) => format!(
                "[answered terminal query {} with {}]",
                printable(&self.raw),
                printable(a)
            ),
            None => format!(
                "[terminal query {} not answered: a VT220 has no such query]",
                printable(&self.raw)
            ),
        }
    }
}

/// Escape sequences as a reader writes them: `ESC` for the escape byte, `^X` for other
/// controls, `\xNN` for bytes that are not printable ASCII.
pub fn printable(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() + 4);
    for &b in bytes {
        match b {
            0x1b => s.push_str("ESC"),
            0x00..=0x1f => {
                s.push('^');
                s.push((b + 0x40) as char);
            }
            0x20..=0x7e => s.push(b as char),
            _ => s.push_str(&format!("\\x{b:02x}")),
        }
    }
    s
}

/// Longest parameter/intermediate part of a CSI kept; a longer one is no query and only
/// ends the sequence.
const MAX_PARAMS: usize = 32;
/// Longest string sequence (OSC, DCS, …) followed before it is given up, like the normaliser.
const MAX_STRING: usize = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Ground,
    Esc,
    /// `ESC` + intermediates, waiting for the final byte.
    EscInter,
    Csi,
    /// OSC/DCS/SOS/PM/APC body; `esc`: the last byte was ESC (maybe ST).
    Str {
        len: usize,
        esc: bool,
    },
}

/// Cursor tracking and query recognition over the guest's output.
#[derive(Debug, Clone)]
pub struct Terminal {
    size: TerminalSize,
    row: u16,
    col: u16,
    /// A character went into the last column: the next printable one wraps first.
    wrap_pending: bool,
    saved: (u16, u16),
    state: State,
    params: [u8; MAX_PARAMS],
    params_len: usize,
    params_overflow: bool,
}

impl Terminal {
    /// A terminal of `size` in its power-on state (cursor home).
    pub fn new(size: TerminalSize) -> Self {
        let size = TerminalSize {
            rows: size.rows.max(1),
            cols: size.cols.max(1),
        };
        Terminal {
            size,
            row: 1,
            col: 1,
            wrap_pending: false,
            saved: (1, 1),
            state: State::Ground,
            params: [0; MAX_PARAMS],
            params_len: 0,
            params_overflow: false,
        }
    }

    /// The cursor, 1-based `(row, column)`.
    pub fn cursor(&self) -> (u16, u16) {
        (self.row, self.col)
    }

    pub fn size(&self) -> TerminalSize {
        self.size
    }

    /// Follow `bytes` and append every query they complete to `out`, in order, each answered
    /// with the state the bytes before it left.
    pub fn feed(&mut self, bytes: &[u8], out: &mut Vec<Query>) {
        for &b in bytes {
            self.byte(b, out);
        }
    }

    fn byte(&mut self, b: u8, out: &mut Vec<Query>) {
        match self.state {
            State::Ground => match b {
                0x1b => self.state = State::Esc,
                0x00..=0x1f | 0x7f => self.control(b),
                // UTF-8 continuation bytes take no column of their own.
                0x80..=0xbf => {}
                _ => self.print(),
            },
            State::Esc => {
                self.state = State::Ground;
                match b {
                    b'[' => {
                        self.state = State::Csi;
                        self.params_len = 0;
                        self.params_overflow = false;
                    }
                    b']' | b'P' | b'X' | b'^' | b'_' => {
                        self.state = State::Str { len: 0, esc: false }
                    }
                    0x20..=0x2f => self.state = State::EscInter,
                    b'7' => self.saved = (self.row, self.col),
                    b'8' => self.restore(),
                    b'c' => {
                        self.row = 1;
                        self.col = 1;
                        self.saved = (1, 1);
                        self.wrap_pending = false;
                    }
                    b'D' => self.line_feed(),
                    b'E' => {
                        self.col = 1;
                        self.line_feed();
                    }
                    b'M' => {
                        self.row = self.row.saturating_sub(1).max(1);
                        self.wrap_pending = false;
                    }
                    0x1b => self.state = State::Esc,
                    0x00..=0x1f => {
                        self.state = State::Esc;
                        self.control(b);
                    }
                    _ => {}
                }
            }
            State::EscInter => match b {
                0x20..=0x2f => {}
                0x1b => self.state = State::Esc,
                0x00..=0x1f => self.control(b),
                _ => self.state = State::Ground,
            },
            State::Csi => match b {
                0x20..=0x3f => {
                    if self.params_len < MAX_PARAMS {
                        self.params[self.params_len] = b;
                        self.params_len += 1;
                    } else {
                        self.params_overflow = true;
                    }
                }
                0x40..=0x7e => {
                    self.state = State::Ground;
                    if !self.params_overflow {
                        self.csi(b, out);
                    }
                }
                0x1b => self.state = State::Esc,
                // C0 controls inside a CSI are executed, the CSI goes on (VT semantics).
                0x00..=0x1f => self.control(b),
                _ => self.state = State::Ground,
            },
            State::Str { len, esc } => {
                if esc {
                    // ST ends the string; any other ESC sequence aborts it and begins anew.
                    self.state = State::Esc;
                    if b == b'\\' {
                        self.state = State::Ground;
                    } else {
                        self.byte(b, out);
                    }
                    return;
                }
                self.state = match b {
                    0x07 => State::Ground,
                    0x1b => State::Str { len, esc: true },
                    // As the normaliser: a lost terminator ends at the line's end.
                    b'\n' => {
                        self.control(b);
                        State::Ground
                    }
                    _ if len >= MAX_STRING => State::Ground,
                    _ => State::Str {
                        len: len + 1,
                        esc: false,
                    },
                };
            }
        }
    }

    fn control(&mut self, b: u8) {
        match b {
            b'\r' => {
                self.col = 1;
                self.wrap_pending = false;
            }
            b'\n' | 0x0b | 0x0c => self.line_feed(),
            0x08 => {
                self.col = self.col.saturating_sub(1).max(1);
                self.wrap_pending = false;
            }
            b'\t' => {
                let next = ((self.col - 1) / 8 + 1) * 8 + 1;
                self.col = next.min(self.size.cols);
            }
            _ => {}
        }
    }

    fn line_feed(&mut self) {
        // At the bottom the screen scrolls: the cursor stays on the last row.
        self.row = (self.row + 1).min(self.size.rows);
        self.wrap_pending = false;
    }

    fn print(&mut self) {
        if self.wrap_pending {
            self.col = 1;
            self.line_feed();
        }
        if self.col < self.size.cols {
            self.col += 1;
        } else {
            self.wrap_pending = true;
        }
    }

    fn restore(&mut self) {
        (self.row, self.col) = self.saved;
        self.wrap_pending = false;
    }

    fn csi(&mut self, final_byte: u8, out: &mut Vec<Query>) {
        let params = &self.params[..self.params_len];
        let (prefix, rest) = match params.first() {
            Some(&p @ b'<'..=b'?') => (Some(p), &params[1..]),
            _ => (None, params),
        };
        // Intermediates (0x20–0x2F) make it another function altogether.
        if rest.iter().any(|b| (0x20..=0x2f).contains(b)) {
            return;
        }
        let mut n = [0u16; 2];
        for (i, part) in rest.split(|&b| b == b';').enumerate().take(2) {
            for &d in part.iter().filter(|d| d.is_ascii_digit()) {
                n[i] = n[i].saturating_mul(10).saturating_add(u16::from(d - b'0'));
            }
        }
        let only_zero = rest.iter().all(|&b| b == b'0');
        // A count parameter of 0 or none means 1.
        let count = n[0].max(1);
        let TerminalSize { rows, cols } = self.size;
        let query = |kind, answer: Option<Vec<u8>>| Query {
            kind,
            raw: [b"\x1b[", params, &[final_byte][..]].concat(),
            answer,
        };
        match (prefix, final_byte) {
            (None, b'n') if n[0] == 6 && rest.len() <= 2 => {
                let answer = format!("\x1b[{};{}R", self.row, self.col).into_bytes();
                out.push(query(QueryKind::CursorPosition, Some(answer)));
            }
            (None, b'n') if n[0] == 5 && rest.len() <= 2 => {
                out.push(query(QueryKind::Status, Some(STATUS_OK.to_vec())));
            }
            (None, b'c') if only_zero => out.push(query(
                QueryKind::PrimaryAttributes,
                Some(PRIMARY_ATTRIBUTES.to_vec()),
            )),
            (Some(b'>'), b'c') if only_zero => out.push(query(
                QueryKind::SecondaryAttributes,
                Some(SECONDARY_ATTRIBUTES.to_vec()),
            )),
            (Some(b'>'), b'q') if only_zero => out.push(query(QueryKind::Version, None)),
            (Some(_), _) => {}
            (None, b'H' | b'f') => {
                self.row = n[0].clamp(1, rows);
                self.col = n[1].clamp(1, cols);
            }
            (None, b'A') => self.row = self.row.saturating_sub(count).max(1),
            (None, b'B' | b'e') => self.row = self.row.saturating_add(count).min(rows),
            (None, b'C' | b'a') => self.col = self.col.saturating_add(count).min(cols),
            (None, b'D') => self.col = self.col.saturating_sub(count).max(1),
            (None, b'E') => {
                self.row = self.row.saturating_add(count).min(rows);
                self.col = 1;
            }
            (None, b'F') => {
                self.row = self.row.saturating_sub(count).max(1);
                self.col = 1;
            }
            (None, b'G' | b'`') => self.col = count.min(cols),
            (None, b'd') => self.row = count.min(rows),
            // DECSTBM homes the cursor.
            (None, b'r') => {
                self.row = 1;
                self.col = 1;
            }
            (None, b's') => self.saved = (self.row, self.col),
            (None, b'u') => self.restore(),
            _ => return,
        }
        self.wrap_pending = false;
    }
}

/// Recognises the queries in what the harness itself types, so that their echo is not taken
/// for the guest's (see `Console::send`). Only the recognition matters here, not the cursor.
#[derive(Debug, Clone)]
pub(crate) struct TypedQueries(Terminal);

impl TypedQueries {
    pub(crate) fn new() -> Self {
        TypedQueries(Terminal::new(TerminalSize::default()))
    }

    pub(crate) fn scan(&mut self, bytes: &[u8]) -> Vec<QueryKind> {
        let mut out = Vec::new();
        self.0.feed(bytes, &mut out);
        out.into_iter().map(|q| q.kind).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answers(t: &mut Terminal, bytes: &[u8]) -> Vec<(QueryKind, Option<String>)> {
        let mut out = Vec::new();
        t.feed(bytes, &mut out);
        out.into_iter()
            .map(|q| (q.kind, q.answer.map(|a| printable(&a))))
            .collect()
    }

    fn term() -> Terminal {
        Terminal::new(TerminalSize::default())
    }

    #[test]
    fn every_query_gets_a_vt220_answer() {
        let mut t = term();
        let got = answers(
            &mut t,
            b"\x1b[6n\x1b[5n\x1b[c\x1b[0c\x1b[>c\x1b[>0c\x1b[>0q\x1b[>q",
        );
        let cpr = Some("ESC[1;1R".to_string());
        let da1 = Some("ESC[?62;22c".to_string());
        let da2 = Some("ESC[>1;10;0c".to_string());
        assert_eq!(
            got,
            vec![
                (QueryKind::CursorPosition, cpr),
                (QueryKind::Status, Some("ESC[0n".to_string())),
                (QueryKind::PrimaryAttributes, da1.clone()),
                (QueryKind::PrimaryAttributes, da1),
                (QueryKind::SecondaryAttributes, da2.clone()),
                (QueryKind::SecondaryAttributes, da2),
                (QueryKind::Version, None),
                (QueryKind::Version, None),
            ]
        );
    }

    #[test]
    fn answers_are_no_queries_and_other_sequences_are_none() {
        let mut t = term();
        // Answers echoed back, private modes, colours, DA with parameters, DECXCPR.
        let got = answers(
            &mut t,
            b"\x1b[24;80R\x1b[?62;22c\x1b[>1;10;0c\x1b[0n\x1b[?2004h\x1b[1;31m\x1b[1c\x1b[?6n\x1b[!p",
        );
        assert!(got.is_empty(), "{got:?}");
    }

    #[test]
    fn systemd_size_probe_reads_the_bottom_right_corner() {
        let mut t = term();
        let mut probe = b"[  OK  ] Started foo.\r\n".to_vec();
        probe.extend_from_slice(b"\x1b7\x1b[32766;32766H\x1b[6n\x1b8\x1b[6n");
        let got = answers(&mut t, &probe);
        assert_eq!(
            got,
            vec![
                (QueryKind::CursorPosition, Some("ESC[24;80R".to_string())),
                (QueryKind::CursorPosition, Some("ESC[2;1R".to_string())),
            ]
        );
    }

    #[test]
    fn the_cursor_follows_text_wraps_and_moves() {
        let mut t = term();
        let mut out = Vec::new();
        t.feed(b"abc", &mut out);
        assert_eq!(t.cursor(), (1, 4));
        t.feed(b"\r\n\tx\x08\x08", &mut out);
        assert_eq!(t.cursor(), (2, 8));
        // 80 characters: the cursor stays in the last column, wrap pending.
        t.feed(b"\r", &mut out);
        t.feed(&[b'x'; 80], &mut out);
        assert_eq!(t.cursor(), (2, 80));
        t.feed(b"y", &mut out);
        assert_eq!(t.cursor(), (3, 2));
        t.feed("é│".as_bytes(), &mut out);
        assert_eq!(t.cursor(), (3, 4), "one column per character");
        t.feed(b"\x1b[10;20H\x1b[2A\x1b[3C\x1b[5G\x1b[7d", &mut out);
        assert_eq!(t.cursor(), (7, 5));
        t.feed(b"\x1b[s\x1b[H\x1b[u", &mut out);
        assert_eq!(t.cursor(), (7, 5));
        t.feed(&b"\n".repeat(100), &mut out);
        assert_eq!(t.cursor(), (24, 5), "the screen scrolls at the bottom");
        t.feed(b"\x1bc", &mut out);
        assert_eq!(t.cursor(), (1, 1));
        assert!(out.is_empty());
    }

    #[test]
    fn a_query_split_anywhere_is_recognised_once() {
        let input = b"ab\x1b]0;title\x07cd\x1b[6nef\x1b[>0c";
        let mut whole = term();
        let want = answers(&mut whole, input);
        assert_eq!(want.len(), 2);
        for cut in 0..=input.len() {
            let mut t = term();
            let mut got = answers(&mut t, &input[..cut]);
            got.extend(answers(&mut t, &input[cut..]));
            assert_eq!(got, want, "cut at {cut}");
        }
        let mut t = term();
        let mut got = Vec::new();
        for b in input {
            got.extend(answers(&mut t, std::slice::from_ref(b)));
        }
        assert_eq!(got, want, "byte by byte");
    }

    #[test]
    fn strings_and_junk_neither_hide_nor_invent_queries() {
        let mut t = term();
        // Inside an OSC title the bytes are text; an ESC there aborts it (a query follows).
        assert!(answers(&mut t, b"\x1b]0;[6n\x07").is_empty());
        assert_eq!(answers(&mut t, b"\x1b]0;x\x1b[6n").len(), 1);
        // An overlong CSI is no query; the stream goes on.
        let mut long = b"\x1b[".to_vec();
        long.extend(std::iter::repeat_n(b'6', 100));
        long.push(b'n');
        assert!(answers(&mut t, &long).is_empty());
        assert_eq!(answers(&mut t, b"\x00\xff\xc3\x1b[6n").len(), 1);
    }

    #[test]
    fn records_name_query_and_answer() {
        let mut t = term();
        let mut out = Vec::new();
        t.feed(b"\x1b[6n\x1b[>0q", &mut out);
        assert_eq!(
            out[0].record(),
            "[answered terminal query ESC[6n with ESC[1;1R]"
        );
        assert_eq!(
            out[1].record(),
            "[terminal query ESC[>0q not answered: a VT220 has no such query]"
        );
    }
}
