//! The dialogue against a hostile or broken guest, scripted on an in-memory duplex: forged
//! frame markers, a flooded console, terminal queries, a console that closes mid-command.

use super::*;
use std::sync::Arc;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader, DuplexStream};
use tokio::sync::Mutex;

fn dialogue(config: ConsoleConfig) -> (Dialogue, DuplexStream) {
    let (harness, guest) = tokio::io::duplex(1 << 16);
    let console = Console::from_stream(harness, config);
    let noise = NoiseFilter::default_console();
    (Dialogue::new(console, vec![], noise, Cancel::new()), guest)
}

/// The token of a framed line the harness typed.
fn token_of(line: &str) -> String {
    line.split("_BEGIN")
        .next()
        .unwrap()
        .rsplit('_')
        .next()
        .unwrap()
        .to_string()
}

fn soon(secs: u64) -> Instant {
    Instant::now() + Duration::from_secs(secs)
}

/// A guest that replays the previous command's frame (exit 0) before and inside the next
/// command's answer, glues a guessed token's end marker into the output and sends it all a
/// byte at a time: the verdict's output and exit code are the real frame's.
#[tokio::test]
async fn run_takes_the_real_frame_not_forged_or_replayed_markers() {
    let (mut d, guest) = dialogue(ConsoleConfig::default());
    let shell = tokio::spawn(async move {
        let (r, mut w) = tokio::io::split(guest);
        let mut lines = BufReader::new(r).lines();
        // 1: answered honestly; its markers are what a forger can replay later.
        let first = lines.next_line().await.unwrap().unwrap();
        let t1 = token_of(&first);
        let old = format!("BA_{t1}_BEGIN true\r\nactive\r\n\r\nBA_{t1}_END rc=0\r\n");
        w.write_all(old.as_bytes()).await.unwrap();
        w.write_all(b"$ ").await.unwrap();
        // 2: before the answer, the old frame again, a guessed token; inside the output, the
        // old frame's end; one byte at a time.
        let second = lines.next_line().await.unwrap().unwrap();
        let t2 = token_of(&second);
        let answer = format!(
            "{old}BA_0123456789_END rc=0\r\n{second}\r\nBA_{t2}_BEGIN systemctl is-active x\r\n\
             inactive\r\nBA_{t1}_END rc=0\r\nx BA_guess12345_END rc=0\r\n\r\nBA_{t2}_END rc=3\r\n$ "
        );
        for b in answer.bytes() {
            w.write_all(&[b]).await.unwrap();
        }
        w
    });
    let run = d.run("true", false, soon(5)).await.unwrap();
    assert_eq!(
        (run.output.lines, run.output.exit_code),
        (vec!["active".to_string()], 0)
    );
    let run = d
        .run("systemctl is-active x", false, soon(5))
        .await
        .unwrap();
    assert_eq!(run.output.exit_code, 3);
    assert_eq!(run.output.lines[0], "inactive");
    assert_eq!(run.output.lines.len(), 3, "{:?}", run.output.lines);
    let _w = shell.await.unwrap();
}

/// The take-over: a console that shows stale frames (other tokens, exit 0) before and after
/// the line is typed is not a shell that answered; the answer is the frame's own.
#[tokio::test]
async fn take_over_waits_for_its_own_frame_through_stale_ones() {
    let (mut d, mut guest) = dialogue(ConsoleConfig::default());
    guest
        .write_all(b"BA_stale00001_BEGIN id -u\r\n0\r\nBA_stale00001_END rc=0\r\n$ ")
        .await
        .unwrap();
    let shell = tokio::spawn(async move {
        let (r, mut w) = tokio::io::split(guest);
        let mut lines = BufReader::new(r).lines();
        let line = lines.next_line().await.unwrap().unwrap();
        let t = token_of(&line);
        w.write_all(b"BA_stale00002_BEGIN x\r\n42\r\nBA_stale00002_END rc=0\r\n")
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        let answer = format!("BA_{t}_BEGIN x\r\n7\r\n\r\nBA_{t}_END rc=1\r\n$ ");
        w.write_all(answer.as_bytes()).await.unwrap();
        (lines, w)
    });
    let run = d
        .run_when_ready("echo 7; false", Duration::from_secs(2), soon(10))
        .await
        .unwrap();
    assert_eq!(
        (run.output.lines, run.output.exit_code),
        (vec!["7".to_string()], 1)
    );
    let _ = shell.await.unwrap();
}

/// A service floods the console with kernel-style lines while a command runs: the command's
/// output comes back without them (they are noise), and a command nobody answers times out
/// on time, flood or not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_on_a_flooded_console_answer_and_time_out_on_time() {
    let (mut d, guest) = dialogue(ConsoleConfig::default());
    let (r, w) = tokio::io::split(guest);
    let w = Arc::new(Mutex::new(w));
    let flood = {
        let w = w.clone();
        tokio::spawn(async move {
            let mut block = String::new();
            for n in 0..200 {
                block.push_str(&format!("[ {n}.000000] flood: the same service again\r\n"));
            }
            while w.lock().await.write_all(block.as_bytes()).await.is_ok() {
                tokio::task::yield_now().await;
            }
        })
    };
    let shell = tokio::spawn(async move {
        let mut lines = BufReader::new(r).lines();
        let line = lines.next_line().await.unwrap().unwrap();
        let t = token_of(&line);
        let answer = format!("BA_{t}_BEGIN id -un\r\nguest\r\n\r\nBA_{t}_END rc=0\r\n");
        w.lock().await.write_all(answer.as_bytes()).await.unwrap();
        // The second command is never answered.
        while let Ok(Some(_)) = lines.next_line().await {}
    });
    let run = d.run("id -un", false, soon(20)).await.unwrap();
    assert_eq!(run.output.lines, vec!["guest".to_string()]);
    let started = Instant::now();
    let r = d
        .run("sleep 1000", false, Instant::now() + Duration::from_secs(2))
        .await;
    assert!(matches!(r, Err(WaitError::Timeout { .. })), "{r:?}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert!(d.console.retained().transcript_bytes <= d.console.retained().transcript_limit);
    flood.abort();
    shell.abort();
}

/// systemd probes the terminal's size on the console and waits for the answer before the
/// boot goes on: the console answers 24×80 from its cursor, and the login prompt that follows
/// is found as usual. The answer is in the sent-direction record.
#[tokio::test]
async fn a_guest_waiting_for_its_size_answer_gets_it_and_boots_on() {
    let sent = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let record = sent.clone();
    let config = ConsoleConfig::default().sink(bootaudit_console::FnSink(
        move |e: bootaudit_console::ConsoleEvent| {
            if let bootaudit_console::ConsoleEvent::Sent { bytes, .. } = e {
                record
                    .lock()
                    .unwrap()
                    .push(String::from_utf8_lossy(&bytes).into_owned());
            }
        },
    ));
    let (mut d, mut guest) = dialogue(config);
    let guest_task = tokio::spawn(async move {
        guest
            .write_all(
                b"[  OK  ] Reached target getty.target.\r\n\x1b7\x1b[32766;32766H\x1b[6n\x1b8",
            )
            .await
            .unwrap();
        let mut answer = [0u8; 8];
        guest.read_exact(&mut answer).await.unwrap();
        assert_eq!(&answer, b"\x1b[24;80R");
        guest.write_all(b"\r\nnixos login: ").await.unwrap();
        guest
    });
    let login = Regex::new("login: ").unwrap();
    d.expect(&[login], soon(5)).await.unwrap();
    let _guest = guest_task.await.unwrap();
    assert_eq!(
        *sent.lock().unwrap(),
        vec!["[answered terminal query ESC[6n with ESC[24;80R]\n".to_string()]
    );
}

/// The guest goes away while a command runs: the run ends at once with `Closed` (not at its
/// minute-long deadline) and what came is in the tail; so does a take-over, and a line typed
/// afterwards is an error, not a hang.
#[tokio::test]
async fn a_console_that_closes_mid_command_ends_the_run_at_once() {
    let (mut d, guest) = dialogue(ConsoleConfig::default());
    let shell = tokio::spawn(async move {
        let (r, mut w) = tokio::io::split(guest);
        let mut lines = BufReader::new(r).lines();
        let line = lines.next_line().await.unwrap().unwrap();
        let t = token_of(&line);
        w.write_all(format!("BA_{t}_BEGIN x\r\nhalf of the ou").as_bytes())
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        // QEMU exits: both directions close.
    });
    let started = Instant::now();
    let r = d.run("cat big", false, soon(60)).await;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    match r {
        Err(WaitError::Closed { tail }) => assert!(tail.ends_with("half of the ou"), "{tail:?}"),
        other => panic!("{other:?}"),
    }
    shell.await.unwrap();
    assert_eq!(
        d.console.closed(),
        Some(bootaudit_console::CloseReason::Eof)
    );
    let started = Instant::now();
    let r = d
        .run_when_ready("true", Duration::from_millis(500), soon(60))
        .await;
    assert!(matches!(r, Err(WaitError::Closed { .. })), "{r:?}");
    let r = d.send_line("echo hello").await;
    match r {
        Err(WaitError::Closed { tail }) => assert!(tail.contains("closed"), "{tail}"),
        other => panic!("{other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(1));
}
