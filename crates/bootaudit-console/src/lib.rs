//! Serial-console engine of bootaudit: talks to a guest over its serial console the way a
//! person at the console would, and keeps the evidence.
//!
//! - [`normalize`]: raw terminal bytes → readable text (pure, streaming, split-invariant).
//! - [`transcript`]: the normalised text with an explicit cursor and first-match `expect`.
//! - [`engine`]: [`Console`], the async engine over any `AsyncRead`/`AsyncWrite` (live QEMU
//!   chardev socket or a recorded log), with deadlines, failure signatures and a raw event sink.
//! - [`framing`]: wrap a shell command in markers its echo can never match, and parse its output
//!   and exit code back, tolerating console messages that land in the middle.
//! - [`log_lines`]: a recorded log as numbered normalised lines, streamed (flat memory).
//! - [`terminal`]: the cursor the guest believes in and the answers to its terminal queries.
//!
//! Design notes: `docs/console.md`.

pub mod engine;
pub mod framing;
pub mod log_lines;
pub mod normalize;
pub mod terminal;
pub mod transcript;

pub use engine::{
    deadline_in, CloseReason, Console, ConsoleConfig, ConsoleEvent, EventSink, ExpectError, FnSink,
    QueryCounts, Retained, SendError, Signature, SignatureHit, ECHO_WINDOW, MAX_HIT_LINE,
    MAX_QUERY_RECORDS, MAX_RECENT_HITS,
};
pub use framing::{
    announced_commands, find_typed_frame, frame, frame_on_terminal, frame_with_token, fresh_token,
    parse_between, shell_quote, FrameError, Framed, FramedOutput, NoiseFilter, TypedFrame,
    MARKER_PREFIX,
};
pub use log_lines::{for_each_line, LogStats};
pub use normalize::Normalizer;
pub use terminal::{QueryKind, TerminalSize};
pub use transcript::{Match, Transcript, DEFAULT_MAX_TEXT};
