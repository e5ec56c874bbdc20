//! A hostile or broken guest cannot fool or break the console engine: forged frame markers,
//! floods, pathological bytes, terminal queries, a serial port that closes. The guest is
//! scripted on a `tokio::io::duplex` pair (or a reader that fails).

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bootaudit_console::{
    deadline_in, frame_with_token, CloseReason, Console, ConsoleConfig, ConsoleEvent, ExpectError,
    FnSink, NoiseFilter, SendError, ECHO_WINDOW, MAX_HIT_LINE, MAX_QUERY_RECORDS, MAX_RECENT_HITS,
};
use regex::Regex;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt, DuplexStream, ReadBuf};
use tokio::time::Instant;

fn re(s: &str) -> Regex {
    Regex::new(s).unwrap()
}

fn pair(config: ConsoleConfig) -> (Console, DuplexStream) {
    let (host, guest) = tokio::io::duplex(64 * 1024);
    (Console::from_stream(host, config), guest)
}

/// A small transcript bound, so the tests cross it many times over.
const SMALL: usize = 1 << 20;

fn bounded() -> ConsoleConfig {
    ConsoleConfig {
        max_transcript: SMALL,
        ..ConsoleConfig::default()
    }
}

/// What the sink got: received bytes counted, sent records kept.
#[derive(Clone, Default)]
struct Recorder {
    received: Arc<AtomicU64>,
    sent: Arc<Mutex<Vec<String>>>,
    closed: Arc<Mutex<Vec<Option<String>>>>,
}

impl Recorder {
    fn config(&self, config: ConsoleConfig) -> ConsoleConfig {
        let me = self.clone();
        config.sink(FnSink(move |e: ConsoleEvent| match e {
            ConsoleEvent::Received { bytes, .. } => {
                me.received.fetch_add(bytes.len() as u64, Ordering::Relaxed);
            }
            ConsoleEvent::Sent { bytes, .. } => me
                .sent
                .lock()
                .unwrap()
                .push(String::from_utf8_lossy(&bytes).into_owned()),
            ConsoleEvent::Closed { error, .. } => me.closed.lock().unwrap().push(error),
            ConsoleEvent::SignatureHit(_) => {}
        }))
    }

    fn sent(&self) -> Vec<String> {
        self.sent.lock().unwrap().clone()
    }
}

/// `n` bytes of console lines like a chatty service's (each line numbered).
fn flood_lines(n: usize) -> Vec<u8> {
    let mut v = Vec::with_capacity(n + 64);
    let mut i = 0u64;
    while v.len() < n {
        v.extend_from_slice(
            format!("[ {i}.000000] flood: service says hello again\r\n").as_bytes(),
        );
        i += 1;
    }
    // Whole lines only, so what follows starts a line of its own.
    v.truncate(n);
    let end = v.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    v.truncate(end);
    v
}

// ---------------------------------------------------------------------------------------
// 1. Forged frame markers
// ---------------------------------------------------------------------------------------

/// Type `framed` as the dialogue does (cursor to the end, then the line), have the guest write
/// `guest` in the given chunks, and parse the frame the way `Dialogue::run` does.
async fn run_framed(
    framed: &bootaudit_console::Framed,
    before: &[u8],
    chunks: &[Vec<u8>],
) -> bootaudit_console::FramedOutput {
    let (mut con, mut guest) = pair(ConsoleConfig::default());
    guest.write_all(before).await.unwrap();
    // What came before the command was typed is read before the cursor moves past it.
    con.expect(&[re("PROMPT> $")], deadline_in(Duration::from_secs(5)))
        .await
        .unwrap();
    con.skip_to_end();
    let from = con.cursor();
    con.send_line(&framed.line).await.unwrap();
    let mut typed = vec![0u8; framed.line.len() + 1];
    guest.read_exact(&mut typed).await.unwrap();
    let chunks = chunks.to_vec();
    let writer = tokio::spawn(async move {
        for c in chunks {
            guest.write_all(&c).await.unwrap();
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        guest
    });
    let end = con
        .expect(
            std::slice::from_ref(&framed.end_re),
            deadline_in(Duration::from_secs(5)),
        )
        .await
        .expect("the real end marker");
    let _guest = writer.await.unwrap();
    let text = con.with_transcript(|t| t.slice(from, end.end).to_string());
    framed
        .extract(&text, &NoiseFilter::default_console())
        .expect("the real frame")
}

/// Bytes split into single-byte chunks.
fn bytewise(b: &[u8]) -> Vec<Vec<u8>> {
    b.iter().map(|&x| vec![x]).collect()
}

/// Before the command is typed the guest prints end markers with exit 0: for a guessed token,
/// for the previous frame's token, and (as if it could know it) for the very token to come.
/// None of it is judged: the answer is the real frame's, exit code 3.
#[tokio::test]
async fn markers_printed_before_the_command_is_typed_are_not_the_answer() {
    let old = frame_with_token("true", "oldtok0001").unwrap();
    let f = frame_with_token("systemctl is-active x", "realtok001").unwrap();
    let before = "BA_guess00000_BEGIN\r\nactive\r\nBA_guess00000_END rc=0\r\n\
         BA_oldtok0001_BEGIN true\r\nactive\r\nBA_oldtok0001_END rc=0\r\n\
         BA_realtok001_BEGIN systemctl is-active x\r\nactive\r\nBA_realtok001_END rc=0\r\nPROMPT> ";
    let answer = format!(
        "{}\r\nBA_realtok001_BEGIN systemctl is-active x\r\nfailed\r\n\r\nBA_realtok001_END rc=3\r\nPROMPT> ",
        f.line
    );
    let o = run_framed(&f, before.as_bytes(), &[answer.into_bytes()]).await;
    assert_eq!((o.lines, o.exit_code), (vec!["failed".to_string()], 3));
    assert!(old.end_re.is_match("BA_oldtok0001_END rc=0\n"));
}

/// Inside the real output: a replayed older frame (begin, output, end rc=0), a guessed
/// token's end marker glued into a line, and the previous frame's end marker — all are output
/// of the command, none ends the frame; the exit code is the real one.
#[tokio::test]
async fn markers_inside_the_real_output_are_output_not_the_end() {
    let f = frame_with_token("cat /var/log/x", "realtok002").unwrap();
    let output = "line one\r\n\
        BA_oldtok0002_BEGIN cat /var/log/x\r\nall good\r\nBA_oldtok0002_END rc=0\r\n\
        glued BA_guess00002_END rc=0\r\n\
        BA_realtok00_END rc=0\r\n\
        BA_realtok002_END rc=0 (not at the end of its line)\r\n\
        BA_realtok002 END rc=0\r\n";
    let answer = format!(
        "{}\r\nBA_realtok002_BEGIN cat /var/log/x\r\n{output}\r\nBA_realtok002_END rc=1\r\nPROMPT> ",
        f.line
    );
    let o = run_framed(&f, b"PROMPT> ", &[answer.into_bytes()]).await;
    assert_eq!(o.exit_code, 1);
    assert_eq!(o.lines.first().map(String::as_str), Some("line one"));
    assert_eq!(o.lines.len(), 8, "{:?}", o.lines);
    assert_eq!(
        o.lines.last().map(String::as_str),
        Some("BA_realtok002 END rc=0")
    );
}

/// A replay of the previous command's whole frame arrives after the new command was typed and
/// before its answer (a guest printing old console output again): it is not the new answer.
#[tokio::test]
async fn a_replayed_frame_of_a_previous_command_is_not_the_answer() {
    let f = frame_with_token("id -u", "realtok003").unwrap();
    let replay = "BA_prevtok003_BEGIN id -u\r\n0\r\n\r\nBA_prevtok003_END rc=0\r\n";
    let answer = "BA_realtok003_BEGIN id -u\r\n1000\r\n\r\nBA_realtok003_END rc=0\r\n".to_string();
    let o = run_framed(
        &f,
        b"PROMPT> ",
        &[
            format!("{}\r\n", f.line).into_bytes(),
            replay.as_bytes().to_vec(),
            answer.into_bytes(),
        ],
    )
    .await;
    assert_eq!((o.lines, o.exit_code), (vec!["1000".to_string()], 0));
}

/// Every marker arrives one byte at a time, forged ones (older and guessed tokens, exit 0)
/// among the real ones: the real frame is found whole, with its exit code.
#[tokio::test]
async fn markers_split_across_chunks_are_found_and_forged_ones_still_ignored() {
    let f = frame_with_token("ip -4 addr", "realtok004").unwrap();
    let mut chunks = bytewise(format!("{}\r\n", f.line).as_bytes());
    chunks.extend(bytewise(b"BA_oldtok0004_END rc=0\r\n"));
    chunks.extend(bytewise(b"BA_realtok004_BEGIN ip -4 addr\r\n"));
    chunks.extend(bytewise(b"inet 10.0.2.15/24\r\nBA_guess00004_END rc=0\r\n"));
    chunks.extend(bytewise(b"\r\nBA_realtok004_END rc=2\r\nPROMPT> "));
    let o = run_framed(&f, b"PROMPT> ", &chunks).await;
    assert_eq!(o.exit_code, 2);
    assert_eq!(o.lines, vec!["inet 10.0.2.15/24", "BA_guess00004_END rc=0"]);
}

// ---------------------------------------------------------------------------------------
// 2. Floods
// ---------------------------------------------------------------------------------------

/// 64 MB of console lines as fast as the pipe takes them: the transcript stays within its
/// bound (and the time map with it), every byte still reaches the sink, and a prompt after
/// the flood matches.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_keeps_memory_bounded_and_every_byte_reaches_the_sink() {
    let rec = Recorder::default();
    let (mut con, mut guest) = pair(rec.config(bounded()));
    let flood = flood_lines(64 << 20);
    let total = flood.len() as u64 + 7;
    let writer = tokio::spawn(async move {
        for c in flood.chunks(256 * 1024) {
            guest.write_all(c).await.unwrap();
        }
        guest.write_all(b"login: ").await.unwrap();
        guest
    });
    let mut peak = 0;
    let m = loop {
        match con
            .expect(&[re(r"login: $")], deadline_in(Duration::from_millis(50)))
            .await
        {
            Ok(m) => break m,
            Err(ExpectError::Timeout { .. }) => {
                peak = peak.max(con.retained().transcript_bytes);
            }
            Err(e) => panic!("{e:?}"),
        }
    };
    let _guest = writer.await.unwrap();
    let r = con.retained();
    assert!(
        r.transcript_bytes <= SMALL && peak <= SMALL,
        "{r:?}, peak {peak}"
    );
    assert_eq!(r.transcript_limit, SMALL);
    assert!(r.time_entries <= r.transcript_bytes + 1, "{r:?}");
    assert!(
        m.start > 60 << 20,
        "offsets count the dropped text: {}",
        m.start
    );
    con.with_transcript(|t| {
        assert_eq!(t.end(), m.end);
        assert!(t.start() > 0);
        assert!(t.text().starts_with("[ "), "kept text starts at a line");
        assert_eq!(t.line_at(m.start), "login: ");
        assert!(t.time_at(m.start).is_some());
    });
    assert_eq!(rec.received.load(Ordering::Relaxed), total);
    assert_eq!(con.bytes_received(), total);
}

/// Waits end on time on a console that never stops: `expect`, `quiet_for`, `drain_for` and
/// `wait_closed` under a flood return at their deadline (within a second of it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waits_under_a_flood_end_at_their_deadline() {
    let (mut con, mut guest) = pair(bounded());
    let writer = tokio::spawn(async move {
        let chunk = flood_lines(64 * 1024);
        loop {
            if guest.write_all(&chunk).await.is_err() {
                break;
            }
        }
    });
    let started = Instant::now();
    let r = con
        .expect(&[re("never printed")], deadline_in(Duration::from_secs(2)))
        .await;
    let took = started.elapsed();
    assert!(matches!(r, Err(ExpectError::Timeout { .. })), "{r:?}");
    assert!(took < Duration::from_secs(3), "expect took {took:?}");

    let started = Instant::now();
    let r = con
        .quiet_for(
            Duration::from_millis(200),
            deadline_in(Duration::from_secs(1)),
        )
        .await;
    assert!(matches!(r, Err(ExpectError::Timeout { .. })), "{r:?}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );

    let started = Instant::now();
    con.drain_for(Duration::from_secs(1)).await;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );

    let started = Instant::now();
    assert!(!con.wait_closed(deadline_in(Duration::from_secs(1))).await);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert!(con.bytes_received() > 1 << 20, "it was a flood");
    assert!(con.retained().transcript_bytes <= SMALL);
    writer.abort();
}

/// Ten minutes of a console flooded at 160 KB/s, in tokio's paused time: the wait for a
/// pattern that never comes ends at its ten-minute deadline, with the memory bounded.
#[tokio::test(start_paused = true)]
async fn ten_minutes_of_flood_in_paused_time_end_at_the_deadline() {
    let (mut con, mut guest) = pair(bounded());
    let writer = tokio::spawn(async move {
        let chunk = flood_lines(16 * 1024);
        loop {
            if guest.write_all(&chunk).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    let started = Instant::now();
    let wait = Duration::from_secs(600);
    let r = con.expect(&[re("never printed")], deadline_in(wait)).await;
    match r {
        Err(ExpectError::Timeout { waited, tail }) => {
            assert!(
                waited >= wait && waited < wait + Duration::from_secs(1),
                "{waited:?}"
            );
            assert_eq!(tail.chars().count(), 2000);
        }
        other => panic!("{other:?}"),
    }
    assert!(started.elapsed() < wait + Duration::from_secs(1));
    assert!(con.bytes_received() > 90 << 20, "{}", con.bytes_received());
    let r = con.retained();
    assert!(r.transcript_bytes <= SMALL, "{r:?}");
    assert!(
        r.time_entries <= SMALL / (15 * 1024) + 2,
        "one entry a chunk: {r:?}"
    );
    writer.abort();
}

/// A unit failing in a loop prints its failure line 100 000 times: the hits kept stay
/// bounded (each signature's first and last, and the latest few hundred), the first one is
/// still what a condition it concerns fails on, and a panic after the flood still ends the
/// next wait.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_failure_lines_keeps_the_hits_bounded_and_a_later_panic_still_fails() {
    let config = bounded()
        .signature("unit failed", re(r"Failed to start (\S+)"))
        .signature("kernel panic", re(r"Kernel panic - not syncing"));
    let (mut con, mut guest) = pair(config);
    let mut lines = Vec::new();
    for i in 0..100_000 {
        lines
            .extend_from_slice(format!("[FAILED] Failed to start loop{i}.service.\r\n").as_bytes());
    }
    guest.write_all(&lines).await.unwrap();
    guest.write_all(b"login: ").await.unwrap();
    // Nobody waited during the flood: the first hit is pending, the rest are kept bounded.
    let r = con
        .expect(&[re("login: ")], deadline_in(Duration::from_secs(30)))
        .await;
    match r {
        Err(ExpectError::Signature { line, .. }) => {
            assert_eq!(line, "[FAILED] Failed to start loop0.service.")
        }
        other => panic!("{other:?}"),
    }
    // Acknowledge the hits as they come, until the prompt after the flood is read.
    loop {
        con.clear_signature();
        match con
            .expect(&[re("login: ")], deadline_in(Duration::from_secs(30)))
            .await
        {
            Ok(_) => break,
            Err(ExpectError::Signature { .. }) => continue,
            Err(e) => panic!("{e:?}"),
        }
    }
    let hits = con.signature_hits();
    assert!(hits.len() <= MAX_RECENT_HITS + 2 * 2, "{}", hits.len());
    assert!(con.retained().hits <= MAX_RECENT_HITS + 4);
    assert_eq!(hits[0].line, "[FAILED] Failed to start loop0.service.");
    assert_eq!(
        hits.last().unwrap().line,
        "[FAILED] Failed to start loop99999.service."
    );
    assert!(
        hits.windows(2).all(|w| w[0].offset < w[1].offset),
        "in order"
    );
    guest
        .write_all(b"\r\n[ 99.1] Kernel panic - not syncing: Attempted to kill init!\r\n")
        .await
        .unwrap();
    let r = con
        .expect(&[re("never")], deadline_in(Duration::from_secs(5)))
        .await;
    assert!(
        matches!(&r, Err(ExpectError::Signature { pattern_name, .. }) if pattern_name == "kernel panic"),
        "{r:?}"
    );
}

// ---------------------------------------------------------------------------------------
// 3. Pathological bytes
// ---------------------------------------------------------------------------------------

/// One line of 10 MB (no newline), then a prompt: the prompt matches, the reader keeps up
/// (the line is searched for its end once, not once per chunk), and with a small bound the
/// transcript keeps only the line's tail. A 10 MB line that hits a signature keeps a bounded
/// line in the hit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ten_megabyte_line_neither_stalls_nor_grows_memory() {
    for config in [ConsoleConfig::default(), bounded()] {
        let limit = config.max_transcript;
        let config = config.signature("kernel panic", re("Kernel panic - not syncing"));
        let (mut con, mut guest) = pair(config);
        let mut line = vec![b'x'; 10 << 20];
        line.extend_from_slice(b" Kernel panic - not syncing: long\r\nlogin: ");
        let writer = tokio::spawn(async move {
            for c in line.chunks(8192) {
                guest.write_all(c).await.unwrap();
            }
            guest
        });
        let started = Instant::now();
        let r = con
            .expect(&[re("login: ")], deadline_in(Duration::from_secs(60)))
            .await;
        let took = started.elapsed();
        match r {
            Err(ExpectError::Signature { line, .. }) => {
                assert!(line.len() <= MAX_HIT_LINE, "{}", line.len());
                assert!(
                    line.ends_with("xx Kernel panic - not syncing: long"),
                    "{line:?}"
                );
            }
            other => panic!("{other:?}"),
        }
        con.clear_signature();
        let m = con
            .expect(&[re("login: ")], deadline_in(Duration::from_secs(60)))
            .await
            .unwrap();
        assert_eq!(
            m.end,
            (10 << 20) + " Kernel panic - not syncing: long\nlogin: ".len()
        );
        assert!(con.retained().transcript_bytes <= limit);
        assert!(con.retained().hit_bytes <= MAX_HIT_LINE);
        // Seconds, not minutes: a generous bound that only a quadratic scan would break.
        assert!(took < Duration::from_secs(30), "{took:?}");
        let _guest = writer.await.unwrap();
    }
}

/// 32 MB of NUL bytes add no text and no time entries; invalid UTF-8 of every kind (lone
/// continuation bytes, truncated sequences, overlong encodings, surrogates, bytes that are
/// never UTF-8) becomes U+FFFD; patterns after the junk match; the text stays valid UTF-8.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nul_floods_and_invalid_utf8_leave_clean_text_and_matching_works() {
    let (mut con, mut guest) = pair(bounded());
    let writer = tokio::spawn(async move {
        let nuls = vec![0u8; 1 << 20];
        for _ in 0..32 {
            guest.write_all(&nuls).await.unwrap();
        }
        guest.write_all(b"after nuls\r\n").await.unwrap();
        guest
    });
    con.expect(&[re("after nuls\n")], deadline_in(Duration::from_secs(60)))
        .await
        .unwrap();
    let mut guest = writer.await.unwrap();
    let r = con.retained();
    assert_eq!(r.transcript_bytes, "after nuls\n".len(), "{r:?}");
    assert!(r.time_entries <= 2, "{r:?}");

    let junk: &[&[u8]] = &[
        b"\x80\xbf\x80",         // lone continuation bytes
        b"\xe2\x82",             // truncated 3-byte sequence
        b"\xf0\x9f\x9a",         // truncated 4-byte sequence
        b"\xc0\xaf\xc1\xbf",     // overlong 2-byte
        b"\xe0\x80\xaf",         // overlong 3-byte
        b"\xf0\x80\x80\xaf",     // overlong 4-byte
        b"\xed\xa0\x80",         // surrogate
        b"\xf4\x90\x80\x80",     // above U+10FFFF
        b"\xf5\xf8\xfc\xfe\xff", // never in UTF-8
    ];
    for j in junk {
        guest.write_all(j).await.unwrap();
        guest.write_all(b"login: ").await.unwrap();
        let m = con
            .expect(&[re("login: ")], deadline_in(Duration::from_secs(5)))
            .await
            .unwrap();
        assert!(m.before.contains('\u{FFFD}'), "{j:?}: {:?}", m.before);
        assert!(!m.before.contains("login"), "{j:?}");
    }
    // Random bytes, deterministic: no panic, a marker after them still matches.
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let mut noise = Vec::with_capacity(4 << 20);
    while noise.len() < 4 << 20 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        noise.extend_from_slice(&x.to_le_bytes());
    }
    let writer = tokio::spawn(async move {
        guest.write_all(&noise).await.unwrap();
        // Whatever escape sequence the noise left open is ended by a newline at the latest.
        guest
            .write_all(b"\x1b\\\x07\r\nMARKER_AFTER_NOISE\r\n")
            .await
            .unwrap();
        guest
    });
    con.expect(
        &[re("(?m)^MARKER_AFTER_NOISE$")],
        deadline_in(Duration::from_secs(60)),
    )
    .await
    .unwrap();
    let _guest = writer.await.unwrap();
    let text = con.transcript();
    assert!(std::str::from_utf8(text.as_bytes()).is_ok());
    assert!(!text.contains('\u{1b}'));
    assert!(con.retained().transcript_bytes <= SMALL);
}

// ---------------------------------------------------------------------------------------
// 4. Terminal queries
// ---------------------------------------------------------------------------------------

/// Read what the console wrote to the guest within `wait`.
async fn answer_from(guest: &mut DuplexStream, wait: Duration) -> Vec<u8> {
    let mut got = Vec::new();
    let until = Instant::now() + wait;
    let mut buf = [0u8; 256];
    while let Ok(Ok(n)) = tokio::time::timeout_at(until, guest.read(&mut buf)).await {
        if n == 0 {
            break;
        }
        got.extend_from_slice(&buf[..n]);
    }
    got
}

/// Every query a VT220 answers gets its answer written to the guest, in order, recorded as a
/// marked line in the sent-direction record; a query split across chunks is recognised;
/// systemd's size probe learns 24×80; XTVERSION is recorded but not answered.
#[tokio::test]
async fn terminal_queries_are_answered_and_recorded() {
    let rec = Recorder::default();
    let (con, mut guest) = pair(rec.config(ConsoleConfig::default()));
    let short = Duration::from_millis(300);
    guest.write_all(b"Welcome\r\n\x1b[6n").await.unwrap();
    assert_eq!(answer_from(&mut guest, short).await, b"\x1b[2;1R");
    // Split across three writes.
    guest.write_all(b"ab\x1b").await.unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    guest.write_all(b"[").await.unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    guest.write_all(b"6n").await.unwrap();
    assert_eq!(answer_from(&mut guest, short).await, b"\x1b[2;3R");
    guest
        .write_all(b"\x1b[c\x1b[0c\x1b[>c\x1b[>0c\x1b[5n\x1b[>0q")
        .await
        .unwrap();
    assert_eq!(
        answer_from(&mut guest, short).await,
        b"\x1b[?62;22c\x1b[?62;22c\x1b[>1;10;0c\x1b[>1;10;0c\x1b[0n"
    );
    // systemd: save, to the far corner, ask, restore.
    guest
        .write_all(b"\x1b7\x1b[32766;32766H\x1b[6n\x1b8")
        .await
        .unwrap();
    assert_eq!(answer_from(&mut guest, short).await, b"\x1b[24;80R");
    let sent = rec.sent();
    assert_eq!(
        sent,
        vec![
            "[answered terminal query ESC[6n with ESC[2;1R]\n",
            "[answered terminal query ESC[6n with ESC[2;3R]\n",
            "[answered terminal query ESC[c with ESC[?62;22c]\n",
            "[answered terminal query ESC[0c with ESC[?62;22c]\n",
            "[answered terminal query ESC[>c with ESC[>1;10;0c]\n",
            "[answered terminal query ESC[>0c with ESC[>1;10;0c]\n",
            "[answered terminal query ESC[5n with ESC[0n]\n",
            "[terminal query ESC[>0q not answered: a VT220 has no such query]\n",
            "[answered terminal query ESC[6n with ESC[24;80R]\n",
        ]
    );
    let q = con.terminal_queries();
    assert_eq!((q.answered, q.not_answered, q.dropped), (8, 1, 0));
    // The queries are not text.
    assert_eq!(con.transcript(), "Welcome\nab");
}

/// What the harness types is echoed by the terminal: a query inside it is not the guest's
/// and gets no answer (which would land in the guest's input). A query the guest sends
/// itself later is answered, and so is one of the same kind once the echo window passed.
#[tokio::test(start_paused = true)]
async fn a_query_in_the_echo_of_what_we_typed_is_not_answered() {
    let rec = Recorder::default();
    let (mut con, mut guest) = pair(rec.config(ConsoleConfig::default()));
    let typed: &[u8] = b"printf 'x\x1b[6n\x1b[c'\r";
    con.send(typed).await.unwrap();
    let mut got = vec![0u8; typed.len()];
    guest.read_exact(&mut got).await.unwrap();
    // The guest's tty echoes it raw, in two pieces.
    guest.write_all(&typed[..10]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(10)).await;
    guest.write_all(&typed[10..]).await.unwrap();
    guest.write_all(b"\n").await.unwrap();
    let short = Duration::from_millis(300);
    assert_eq!(
        answer_from(&mut guest, short).await,
        b"",
        "no answer to the echo"
    );
    assert_eq!(con.terminal_queries().in_echo, 2);
    // The command runs and really asks: answered.
    guest.write_all(b"x\x1b[6n").await.unwrap();
    assert_eq!(answer_from(&mut guest, short).await, b"\x1b[2;2R");
    // A typed query whose echo never comes (the tty shows it as ^[[6n) does not stop the
    // guest's own queries for long: after the echo window they are answered again.
    con.send(b"\x1b[6n").await.unwrap();
    let mut got = [0u8; 4];
    guest.read_exact(&mut got).await.unwrap();
    guest.write_all(b"^[[6n\r\n").await.unwrap();
    tokio::time::sleep(ECHO_WINDOW + Duration::from_secs(1)).await;
    guest.write_all(b"\x1b[6n").await.unwrap();
    assert_eq!(answer_from(&mut guest, short).await, b"\x1b[3;1R");
    let sent = rec.sent();
    assert!(
        sent.iter()
            .any(|s| s
                == "[terminal query ESC[6n in the echo of what bootaudit typed: not answered]\n"),
        "{sent:?}"
    );
    assert_eq!(con.terminal_queries().answered, 2);
}

/// A guest that floods queries cannot make the console queue answers without bound; a replay
/// (no writer) never answers; a console configured without a terminal answers nothing.
#[tokio::test]
async fn query_floods_are_bounded_and_only_a_live_console_answers() {
    let rec = Recorder::default();
    let (con, mut guest) = pair(rec.config(ConsoleConfig::default()));
    let flood = b"\x1b[5n".repeat(100_000);
    // The guest writes but does not read its answers: the answer queue fills, the rest is
    // counted as dropped, and reading goes on.
    guest.write_all(&flood).await.unwrap();
    guest.write_all(b"done\r\n").await.unwrap();
    let mut con = con;
    con.expect(&[re("done\n")], deadline_in(Duration::from_secs(30)))
        .await
        .unwrap();
    let q = con.terminal_queries();
    assert!(q.dropped > 0, "{q:?}");
    // Each query is answered, dropped, failed, or still queued (16) or being written (1).
    let done = q.answered + q.dropped + q.failed;
    assert!((100_000 - 17..=100_000).contains(&done), "{q:?}");
    assert!(
        rec.sent().len() <= MAX_QUERY_RECORDS,
        "records stay few: {}",
        rec.sent().len()
    );
    drop(guest);

    let replay = Console::replay(&b"\x1b[6nreplayed\n"[..], ConsoleConfig::default());
    let mut replay = replay;
    assert!(
        replay
            .wait_closed(deadline_in(Duration::from_secs(2)))
            .await
    );
    assert_eq!(replay.terminal_queries().answered, 0);

    let (con, mut guest) = pair(ConsoleConfig {
        terminal: None,
        ..ConsoleConfig::default()
    });
    guest.write_all(b"\x1b[6n\x1b[c").await.unwrap();
    assert_eq!(
        answer_from(&mut guest, Duration::from_millis(300)).await,
        b""
    );
    assert_eq!(con.terminal_queries().answered, 0);
}

// ---------------------------------------------------------------------------------------
// 5. The serial port closes
// ---------------------------------------------------------------------------------------

/// The guest goes away mid-wait: every kind of wait ends at once with `Closed` (not at its
/// minute-long deadline), the transcript keeps what came, the reason is end of file, and a
/// write afterwards is an error at once.
#[tokio::test]
async fn end_of_file_mid_wait_ends_the_wait_at_once() {
    let rec = Recorder::default();
    let (mut con, mut guest) = pair(rec.config(ConsoleConfig::default()));
    let closer = tokio::spawn(async move {
        guest.write_all(b"last words before the end").await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        drop(guest);
    });
    let started = Instant::now();
    let r = con
        .expect(&[re("login: ")], deadline_in(Duration::from_secs(60)))
        .await;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    match r {
        Err(ExpectError::Closed { tail, error }) => {
            assert_eq!(tail, "last words before the end");
            assert_eq!(error, None);
        }
        other => panic!("{other:?}"),
    }
    closer.await.unwrap();
    assert_eq!(con.closed(), Some(CloseReason::Eof));
    assert_eq!(con.transcript(), "last words before the end");
    let later = deadline_in(Duration::from_secs(60));
    let started = Instant::now();
    assert!(matches!(
        con.quiet_for(Duration::from_secs(30), later).await,
        Err(ExpectError::Closed { .. })
    ));
    con.drain_for(Duration::from_secs(30)).await;
    assert!(con.wait_closed(later).await);
    let e = con.send_line("echo hello").await.unwrap_err();
    assert!(matches!(e, SendError::Closed(CloseReason::Eof)), "{e}");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(*rec.closed.lock().unwrap(), vec![None]);
    assert!(rec.sent().is_empty(), "a refused write is not recorded");
}

/// A source that gives some bytes, then fails.
struct FailsAfter {
    data: Option<&'static [u8]>,
    delay: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl AsyncRead for FailsAfter {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if let Some(d) = self.data.take() {
            buf.put_slice(d);
            return Poll::Ready(Ok(()));
        }
        let delay = self
            .delay
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(Duration::from_millis(100))));
        match delay.as_mut().poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(()) => Poll::Ready(Err(std::io::Error::new(
                std::io::ErrorKind::ConnectionReset,
                "connection reset by peer",
            ))),
        }
    }
}

use std::future::Future;

/// The source fails mid-wait: the wait ends at once with `Closed` carrying the error, which
/// `closed()` tells apart from an end of file.
#[tokio::test]
async fn a_read_error_mid_wait_is_closed_with_the_error() {
    let source = FailsAfter {
        data: Some(b"partial line"),
        delay: None,
    };
    let mut con = Console::new(source, Some(tokio::io::sink()), ConsoleConfig::default());
    let started = Instant::now();
    let r = con
        .expect(&[re("login: ")], deadline_in(Duration::from_secs(60)))
        .await;
    assert!(started.elapsed() < Duration::from_secs(2));
    match r {
        Err(ExpectError::Closed { tail, error }) => {
            assert_eq!(tail, "partial line");
            assert_eq!(error.as_deref(), Some("connection reset by peer"));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        con.closed(),
        Some(CloseReason::Error("connection reset by peer".into()))
    );
    assert!(matches!(
        con.send(b"x").await,
        Err(SendError::Closed(CloseReason::Error(_)))
    ));
}

/// A QEMU that stopped reading its socket (the guest's side is open but full): a write is
/// bounded by the write timeout, an error rather than a hang.
#[tokio::test(start_paused = true)]
async fn a_write_nobody_reads_times_out() {
    let (host, _guest) = tokio::io::duplex(64);
    let config = ConsoleConfig {
        write_timeout: Duration::from_secs(2),
        ..ConsoleConfig::default()
    };
    let mut con = Console::from_stream(host, config);
    let started = Instant::now();
    let r = con.send(&[b'x'; 4096]).await;
    assert!(matches!(r, Err(SendError::Timeout(_))), "{r:?}");
    assert!(started.elapsed() < Duration::from_secs(3));
}
