//! The console engine: one reader task owns the byte source, every chunk goes to the raw sink
//! with its arrival time and into the normalised [`Transcript`]; dialogues `expect` on it with a
//! host-side deadline and never burn CPU while they wait.
//!
//! The same engine serves a live QEMU chardev socket and a recorded log (any `AsyncRead`), which
//! is what makes `replay` reach the live run's verdicts.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use regex::Regex;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::terminal::{Query, QueryKind, Terminal, TerminalSize, TypedQueries};
use crate::transcript::{Match, Transcript, DEFAULT_MAX_TEXT, RESCAN_WINDOW};

/// Signature hits kept besides each signature's first and last: the most recent ones. A guest
/// that prints a failure line in a loop cannot grow the list; the first hit of a signature
/// (what a condition it concerns fails on) and its latest (a stall during the current wait,
/// the report being read) are always kept.
pub const MAX_RECENT_HITS: usize = 256;
/// Longest line a [`SignatureHit`] keeps (bytes, cut at a character boundary).
pub const MAX_HIT_LINE: usize = 4096;
/// Queries found in what the harness typed, waiting for their echo (at most this many, each
/// for [`ECHO_WINDOW`]).
const MAX_TYPED_QUERIES: usize = 64;
/// How long a query the harness typed is expected back as the terminal's echo: a query in the
/// guest's output within this time, of the same kind, is taken for the echo and not answered.
pub const ECHO_WINDOW: Duration = Duration::from_secs(5);
/// Answers waiting to be written; past this, a flood of queries goes unanswered (counted).
const ANSWER_QUEUE: usize = 16;
/// Terminal queries recorded in the sent-direction record; later ones are only counted
/// ([`Console::terminal_queries`]): a guest sends a few, a flood must not flood the record.
pub const MAX_QUERY_RECORDS: usize = 1000;

type Writer = Arc<tokio::sync::Mutex<Box<dyn AsyncWrite + Send + Unpin>>>;

/// What the engine reports to its sink, in arrival order. The raw bytes are unmodified: the
/// caller writes `serial.raw` from `Received` and a stamped `serial.log` from all of them.
/// `Sent` is the sent-direction record: the bytes typed, except that a password shows as
/// `[secret]` and a terminal query the console answered (or chose not to) as one marked line,
/// e.g. `[answered terminal query ESC[6n with ESC[24;80R]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConsoleEvent {
    /// Bytes the guest wrote, as read from the source.
    Received { at: Instant, bytes: Vec<u8> },
    /// Bytes the harness wrote to the guest, as the record shows them (see above).
    Sent { at: Instant, bytes: Vec<u8> },
    /// A failure signature matched a complete line.
    SignatureHit(SignatureHit),
    /// The source reached end of file (guest or QEMU gone) or failed; `error` says which.
    Closed { at: Instant, error: Option<String> },
}

/// Receiver of [`ConsoleEvent`]s. Called from the reader task: it must not block for long (a
/// slow sink delays reading, and with it every `expect`).
pub trait EventSink: Send + Sync + 'static {
    fn event(&self, event: ConsoleEvent);
}

impl EventSink for tokio::sync::mpsc::UnboundedSender<ConsoleEvent> {
    fn event(&self, event: ConsoleEvent) {
        // A gone receiver means nobody records any more; the console keeps working regardless.
        let _ = self.send(event);
    }
}

impl EventSink for std::sync::mpsc::Sender<ConsoleEvent> {
    fn event(&self, event: ConsoleEvent) {
        let _ = self.send(event);
    }
}

/// Adapter turning a closure into an [`EventSink`].
pub struct FnSink<F>(pub F);

impl<F: Fn(ConsoleEvent) + Send + Sync + 'static> EventSink for FnSink<F> {
    fn event(&self, event: ConsoleEvent) {
        (self.0)(event)
    }
}

/// A named failure signature: a regex checked against every complete line received.
#[derive(Debug, Clone)]
pub struct Signature {
    pub name: String,
    pub re: Regex,
}

impl Signature {
    pub fn new(name: impl Into<String>, re: Regex) -> Self {
        Signature {
            name: name.into(),
            re,
        }
    }
}

/// A line that matched a failure signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureHit {
    pub pattern_name: String,
    /// The whole normalised line, without its newline; of a line longer than
    /// [`MAX_HIT_LINE`], that many bytes from just before the match.
    pub line: String,
    /// Byte offset of the line in the transcript.
    pub offset: usize,
    /// Arrival time of the chunk that completed the line.
    pub at: Instant,
}

/// Why an `expect` (or `quiet_for`) did not succeed.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum ExpectError {
    #[error("timed out after {waited:?}; unmatched console text ends with: {tail:?}")]
    Timeout { waited: Duration, tail: String },
    #[error("console closed{}; unmatched console text ends with: {tail:?}",
        error.as_ref().map(|e| format!(" ({e})")).unwrap_or_default())]
    Closed { tail: String, error: Option<String> },
    #[error("failure signature {pattern_name}: {line}")]
    Signature {
        pattern_name: String,
        line: String,
        at: Instant,
    },
}

/// Why a `send` failed.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("this console has no writer (replay)")]
    NoWriter,
    #[error("writing to the console did not finish within {0:?}")]
    Timeout(Duration),
    #[error("writing to the console failed: {0}")]
    Io(#[from] std::io::Error),
    #[error("the console is closed ({0})")]
    Closed(CloseReason),
}

/// How the console's source ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloseReason {
    /// End of file: QEMU closed the serial socket (exited, or the chardev went away).
    Eof,
    /// Reading failed with this I/O error.
    Error(String),
}

impl std::fmt::Display for CloseReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CloseReason::Eof => write!(f, "end of file"),
            CloseReason::Error(e) => write!(f, "read error: {e}"),
        }
    }
}

/// What a console keeps in memory, for the bounds' tests and diagnostics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retained {
    /// Bytes of normalised text kept, and their bound ([`ConsoleConfig::max_transcript`]).
    pub transcript_bytes: usize,
    pub transcript_limit: usize,
    /// Entries of the offset → arrival-time map (8 bytes each).
    pub time_entries: usize,
    /// Signature hits kept, and the bytes of their lines.
    pub hits: usize,
    pub hit_bytes: usize,
    /// Typed queries awaiting their echo.
    pub typed_queries: usize,
}

/// What became of the terminal queries the guest sent (see [`crate::terminal`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueryCounts {
    /// Answers written to the guest.
    pub answered: u64,
    /// Queries a VT220 does not answer (XTVERSION).
    pub not_answered: u64,
    /// Queries that were the echo of what the harness typed.
    pub in_echo: u64,
    /// Queries left unanswered because answers were already queued (a flood of queries).
    pub dropped: u64,
    /// Answers whose write failed or timed out.
    pub failed: u64,
}

/// Settings of a [`Console`].
#[derive(Clone)]
pub struct ConsoleConfig {
    /// Failure signatures checked on every complete line.
    pub signatures: Vec<Signature>,
    /// Where raw traffic is reported; `None` discards it.
    pub sink: Option<Arc<dyn EventSink>>,
    /// What `send_line` appends. `\n` is what the pexpect harness sent successfully to agetty
    /// and bash on the serial tty; `\r` (what a terminal's Enter sends) works too.
    pub line_ending: String,
    /// Bound on one `send`: a QEMU that stopped reading its socket must not hang the harness.
    pub write_timeout: Duration,
    /// How many characters of unmatched text an error carries.
    pub tail_chars: usize,
    /// Size of one read from the source.
    pub read_buffer: usize,
    /// Bytes of normalised text the transcript keeps (see [`DEFAULT_MAX_TEXT`]); older text
    /// is dropped, the raw bytes still go to the sink.
    pub max_transcript: usize,
    /// The screen the console claims to be when it answers terminal queries (cursor position,
    /// device attributes, status); `None`: answer none. Only a console with a writer answers.
    pub terminal: Option<TerminalSize>,
}

impl Default for ConsoleConfig {
    fn default() -> Self {
        ConsoleConfig {
            signatures: Vec::new(),
            sink: None,
            line_ending: "\n".to_string(),
            write_timeout: Duration::from_secs(10),
            tail_chars: 2000,
            read_buffer: 8192,
            max_transcript: DEFAULT_MAX_TEXT,
            terminal: Some(TerminalSize::default()),
        }
    }
}

impl ConsoleConfig {
    /// Add a failure signature.
    pub fn signature(mut self, name: impl Into<String>, re: Regex) -> Self {
        self.signatures.push(Signature::new(name, re));
        self
    }

    /// Set the event sink.
    pub fn sink(mut self, sink: impl EventSink) -> Self {
        self.sink = Some(Arc::new(sink));
        self
    }
}

impl std::fmt::Debug for ConsoleConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsoleConfig")
            .field("signatures", &self.signatures)
            .field("sink", &self.sink.is_some())
            .field("line_ending", &self.line_ending)
            .field("write_timeout", &self.write_timeout)
            .field("max_transcript", &self.max_transcript)
            .field("terminal", &self.terminal)
            .finish()
    }
}

#[derive(Debug)]
struct Closed {
    reason: CloseReason,
}

impl Closed {
    fn error(&self) -> Option<String> {
        match &self.reason {
            CloseReason::Eof => None,
            CloseReason::Error(e) => Some(e.clone()),
        }
    }
}

/// A hit with its number.
type Numbered = (u64, SignatureHit);

/// Signature hits, bounded: each signature's first and last hit, and the most recent
/// [`MAX_RECENT_HITS`]. Hits are numbered in arrival order; those below `acknowledged` are.
#[derive(Default)]
struct Hits {
    next: u64,
    acknowledged: u64,
    recent: VecDeque<Numbered>,
    /// Signature name, its first and its last hit.
    ends: Vec<(String, Numbered, Numbered)>,
}

impl Hits {
    fn push(&mut self, hit: SignatureHit) {
        let n = self.next;
        self.next += 1;
        match self
            .ends
            .iter_mut()
            .find(|(name, ..)| *name == hit.pattern_name)
        {
            Some((_, _, last)) => *last = (n, hit.clone()),
            None => self
                .ends
                .push((hit.pattern_name.clone(), (n, hit.clone()), (n, hit.clone()))),
        }
        self.recent.push_back((n, hit));
        if self.recent.len() > MAX_RECENT_HITS {
            self.recent.pop_front();
        }
    }

    /// Every hit kept, in arrival order.
    fn kept(&self) -> Vec<&Numbered> {
        let mut all: Vec<&Numbered> = self
            .recent
            .iter()
            .chain(self.ends.iter().flat_map(|(_, f, l)| [f, l]))
            .collect();
        all.sort_by_key(|(n, _)| *n);
        all.dedup_by_key(|(n, _)| *n);
        all
    }

    fn pending(&self) -> Option<&Numbered> {
        let recent = self.recent.iter().find(|(n, _)| *n >= self.acknowledged);
        self.ends
            .iter()
            .flat_map(|(_, f, l)| [f, l])
            .filter(|(n, _)| *n >= self.acknowledged)
            .chain(recent)
            .min_by_key(|(n, _)| *n)
    }

    fn acknowledge_one(&mut self) {
        if let Some((n, _)) = self.pending() {
            self.acknowledged = n + 1;
        }
    }

    fn acknowledge_all(&mut self) {
        self.acknowledged = self.next;
    }
}

struct State {
    transcript: Transcript,
    signatures: Vec<Signature>,
    checking: bool,
    /// Absolute start of the first line not yet checked against the signatures.
    lines_checked: usize,
    /// Absolute offset up to which the unfinished line was searched for its end (a long line
    /// arriving in many chunks is searched once, not once per chunk).
    line_scanned: usize,
    hits: Hits,
    closed: Option<Closed>,
    bytes_received: u64,
    last_rx: Option<Instant>,
    /// Queries the harness typed, with when: their echo is no query of the guest's.
    typed_queries: VecDeque<(QueryKind, Instant)>,
    queries: QueryCounts,
}

impl State {
    fn pending_hit(&self) -> Option<&SignatureHit> {
        self.hits.pending().map(|(_, h)| h)
    }

    /// Check every complete line since the last check (and the partial last line at EOF).
    /// `changed_from`: where the last push changed the text (a backspace may have erased).
    fn check_lines(&mut self, changed_from: usize, at_eof: bool) -> Vec<SignatureHit> {
        let mut new_hits = Vec::new();
        let (start, end) = (self.transcript.start(), self.transcript.end());
        let text = self.transcript.text();
        // Relative positions: where the next line starts, and how far it was searched.
        let mut pos = self.lines_checked.clamp(start, end) - start;
        let mut scan = self.line_scanned.min(changed_from).clamp(start, end) - start;
        scan = scan.max(pos);
        loop {
            let (line_end, next) = match text[scan..].find('\n') {
                Some(i) => (scan + i, scan + i + 1),
                None if at_eof && pos < text.len() => (text.len(), text.len()),
                None => {
                    scan = text.len();
                    break;
                }
            };
            let line = &text[pos..line_end];
            if self.checking {
                let hit = self
                    .signatures
                    .iter()
                    .find_map(|s| s.re.find(line).map(|m| (s, m.start())));
                if let Some((sig, matched_at)) = hit {
                    let at = self
                        .transcript
                        .normalizer()
                        .time_at(next.saturating_sub(1))
                        .unwrap_or_else(Instant::now);
                    new_hits.push(SignatureHit {
                        pattern_name: sig.name.clone(),
                        line: hit_line(line, matched_at).to_string(),
                        offset: start + pos,
                        at,
                    });
                }
            }
            pos = next;
            scan = next;
            if pos >= text.len() {
                break;
            }
        }
        self.lines_checked = start + pos;
        self.line_scanned = start + scan;
        for h in &new_hits {
            self.hits.push(h.clone());
        }
        new_hits
    }

    /// Whether a query of `kind` is the echo of one the harness typed (and forget that one).
    fn typed_echo(&mut self, kind: QueryKind, now: Instant) -> bool {
        self.typed_queries
            .retain(|(_, at)| now.saturating_duration_since(*at) <= ECHO_WINDOW);
        match self.typed_queries.iter().position(|(k, _)| *k == kind) {
            Some(i) => {
                self.typed_queries.remove(i);
                true
            }
            None => false,
        }
    }
}

/// The line a hit keeps: all of it, or for a longer one [`MAX_HIT_LINE`] bytes from a little
/// before where the signature matched (the part that says what happened).
fn hit_line(line: &str, matched_at: usize) -> &str {
    if line.len() <= MAX_HIT_LINE {
        return line;
    }
    let mut from = matched_at.saturating_sub(MAX_HIT_LINE / 8);
    while !line.is_char_boundary(from) {
        from -= 1;
    }
    let mut to = (from + MAX_HIT_LINE).min(line.len());
    while !line.is_char_boundary(to) {
        to -= 1;
    }
    &line[from..to]
}

struct Shared {
    state: Mutex<State>,
    /// Bumped after every change of `state`; waiters sleep on it (no polling).
    changed: watch::Sender<u64>,
    sink: Option<Arc<dyn EventSink>>,
}

impl Shared {
    fn record(&self, at: Instant, line: String) {
        if let Some(s) = &self.sink {
            let mut bytes = line.into_bytes();
            bytes.push(b'\n');
            s.event(ConsoleEvent::Sent { at, bytes });
        }
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the transcript half-updated in a way that
        // matters more than losing the run, so poisoning is ignored.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A live or replayed serial console.
pub struct Console {
    shared: Arc<Shared>,
    changes: watch::Receiver<u64>,
    /// Shared with the task that writes the answers to terminal queries.
    writer: Option<Writer>,
    sink: Option<Arc<dyn EventSink>>,
    reader: JoinHandle<()>,
    answerer: Option<JoinHandle<()>>,
    typed: TypedQueries,
    created: Instant,
    line_ending: String,
    write_timeout: Duration,
    tail_chars: usize,
}

impl Drop for Console {
    fn drop(&mut self) {
        self.reader.abort();
        if let Some(a) = &self.answerer {
            a.abort();
        }
    }
}

impl Console {
    /// Start the engine on a byte source and an optional writer (none for replay). Spawns the
    /// reader task on the current tokio runtime.
    pub fn new<R, W>(source: R, writer: Option<W>, config: ConsoleConfig) -> Self
    where
        R: AsyncRead + Send + Unpin + 'static,
        W: AsyncWrite + Send + Unpin + 'static,
    {
        let (tx, rx) = watch::channel(0u64);
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                transcript: Transcript::with_limit(config.max_transcript),
                signatures: config.signatures,
                checking: true,
                lines_checked: 0,
                line_scanned: 0,
                hits: Hits::default(),
                closed: None,
                bytes_received: 0,
                last_rx: None,
                typed_queries: VecDeque::new(),
                queries: QueryCounts::default(),
            }),
            changed: tx,
            sink: config.sink.clone(),
        });
        let writer: Option<Writer> = writer.map(|w| {
            Arc::new(tokio::sync::Mutex::new(
                Box::new(w) as Box<dyn AsyncWrite + Send + Unpin>
            ))
        });
        // Terminal queries are answered only where there is somebody to answer (not replay).
        let (terminal, answerer) = match (&writer, config.terminal) {
            (Some(w), Some(size)) => {
                let (atx, arx) = mpsc::channel(ANSWER_QUEUE);
                let task = tokio::spawn(answer_loop(
                    arx,
                    w.clone(),
                    shared.clone(),
                    config.write_timeout,
                ));
                (Some((Terminal::new(size), atx)), Some(task))
            }
            _ => (None, None),
        };
        let reader = tokio::spawn(read_loop(
            source,
            shared.clone(),
            config.read_buffer.max(64),
            terminal,
        ));
        Console {
            shared,
            changes: rx,
            writer,
            sink: config.sink,
            reader,
            answerer,
            typed: TypedQueries::new(),
            created: Instant::now(),
            line_ending: config.line_ending,
            write_timeout: config.write_timeout,
            tail_chars: config.tail_chars,
        }
    }

    /// A console over a recorded log: no writer, `send` fails with [`SendError::NoWriter`].
    pub fn replay<R>(source: R, config: ConsoleConfig) -> Self
    where
        R: AsyncRead + Send + Unpin + 'static,
    {
        Self::new(source, None::<tokio::io::Sink>, config)
    }

    /// A console over one bidirectional stream (e.g. a `tokio::net::UnixStream` connected to
    /// QEMU's serial chardev).
    pub fn from_stream<S>(stream: S, config: ConsoleConfig) -> Self
    where
        S: AsyncRead + AsyncWrite + Send + 'static,
    {
        let (r, w) = tokio::io::split(stream);
        Self::new(r, Some(w), config)
    }

    /// Wait for the earliest match, after the cursor, of any of `patterns` (earliest start wins,
    /// ties go to the earlier pattern) and move the cursor to its end.
    ///
    /// Fails at once with [`ExpectError::Signature`] while an unacknowledged failure signature
    /// is pending (it takes precedence over a match), with [`ExpectError::Closed`] when the
    /// source has ended and the remaining text cannot match, and with
    /// [`ExpectError::Timeout`] at `deadline`.
    pub async fn expect(
        &mut self,
        patterns: &[Regex],
        deadline: Instant,
    ) -> Result<Match, ExpectError> {
        let started = Instant::now();
        // Text already searched without a match need not be searched again, except for the
        // window a match could still reach back into (see RESCAN_WINDOW).
        let mut search_from: Option<usize> = None;
        loop {
            // Mark the current version as seen *before* inspecting state, so a change made
            // after the inspection wakes the wait below: no lost wake-ups, no polling.
            self.changes.borrow_and_update();
            {
                let mut st = self.shared.lock();
                if let Some(hit) = st.pending_hit() {
                    return Err(signature_error(hit));
                }
                let from = search_from.unwrap_or(0).max(st.transcript.cursor());
                if let Some(m) = st.transcript.expect_from(patterns, from) {
                    return Ok(m);
                }
                let t = &st.transcript;
                search_from = Some(t.start() + t.relative(t.end().saturating_sub(RESCAN_WINDOW)));
                if let Some(c) = &st.closed {
                    return Err(ExpectError::Closed {
                        tail: st.transcript.unmatched_tail(self.tail_chars),
                        error: c.error(),
                    });
                }
                // Checked here, not only by the timer below: on a flooded console a change is
                // always ready, and a timeout polls its future before its deadline.
                if Instant::now() >= deadline {
                    return Err(ExpectError::Timeout {
                        waited: started.elapsed(),
                        tail: st.transcript.unmatched_tail(self.tail_chars),
                    });
                }
            }
            match tokio::time::timeout_at(deadline, self.changes.changed()).await {
                Ok(_) => continue,
                Err(_) => {
                    let st = self.shared.lock();
                    return Err(ExpectError::Timeout {
                        waited: started.elapsed(),
                        tail: st.transcript.unmatched_tail(self.tail_chars),
                    });
                }
            }
        }
    }

    /// Wait until no byte has arrived for `quiet` (counting from the last byte, or from the
    /// console's creation if none came yet), but not past `deadline` (then `Timeout`). Used to
    /// decide that a login prompt needs a poke. Fails early on a signature or a closed source.
    pub async fn quiet_for(
        &mut self,
        quiet: Duration,
        deadline: Instant,
    ) -> Result<(), ExpectError> {
        let started = Instant::now();
        loop {
            self.changes.borrow_and_update();
            let quiet_until = {
                let st = self.shared.lock();
                if let Some(hit) = st.pending_hit() {
                    return Err(signature_error(hit));
                }
                if let Some(c) = &st.closed {
                    return Err(ExpectError::Closed {
                        tail: st.transcript.unmatched_tail(self.tail_chars),
                        error: c.error(),
                    });
                }
                st.last_rx.unwrap_or(self.created) + quiet
            };
            let now = Instant::now();
            if now >= quiet_until {
                return Ok(());
            }
            if now >= deadline {
                let st = self.shared.lock();
                return Err(ExpectError::Timeout {
                    waited: started.elapsed(),
                    tail: st.transcript.unmatched_tail(self.tail_chars),
                });
            }
            // Sleep to the moment quiet would be reached; a new chunk wakes us to recompute.
            tokio::select! {
                _ = tokio::time::sleep_until(quiet_until.min(deadline)) => {}
                _ = self.changes.changed() => {}
            }
        }
    }

    /// Keep reading for `duration` (or until the source closes), e.g. so that a whole kernel
    /// panic lands in the transcript after its first line hit a signature. The reader task does
    /// the reading; this only waits.
    pub async fn drain_for(&mut self, duration: Duration) {
        let until = Instant::now() + duration;
        loop {
            self.changes.borrow_and_update();
            if self.is_closed() || Instant::now() >= until {
                return;
            }
            tokio::select! {
                _ = tokio::time::sleep_until(until) => return,
                _ = self.changes.changed() => {}
            }
        }
    }

    /// Wait until the source has ended (replay: the whole log is in) or `deadline`.
    /// Returns whether it ended.
    pub async fn wait_closed(&mut self, deadline: Instant) -> bool {
        loop {
            self.changes.borrow_and_update();
            if self.is_closed() {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            if tokio::time::timeout_at(deadline, self.changes.changed())
                .await
                .is_err()
            {
                return self.is_closed();
            }
        }
    }

    /// Write bytes to the guest (bounded by the configured write timeout) and report them as
    /// [`ConsoleEvent::Sent`].
    pub async fn send(&mut self, bytes: &[u8]) -> Result<(), SendError> {
        self.send_reported_as(bytes, bytes).await
    }

    /// Send a secret (a password) followed by the line ending; the sink sees only
    /// `[secret]` and the line ending, so no transcript holds it.
    pub async fn send_secret_line(&mut self, secret: &str) -> Result<(), SendError> {
        let mut b = Vec::with_capacity(secret.len() + self.line_ending.len());
        b.extend_from_slice(secret.as_bytes());
        b.extend_from_slice(self.line_ending.as_bytes());
        let mut shown = b"[secret]".to_vec();
        shown.extend_from_slice(self.line_ending.as_bytes());
        self.send_reported_as(&b, &shown).await
    }

    async fn send_reported_as(&mut self, bytes: &[u8], shown: &[u8]) -> Result<(), SendError> {
        let w = self.writer.as_ref().ok_or(SendError::NoWriter)?;
        if let Some(reason) = self.closed() {
            return Err(SendError::Closed(reason));
        }
        let at = Instant::now();
        // The terminal echoes what is typed: a query in it is ours, not the guest's.
        let typed = self.typed.scan(bytes);
        if !typed.is_empty() {
            let mut st = self.shared.lock();
            for kind in typed {
                st.typed_queries.push_back((kind, at));
                if st.typed_queries.len() > MAX_TYPED_QUERIES {
                    st.typed_queries.pop_front();
                }
            }
        }
        let write = async {
            let mut w = w.lock().await;
            w.write_all(bytes).await?;
            w.flush().await
        };
        match tokio::time::timeout(self.write_timeout, write).await {
            Err(_) => return Err(SendError::Timeout(self.write_timeout)),
            Ok(r) => r?,
        }
        if let Some(s) = &self.sink {
            s.event(ConsoleEvent::Sent {
                at,
                bytes: shown.to_vec(),
            });
        }
        Ok(())
    }

    /// Send `line` followed by the configured line ending.
    pub async fn send_line(&mut self, line: &str) -> Result<(), SendError> {
        let mut b = Vec::with_capacity(line.len() + self.line_ending.len());
        b.extend_from_slice(line.as_bytes());
        b.extend_from_slice(self.line_ending.as_bytes());
        self.send(&b).await
    }

    /// Total raw bytes received so far.
    pub fn bytes_received(&self) -> u64 {
        self.shared.lock().bytes_received
    }

    /// Arrival time of the last chunk, if any.
    pub fn last_received_at(&self) -> Option<Instant> {
        self.shared.lock().last_rx
    }

    /// Whether the source has ended.
    pub fn is_closed(&self) -> bool {
        self.shared.lock().closed.is_some()
    }

    /// How the source ended (end of file or a read error), once it has.
    pub fn closed(&self) -> Option<CloseReason> {
        self.shared.lock().closed.as_ref().map(|c| c.reason.clone())
    }

    /// What the console keeps in memory (each part bounded, see docs/console.md).
    pub fn retained(&self) -> Retained {
        let st = self.shared.lock();
        let kept = st.hits.kept();
        Retained {
            transcript_bytes: st.transcript.retained(),
            transcript_limit: st.transcript.limit(),
            time_entries: st.transcript.normalizer().time_entries(),
            hits: kept.len(),
            hit_bytes: kept.iter().map(|(_, h)| h.line.len()).sum(),
            typed_queries: st.typed_queries.len(),
        }
    }

    /// What became of the guest's terminal queries so far.
    pub fn terminal_queries(&self) -> QueryCounts {
        self.shared.lock().queries
    }

    /// A copy of the normalised transcript kept (the last [`ConsoleConfig::max_transcript`]
    /// bytes at most).
    pub fn transcript(&self) -> String {
        self.shared.lock().transcript.text().to_string()
    }

    /// Run `f` on the transcript without copying it (don't hold up the reader for long).
    pub fn with_transcript<T>(&self, f: impl FnOnce(&Transcript) -> T) -> T {
        f(&self.shared.lock().transcript)
    }

    /// Arrival time of the text at absolute byte `offset` of the transcript (to stamp lines).
    pub fn time_at(&self, offset: usize) -> Option<Instant> {
        self.shared.lock().transcript.time_at(offset)
    }

    /// The cursor (absolute byte offset into the transcript, see [`Transcript`]).
    pub fn cursor(&self) -> usize {
        self.shared.lock().transcript.cursor()
    }

    /// Move the cursor, e.g. to the end before sending a command whose answer must be new.
    pub fn set_cursor(&mut self, offset: usize) {
        self.shared.lock().transcript.set_cursor(offset)
    }

    /// Move the cursor to the end of the text received so far.
    pub fn skip_to_end(&mut self) {
        let mut st = self.shared.lock();
        let end = st.transcript.end();
        st.transcript.set_cursor(end);
    }

    /// The signature hits so far, acknowledged or not, in arrival order: all of them, or, once
    /// more came, each signature's first and last and the [`MAX_RECENT_HITS`] most recent.
    pub fn signature_hits(&self) -> Vec<SignatureHit> {
        let st = self.shared.lock();
        st.hits.kept().into_iter().map(|(_, h)| h.clone()).collect()
    }

    /// The first unacknowledged signature hit, if any.
    pub fn pending_signature(&self) -> Option<SignatureHit> {
        self.shared.lock().pending_hit().cloned()
    }

    /// Acknowledge the pending hit only — the one the last `expect` failed with: a later hit
    /// (a panic in the same chunk as a line that concerned somebody else) still ends the
    /// next wait.
    pub fn acknowledge_signature(&mut self) {
        self.shared.lock().hits.acknowledge_one();
    }

    /// Acknowledge all hits so far: `expect` works again (e.g. to collect diagnostics after a
    /// unit failure). Lines arriving later are still checked.
    pub fn clear_signature(&mut self) {
        self.shared.lock().hits.acknowledge_all();
    }

    /// Add a signature; it applies to lines completed from now on.
    pub fn add_signature(&mut self, signature: Signature) {
        self.shared.lock().signatures.push(signature);
    }

    /// Turn signature checking off (lines arriving meanwhile are never checked) or back on —
    /// for commands whose own output quotes failures, like `journalctl -u unit`.
    pub fn set_signature_checking(&mut self, on: bool) {
        self.shared.lock().checking = on;
    }
}

fn signature_error(hit: &SignatureHit) -> ExpectError {
    ExpectError::Signature {
        pattern_name: hit.pattern_name.clone(),
        line: hit.line.clone(),
        at: hit.at,
    }
}

async fn read_loop<R: AsyncRead + Unpin>(
    mut source: R,
    shared: Arc<Shared>,
    buf_size: usize,
    mut terminal: Option<(Terminal, mpsc::Sender<Job>)>,
) {
    let mut buf = vec![0u8; buf_size];
    let mut queries = Vec::new();
    loop {
        let r = source.read(&mut buf).await;
        let at = Instant::now();
        match r {
            Ok(n) if n > 0 => {
                let chunk = &buf[..n];
                if let Some(s) = &shared.sink {
                    s.event(ConsoleEvent::Received {
                        at,
                        bytes: chunk.to_vec(),
                    });
                }
                if let Some((t, _)) = &mut terminal {
                    t.feed(chunk, &mut queries);
                }
                let hits = {
                    let mut st = shared.lock();
                    let changed = st.transcript.push(chunk, at);
                    st.bytes_received += n as u64;
                    st.last_rx = Some(at);
                    st.check_lines(changed, false)
                };
                report_hits(&shared.sink, hits);
                if let Some((_, answers)) = &terminal {
                    for q in queries.drain(..) {
                        answer(&shared, answers, q, at);
                    }
                }
                shared.changed.send_modify(|v| *v += 1);
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            other => {
                let reason = match other {
                    Err(e) => CloseReason::Error(e.to_string()),
                    _ => CloseReason::Eof,
                };
                let hits = {
                    let mut st = shared.lock();
                    st.transcript.finish();
                    let end = st.transcript.end();
                    let hits = st.check_lines(end, true);
                    st.closed = Some(Closed {
                        reason: reason.clone(),
                    });
                    hits
                };
                report_hits(&shared.sink, hits);
                if let Some(s) = &shared.sink {
                    let error = Closed { reason }.error();
                    s.event(ConsoleEvent::Closed { at, error });
                }
                shared.changed.send_modify(|v| *v += 1);
                return;
            }
        }
    }
}

/// What the answering task does, in the order the queries came.
#[derive(Debug)]
enum Job {
    /// Write the answer and record it.
    Answer(Query),
    /// Only record this line (a query not answered, and why).
    Note(String),
}

/// Hand a query to the answering task (answer it, or record why not); past a full queue it is
/// dropped and counted.
fn answer(shared: &Shared, answers: &mpsc::Sender<Job>, q: Query, at: Instant) {
    let mut st = shared.lock();
    let job = if st.typed_echo(q.kind, at) {
        st.queries.in_echo += 1;
        Job::Note(format!(
            "[terminal query {} in the echo of what bootaudit typed: not answered]",
            crate::terminal::printable(&q.raw)
        ))
    } else if q.answer.is_none() {
        st.queries.not_answered += 1;
        Job::Note(q.record())
    } else {
        Job::Answer(q)
    };
    let answering = matches!(job, Job::Answer(_));
    if answers.try_send(job).is_err() && answering {
        st.queries.dropped += 1;
    }
}

/// Write the answers to terminal queries, in order, each bounded like any write, and record
/// each (the first [`MAX_QUERY_RECORDS`]) in the sent-direction record.
async fn answer_loop(
    mut jobs: mpsc::Receiver<Job>,
    writer: Writer,
    shared: Arc<Shared>,
    write_timeout: Duration,
) {
    let mut records = 0usize;
    while let Some(job) = jobs.recv().await {
        let at = Instant::now();
        let line = match job {
            Job::Note(line) => line,
            Job::Answer(q) => {
                let answer = q.answer.as_deref().unwrap_or_default();
                let write = async {
                    let mut w = writer.lock().await;
                    w.write_all(answer).await?;
                    w.flush().await
                };
                let written =
                    matches!(tokio::time::timeout(write_timeout, write).await, Ok(Ok(())));
                let mut st = shared.lock();
                match written {
                    true => st.queries.answered += 1,
                    false => st.queries.failed += 1,
                }
                drop(st);
                if !written {
                    continue;
                }
                q.record()
            }
        };
        records += 1;
        match records.cmp(&MAX_QUERY_RECORDS) {
            std::cmp::Ordering::Less => shared.record(at, line),
            std::cmp::Ordering::Equal => shared.record(
                at,
                format!("{line} [and no more terminal queries recorded: a guest that floods them is only counted]"),
            ),
            std::cmp::Ordering::Greater => {}
        }
    }
}

fn report_hits(sink: &Option<Arc<dyn EventSink>>, hits: Vec<SignatureHit>) {
    if let Some(s) = sink {
        for h in hits {
            s.event(ConsoleEvent::SignatureHit(h));
        }
    }
}

/// Convenience for tests and callers: a deadline `d` from now.
pub fn deadline_in(d: Duration) -> Instant {
    Instant::now() + d
}
