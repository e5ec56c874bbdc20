//! The console engine: one reader task owns the byte source, every chunk goes to the raw sink
//! with its arrival time and into the normalised [`Transcript`]; dialogues `expect` on it with a
//! host-side deadline and never burn CPU while they wait.
//!
//! The same engine serves a live QEMU chardev socket and a recorded log (any `AsyncRead`), which
//! is what makes `replay` reach the live run's verdicts.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use regex::Regex;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::transcript::{Match, Transcript, RESCAN_WINDOW};

/// What the engine reports to its sink, in arrival order. The raw bytes are unmodified: the
/// caller writes `serial.raw` from `Received` and a stamped `serial.log` from all of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConsoleEvent {
    /// Bytes the guest wrote, as read from the source.
    Received { at: Instant, bytes: Vec<u8> },
    /// Bytes the harness wrote to the guest.
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
    /// The whole normalised line, without its newline.
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
            .finish()
    }
}

#[derive(Debug)]
struct Closed {
    error: Option<String>,
}

struct State {
    transcript: Transcript,
    signatures: Vec<Signature>,
    checking: bool,
    /// Start of the first line not yet checked against the signatures.
    lines_checked: usize,
    hits: Vec<SignatureHit>,
    /// Hits before this index were acknowledged (`acknowledge_signature`, `clear_signature`).
    acknowledged: usize,
    closed: Option<Closed>,
    bytes_received: u64,
    last_rx: Option<Instant>,
}

impl State {
    fn pending_hit(&self) -> Option<&SignatureHit> {
        self.hits.get(self.acknowledged)
    }

    /// Check every complete line since the last check (and the partial last line at EOF).
    fn check_lines(&mut self, at_eof: bool) -> Vec<SignatureHit> {
        let mut new_hits = Vec::new();
        let text = self.transcript.text();
        let mut pos = self.lines_checked.min(text.len());
        loop {
            let rest = &text[pos..];
            let (line, next) = match rest.find('\n') {
                Some(i) => (&rest[..i], pos + i + 1),
                None if at_eof && !rest.is_empty() => (rest, text.len()),
                None => break,
            };
            if self.checking {
                if let Some(sig) = self.signatures.iter().find(|s| s.re.is_match(line)) {
                    let at = self
                        .transcript
                        .normalizer()
                        .time_at(next.saturating_sub(1))
                        .unwrap_or_else(Instant::now);
                    new_hits.push(SignatureHit {
                        pattern_name: sig.name.clone(),
                        line: line.to_string(),
                        offset: pos,
                        at,
                    });
                }
            }
            pos = next;
            if pos >= text.len() {
                break;
            }
        }
        self.lines_checked = pos;
        self.hits.extend(new_hits.iter().cloned());
        new_hits
    }
}

struct Shared {
    state: Mutex<State>,
    /// Bumped after every change of `state`; waiters sleep on it (no polling).
    changed: watch::Sender<u64>,
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
    writer: Option<Box<dyn AsyncWrite + Send + Unpin>>,
    sink: Option<Arc<dyn EventSink>>,
    reader: JoinHandle<()>,
    created: Instant,
    line_ending: String,
    write_timeout: Duration,
    tail_chars: usize,
}

impl Drop for Console {
    fn drop(&mut self) {
        self.reader.abort();
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
                transcript: Transcript::new(),
                signatures: config.signatures,
                checking: true,
                lines_checked: 0,
                hits: Vec::new(),
                acknowledged: 0,
                closed: None,
                bytes_received: 0,
                last_rx: None,
            }),
            changed: tx,
        });
        let reader = tokio::spawn(read_loop(
            source,
            shared.clone(),
            config.sink.clone(),
            config.read_buffer.max(64),
        ));
        Console {
            shared,
            changes: rx,
            writer: writer.map(|w| Box::new(w) as Box<dyn AsyncWrite + Send + Unpin>),
            sink: config.sink,
            reader,
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
                let text = st.transcript.text();
                let mut next = text.len().saturating_sub(RESCAN_WINDOW);
                while !text.is_char_boundary(next) {
                    next -= 1;
                }
                search_from = Some(next);
                if let Some(c) = &st.closed {
                    return Err(ExpectError::Closed {
                        tail: st.transcript.unmatched_tail(self.tail_chars),
                        error: c.error.clone(),
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
                        error: c.error.clone(),
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
            if self.is_closed() {
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
        let w = self.writer.as_mut().ok_or(SendError::NoWriter)?;
        let at = Instant::now();
        let write = async {
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

    /// A copy of the whole normalised transcript.
    pub fn transcript(&self) -> String {
        self.shared.lock().transcript.text().to_string()
    }

    /// Run `f` on the transcript without copying it (don't hold up the reader for long).
    pub fn with_transcript<T>(&self, f: impl FnOnce(&Transcript) -> T) -> T {
        f(&self.shared.lock().transcript)
    }

    /// Arrival time of the text at byte `offset` of the transcript (to stamp lines).
    pub fn time_at(&self, offset: usize) -> Option<Instant> {
        self.shared.lock().transcript.normalizer().time_at(offset)
    }

    /// The cursor (byte offset into the transcript).
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
        let len = st.transcript.text().len();
        st.transcript.set_cursor(len);
    }

    /// Every signature hit so far, acknowledged or not.
    pub fn signature_hits(&self) -> Vec<SignatureHit> {
        self.shared.lock().hits.clone()
    }

    /// The first unacknowledged signature hit, if any.
    pub fn pending_signature(&self) -> Option<SignatureHit> {
        self.shared.lock().pending_hit().cloned()
    }

    /// Acknowledge the pending hit only — the one the last `expect` failed with: a later hit
    /// (a panic in the same chunk as a line that concerned somebody else) still ends the
    /// next wait.
    pub fn acknowledge_signature(&mut self) {
        let mut st = self.shared.lock();
        st.acknowledged = (st.acknowledged + 1).min(st.hits.len());
    }

    /// Acknowledge all hits so far: `expect` works again (e.g. to collect diagnostics after a
    /// unit failure). Lines arriving later are still checked.
    pub fn clear_signature(&mut self) {
        let mut st = self.shared.lock();
        st.acknowledged = st.hits.len();
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
    sink: Option<Arc<dyn EventSink>>,
    buf_size: usize,
) {
    let mut buf = vec![0u8; buf_size];
    loop {
        let r = source.read(&mut buf).await;
        let at = Instant::now();
        match r {
            Ok(n) if n > 0 => {
                let chunk = &buf[..n];
                if let Some(s) = &sink {
                    s.event(ConsoleEvent::Received {
                        at,
                        bytes: chunk.to_vec(),
                    });
                }
                let hits = {
                    let mut st = shared.lock();
                    st.transcript.push(chunk, at);
                    st.bytes_received += n as u64;
                    st.last_rx = Some(at);
                    st.check_lines(false)
                };
                report_hits(&sink, hits);
                shared.changed.send_modify(|v| *v += 1);
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            other => {
                let error = match other {
                    Err(e) => Some(e.to_string()),
                    _ => None,
                };
                let hits = {
                    let mut st = shared.lock();
                    st.transcript.finish();
                    let hits = st.check_lines(true);
                    st.closed = Some(Closed {
                        error: error.clone(),
                    });
                    hits
                };
                report_hits(&sink, hits);
                if let Some(s) = &sink {
                    s.event(ConsoleEvent::Closed { at, error });
                }
                shared.changed.send_modify(|v| *v += 1);
                return;
            }
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
