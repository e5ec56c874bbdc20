//! Engine tests: a simulated guest on a `tokio::io::duplex` pair writes in odd chunks, panics
//! while an `expect` waits, goes quiet or goes away.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bootaudit_console::{
    deadline_in, frame_with_token, Console, ConsoleConfig, ConsoleEvent, ExpectError, FnSink,
    NoiseFilter, SendError,
};
use regex::Regex;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader, DuplexStream};
use tokio::time::Instant;

fn re(s: &str) -> Regex {
    Regex::new(s).unwrap()
}

fn pair(config: ConsoleConfig) -> (Console, DuplexStream) {
    let (host, guest) = tokio::io::duplex(64 * 1024);
    (Console::from_stream(host, config), guest)
}

fn signatures() -> ConsoleConfig {
    ConsoleConfig::default()
        .signature("kernel-panic", re(r"Kernel panic - not syncing"))
        .signature("emergency-mode", re(r"You are in emergency mode"))
}

#[tokio::test]
async fn odd_chunks_and_autologin_in_a_later_chunk() {
    let (mut con, mut guest) = pair(ConsoleConfig::default());
    tokio::spawn(async move {
        for chunk in [
            &b"\r\r\nWelcome\r\r\nnixos lo"[..],
            b"gin: ",
            b"nixos (autom",
            b"atic login)\r",
            b"\r\n\x1b[?2004h\x1b[1;32m[\x1b]0;nixos@nixos: ~\x07nix",
            b"os@nixos:~]$\x1b[0m ",
        ] {
            guest.write_all(chunk).await.unwrap();
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        // Keep the stream open so the console is not closed.
        tokio::time::sleep(Duration::from_secs(5)).await;
    });
    let login = con
        .expect(&[re(r"login: ")], deadline_in(Duration::from_secs(5)))
        .await
        .unwrap();
    assert_eq!(login.before, "\nWelcome\nnixos ");
    // agetty writes "(automatic login)" after "login: ", here in later chunks.
    let auto = con
        .expect(
            &[re(r"(\S+) \(automatic login\)\n")],
            deadline_in(Duration::from_secs(5)),
        )
        .await
        .unwrap();
    assert_eq!(auto.get(1), Some("nixos"));
    assert_eq!(auto.before, "");
    let prompt = con
        .expect(&[re(r"\]\$ $")], deadline_in(Duration::from_secs(5)))
        .await
        .unwrap();
    assert_eq!(prompt.before, "[nixos@nixos:~");
}

#[tokio::test]
async fn first_match_is_returned_and_the_second_is_still_there() {
    let (mut con, mut guest) = pair(ConsoleConfig::default());
    guest.write_all(b"$ one\r\n$ two\r\n").await.unwrap();
    let p = [re(r"\$ (\w+)\n")];
    let a = con
        .expect(&p, deadline_in(Duration::from_secs(2)))
        .await
        .unwrap();
    let b = con
        .expect(&p, deadline_in(Duration::from_secs(2)))
        .await
        .unwrap();
    assert_eq!((a.get(1), b.get(1)), (Some("one"), Some("two")));
    drop(guest);
}

#[tokio::test]
async fn signature_ends_a_waiting_expect_at_once() {
    let (mut con, mut guest) = pair(signatures());
    let written = Arc::new(Mutex::new(None::<Instant>));
    let w = written.clone();
    tokio::spawn(async move {
        guest.write_all(b"[    1.0] booting\r\n").await.unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        guest
            .write_all(b"[    2.5] Kernel panic - not syncing: VFS: Unable to mount root fs\r\n")
            .await
            .unwrap();
        *w.lock().unwrap() = Some(Instant::now());
        tokio::time::sleep(Duration::from_millis(50)).await;
        guest.write_all(b"[    2.5] CPU: 0 PID: 1 Comm: swapper\r\n[    2.5] ---[ end Kernel panic ]---\r\n").await.unwrap();
        tokio::time::sleep(Duration::from_secs(30)).await;
    });
    let r = con
        .expect(&[re(r"login: ")], deadline_in(Duration::from_secs(20)))
        .await;
    let returned = Instant::now();
    match r {
        Err(ExpectError::Signature {
            pattern_name, line, ..
        }) => {
            assert_eq!(pattern_name, "kernel-panic");
            assert!(line.contains("Unable to mount root fs"), "{line}");
        }
        other => panic!("expected a signature, got {other:?}"),
    }
    let lag = returned - written.lock().unwrap().expect("panic line was written");
    assert!(
        lag < Duration::from_millis(100),
        "returned {lag:?} after the line"
    );
    // Later expects fail the same way, until acknowledged.
    let again = con
        .expect(&[re("x")], deadline_in(Duration::from_secs(1)))
        .await;
    assert!(matches!(again, Err(ExpectError::Signature { .. })));
    // Drain keeps reading so the whole panic lands in the transcript.
    con.drain_for(Duration::from_millis(300)).await;
    assert!(con.transcript().contains("---[ end Kernel panic ]---"));
    assert_eq!(
        con.signature_hits().len(),
        1,
        "the end line matches no signature"
    );
    con.clear_signature();
    let m = con
        .expect(
            &[re(r"end Kernel panic")],
            deadline_in(Duration::from_secs(1)),
        )
        .await;
    assert!(m.is_ok());
}

#[tokio::test]
async fn acknowledging_one_hit_leaves_the_next_pending() {
    let (mut con, mut guest) = pair(signatures());
    // Two hits in one chunk: acknowledging the first must not swallow the second.
    guest
        .write_all(b"You are in emergency mode.\r\nKernel panic - not syncing: x\r\n")
        .await
        .unwrap();
    let first = con
        .expect(&[re("never")], deadline_in(Duration::from_secs(2)))
        .await;
    assert!(
        matches!(&first, Err(ExpectError::Signature { pattern_name, .. }) if pattern_name == "emergency-mode"),
        "{first:?}"
    );
    con.acknowledge_signature();
    let second = con
        .expect(&[re("never")], deadline_in(Duration::from_secs(2)))
        .await;
    assert!(
        matches!(&second, Err(ExpectError::Signature { pattern_name, .. }) if pattern_name == "kernel-panic"),
        "{second:?}"
    );
    con.acknowledge_signature();
    con.acknowledge_signature(); // nothing pending: no effect
    let quiet = con
        .expect(&[re("never")], deadline_in(Duration::from_millis(200)))
        .await;
    assert!(
        matches!(quiet, Err(ExpectError::Timeout { .. })),
        "{quiet:?}"
    );
    assert_eq!(con.signature_hits().len(), 2);
}

#[tokio::test]
async fn signature_needs_a_complete_line() {
    let (mut con, mut guest) = pair(signatures());
    guest
        .write_all(b"You are in emergency mode. After logging in")
        .await
        .unwrap();
    let r = con
        .expect(&[re("logging")], deadline_in(Duration::from_secs(2)))
        .await;
    assert!(r.is_ok(), "partial line must not trigger yet: {r:?}");
    guest.write_all(b", type ...\r\n").await.unwrap();
    let r = con
        .expect(&[re("never")], deadline_in(Duration::from_secs(2)))
        .await;
    assert!(
        matches!(r, Err(ExpectError::Signature { ref pattern_name, .. }) if pattern_name == "emergency-mode"),
        "{r:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn timeout_carries_waited_time_and_tail() {
    let (mut con, mut guest) = pair(ConsoleConfig::default());
    guest
        .write_all(b"Starting systemd...\r\nstill booting")
        .await
        .unwrap();
    let started = Instant::now();
    let r = con
        .expect(&[re("login: ")], deadline_in(Duration::from_secs(90)))
        .await;
    match r {
        Err(ExpectError::Timeout { waited, tail }) => {
            assert!(waited >= Duration::from_secs(90) && waited < Duration::from_secs(91));
            assert_eq!(tail, "Starting systemd...\nstill booting");
        }
        other => panic!("{other:?}"),
    }
    assert!(started.elapsed() >= Duration::from_secs(90));
    drop(guest);
}

#[tokio::test]
async fn eof_is_closed_but_pending_text_still_matches() {
    let (mut con, mut guest) = pair(ConsoleConfig::default());
    guest
        .write_all(b"reboot: Power down\r\nlast words")
        .await
        .unwrap();
    drop(guest);
    let m = con
        .expect(&[re("Power down")], deadline_in(Duration::from_secs(2)))
        .await;
    assert!(m.is_ok());
    let r = con
        .expect(&[re("login: ")], deadline_in(Duration::from_secs(2)))
        .await;
    match r {
        Err(ExpectError::Closed { tail, error }) => {
            assert_eq!(tail, "\nlast words");
            assert_eq!(error, None);
        }
        other => panic!("{other:?}"),
    }
    assert!(con.is_closed());
    assert_eq!(con.bytes_received(), 30);
}

#[tokio::test]
async fn panic_line_without_newline_at_eof_still_hits() {
    let (mut con, mut guest) = pair(signatures());
    guest
        .write_all(b"Kernel panic - not syncing: Attempted to kill init!")
        .await
        .unwrap();
    drop(guest);
    let r = con
        .expect(&[re("login: ")], deadline_in(Duration::from_secs(2)))
        .await;
    assert!(matches!(r, Err(ExpectError::Signature { .. })), "{r:?}");
}

#[tokio::test(start_paused = true)]
async fn quiet_for_waits_for_silence_bounded_by_deadline() {
    let (mut con, mut guest) = pair(ConsoleConfig::default());
    let chatter = tokio::spawn(async move {
        for _ in 0..10 {
            guest
                .write_all(b"[  OK  ] Started something.\r\n")
                .await
                .unwrap();
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        guest
    });
    let t0 = Instant::now();
    // Bytes keep coming every 0.5 s for 5 s: 2 s of silence comes only after that.
    con.quiet_for(Duration::from_secs(2), deadline_in(Duration::from_secs(30)))
        .await
        .unwrap();
    let waited = t0.elapsed();
    assert!(
        waited >= Duration::from_millis(6400) && waited < Duration::from_millis(7000),
        "{waited:?}"
    );
    let mut guest = chatter.await.unwrap();
    // Silence that already lasted long enough counts at once.
    let t1 = Instant::now();
    con.quiet_for(Duration::from_secs(2), deadline_in(Duration::from_secs(30)))
        .await
        .unwrap();
    assert_eq!(t1.elapsed(), Duration::ZERO);
    // Never quiet before the deadline: Timeout.
    guest.write_all(b"x").await.unwrap();
    tokio::time::sleep(Duration::from_millis(10)).await;
    let spam = tokio::spawn(async move {
        loop {
            if guest.write_all(b"x").await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    let r = con
        .quiet_for(Duration::from_secs(2), deadline_in(Duration::from_secs(5)))
        .await;
    assert!(matches!(r, Err(ExpectError::Timeout { .. })), "{r:?}");
    spam.abort();
}

#[tokio::test]
async fn sent_and_received_bytes_reach_the_sink_with_times() {
    let events = Arc::new(Mutex::new(Vec::new()));
    let ev = events.clone();
    let config = ConsoleConfig::default().sink(FnSink(move |e| ev.lock().unwrap().push(e)));
    let (mut con, guest) = pair(config);
    let (gr, mut gw) = tokio::io::split(guest);
    con.send_line("id -u").await.unwrap();
    let mut line = String::new();
    BufReader::new(gr).read_line(&mut line).await.unwrap();
    assert_eq!(line, "id -u\n");
    gw.write_all(b"\x1b[?2004l\r1000\r\r\n").await.unwrap();
    let m = con
        .expect(&[re(r"(?m)^(\d+)\n")], deadline_in(Duration::from_secs(2)))
        .await
        .unwrap();
    assert_eq!(m.get(1), Some("1000"));
    assert!(m.at.is_some());
    drop(gw);
    let _ = con
        .expect(&[re("never")], deadline_in(Duration::from_secs(2)))
        .await;
    let evs = events.lock().unwrap();
    assert!(matches!(&evs[0], ConsoleEvent::Sent { bytes, .. } if bytes == b"id -u\n"));
    let raw: Vec<u8> = evs
        .iter()
        .filter_map(|e| match e {
            ConsoleEvent::Received { bytes, .. } => Some(bytes.clone()),
            _ => None,
        })
        .flatten()
        .collect();
    assert_eq!(raw, b"\x1b[?2004l\r1000\r\r\n", "raw bytes are unmodified");
    assert!(matches!(
        evs.last(),
        Some(ConsoleEvent::Closed { error: None, .. })
    ));
}

#[tokio::test]
async fn replay_has_no_writer_and_reads_to_the_end() {
    let log = b"nixos login: nixos (automatic login)\r\r\n\r\r\r\n$ ".to_vec();
    let mut con = Console::replay(std::io::Cursor::new(log), ConsoleConfig::default());
    let m = con
        .expect(
            &[re(r"login: (\w+) \(automatic login\)")],
            deadline_in(Duration::from_secs(2)),
        )
        .await;
    assert_eq!(m.unwrap().get(1), Some("nixos"));
    assert!(matches!(con.send(b"x").await, Err(SendError::NoWriter)));
    assert!(con.wait_closed(deadline_in(Duration::from_secs(2))).await);
}

/// A fake guest shell: echoes what it is sent the way a serial tty + readline does (bracketed
/// paste, coloured prompt, the long echo wrapped with `\r` at 80 columns), then runs the framed
/// command by printing the markers itself, with kernel and profile lines landing in between.
async fn fake_shell(guest: DuplexStream, output: &'static str, rc: i32) {
    let (gr, mut gw) = tokio::io::split(guest);
    let mut reader = BufReader::new(gr);
    let mut line = String::new();
    reader.read_line(&mut line).await.unwrap();
    let line = line.trim_end_matches('\n');
    let mut echo = Vec::new();
    for (i, ch) in line.as_bytes().chunks(80).enumerate() {
        if i > 0 {
            echo.extend_from_slice(b" \r");
        }
        echo.extend_from_slice(ch);
    }
    gw.write_all(b"\x1b[?2004h\x1b[1;32m[\x1b]0;nixos@nixos: ~\x07nixos@nixos:~]$\x1b[0m ")
        .await
        .unwrap();
    for piece in echo.chunks(7) {
        gw.write_all(piece).await.unwrap();
    }
    gw.write_all(b"\r\r\n\x1b[?2004l\r").await.unwrap();
    // The shell would run printf; emulate its output.
    let token = Regex::new(r#""BA""_(\w+)_BEGIN""#)
        .unwrap()
        .captures(line)
        .unwrap()[1]
        .to_string();
    let mut out = format!("BA_{token}_BEGIN\r\n");
    for l in output.split_inclusive('\n') {
        out.push_str(&l.replace('\n', "\r\n"));
    }
    out.push_str(&format!(
        "\r\nBA_{token}_END rc={rc}\r\n\x1b[?2004h[nixos@nixos:~]$ "
    ));
    for piece in out.as_bytes().chunks(5) {
        gw.write_all(piece).await.unwrap();
    }
    tokio::time::sleep(Duration::from_secs(5)).await;
    let _ = reader.read(&mut [0u8; 1]).await;
}

#[tokio::test]
async fn framed_command_round_trip_through_a_noisy_console() {
    let (mut con, guest) = pair(ConsoleConfig::default());
    tokio::spawn(fake_shell(
        guest,
        "STATE=applied\nLAN IPv4 address: 10.0.2.15\n[   12.345678] virtio_net virtio0 lan: renamed\nDETAIL=auto-applied\n",
        0,
    ));
    let cmd = "cat /run/pre-nixos/storage-status; echo 'some long text to make the echoed line wrap past eighty columns'";
    let f = frame_with_token(cmd, "k3x9q2").unwrap();
    con.send_line(&f.line).await.unwrap();
    con.expect(
        std::slice::from_ref(&f.begin_re),
        deadline_in(Duration::from_secs(5)),
    )
    .await
    .unwrap();
    let end = con
        .expect(
            std::slice::from_ref(&f.end_re),
            deadline_in(Duration::from_secs(5)),
        )
        .await
        .unwrap();
    let noise = NoiseFilter::default_console().with([re(r"^LAN IPv4 address: ")]);
    let out =
        bootaudit_console::parse_between(&end.before, end.get(1).unwrap().parse().unwrap(), &noise);
    assert_eq!(out.lines, vec!["STATE=applied", "DETAIL=auto-applied"]);
    assert_eq!(
        out.interleaved,
        vec![
            "LAN IPv4 address: 10.0.2.15",
            "[   12.345678] virtio_net virtio0 lan: renamed"
        ]
    );
    assert_eq!(out.exit_code, 0);
    // The echo (wrapped or not) never produced a marker: exactly one begin in the transcript.
    let t = con.transcript();
    assert_eq!(t.matches("BA_k3x9q2_BEGIN").count(), 1);
    assert_eq!(f.extract(&t, &noise).unwrap(), out);
}

#[tokio::test]
async fn works_over_a_unix_socket_like_the_qemu_chardev() {
    let (host, mut guest) = tokio::net::UnixStream::pair().unwrap();
    let mut con = Console::from_stream(host, ConsoleConfig::default());
    guest.write_all(b"\x1b[?2004hroot@nixos:~# ").await.unwrap();
    con.expect(&[re(r"# $")], deadline_in(Duration::from_secs(2)))
        .await
        .unwrap();
    con.send_line("echo ok").await.unwrap();
    let mut buf = [0u8; 8];
    guest.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"echo ok\n");
}

/// CPU time of this process in clock ticks (Linux), to show that waiting does not spin.
#[cfg(target_os = "linux")]
fn cpu_ticks() -> u64 {
    let s = std::fs::read_to_string("/proc/self/stat").unwrap();
    let rest = &s[s.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}

#[cfg(target_os = "linux")]
#[tokio::test]
async fn waiting_costs_no_cpu() {
    let (mut con, mut guest) = pair(ConsoleConfig::default());
    let before = cpu_ticks();
    let t0 = Instant::now();
    let feeder = tokio::spawn(async move {
        // A slow trickle, as during a boot: every chunk wakes the waiter once, no more.
        for _ in 0..10 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            guest
                .write_all(b"[  OK  ] Reached target.\r\n")
                .await
                .unwrap();
        }
        guest
    });
    let r = con
        .expect(&[re("login: ")], deadline_in(Duration::from_millis(1500)))
        .await;
    assert!(matches!(r, Err(ExpectError::Timeout { .. })));
    let spent = cpu_ticks() - before;
    assert!(t0.elapsed() >= Duration::from_millis(1500));
    // 1.5 s of waiting; a spinning loop would use ~150 ticks (at 100 Hz).
    assert!(spent < 15, "waiting used {spent} ticks of CPU");
    drop(feeder.await.unwrap());
}
