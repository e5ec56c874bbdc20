//! Framing tests: the echo never yields a marker, a real shell gives output and exit code back
//! in one round trip, and console noise in between is separated out.

use bootaudit_console::{
    frame, frame_with_token, fresh_token, parse_between, FrameError, NoiseFilter, Normalizer,
};
use regex::Regex;

fn re(s: &str) -> Regex {
    Regex::new(s).unwrap()
}

#[test]
fn echo_of_the_line_never_matches_a_marker_even_when_wrapped() {
    let f = frame_with_token("systemctl is-active pre-nixos.service", "a1b2c3").unwrap();
    let echo = format!("PRE-NIXOS> {}\r\r\n", f.line);
    assert!(!f.begin_re.is_match(&echo) && !f.end_re.is_match(&echo));
    // A terminal may wrap the echo anywhere (readline writes " \r" or "\r\n" at the margin).
    for i in 0..=f.line.len() {
        for brk in [&b" \r"[..], b"\r\n", b"\r"] {
            let mut raw = f.line.as_bytes()[..i].to_vec();
            raw.extend_from_slice(brk);
            raw.extend_from_slice(&f.line.as_bytes()[i..]);
            raw.extend_from_slice(b"\r\r\n");
            let t = Normalizer::normalize_all(&raw);
            assert!(
                !f.begin_re.is_match(&t) && !f.end_re.is_match(&t),
                "wrapped at {i}: {t:?}"
            );
        }
    }
}

#[test]
fn bad_commands_and_tokens_are_refused() {
    assert_eq!(frame("echo a\necho b").unwrap_err(), FrameError::MultiLine);
    assert_eq!(frame("   ").unwrap_err(), FrameError::Empty);
    assert!(matches!(
        frame_with_token("true", "a-b"),
        Err(FrameError::BadToken(_))
    ));
    assert!(matches!(
        frame_with_token("true", ""),
        Err(FrameError::BadToken(_))
    ));
}

#[test]
fn fresh_tokens_are_alnum_and_distinct() {
    let toks: std::collections::HashSet<String> = (0..1000).map(|_| fresh_token()).collect();
    assert_eq!(toks.len(), 1000);
    assert!(toks
        .iter()
        .all(|t| t.len() == 10 && t.bytes().all(|b| b.is_ascii_alphanumeric())));
}

/// Run the framed line in a real POSIX shell and parse what it printed.
fn run_in(shell: &str, cmd: &str) -> Option<bootaudit_console::FramedOutput> {
    let f = frame(cmd).unwrap();
    let out = std::process::Command::new(shell)
        .arg("-c")
        .arg(&f.line)
        .output()
        .ok()?;
    let text = Normalizer::normalize_all(&out.stdout);
    Some(
        f.extract(&text, &NoiseFilter::default_console())
            .expect("markers in shell output"),
    )
}

#[test]
fn a_real_shell_gives_output_and_exit_code_in_one_round_trip() {
    for shell in ["sh", "bash", "dash"] {
        let Some(o) = run_in(shell, "echo one; echo two >&2; (exit 3)") else {
            eprintln!("NOTICE: {shell} not available, skipped");
            continue;
        };
        assert_eq!(o.lines, vec!["one", "two"], "{shell}");
        assert_eq!(o.exit_code, 3, "{shell}");
        let o = run_in(shell, "printf abc").unwrap();
        assert_eq!(
            (o.lines, o.exit_code),
            (vec!["abc".to_string()], 0),
            "{shell}: no final newline"
        );
        let o = run_in(shell, "true").unwrap();
        assert_eq!(o.lines, Vec::<String>::new(), "{shell}: no output");
        let o = run_in(shell, "printf 'a\\n\\n'").unwrap();
        assert_eq!(o.lines, vec!["a", ""], "{shell}: trailing blank line kept");
        let o = run_in(shell, "printf '\\n'").unwrap();
        assert_eq!(o.lines, vec![""], "{shell}: one empty line");
        // Stdin is /dev/null: a reader gets EOF instead of the harness's next line.
        let o = run_in(shell, "cat; echo after").unwrap();
        assert_eq!(o.lines, vec!["after"], "{shell}");
        // Quotes and a marker-looking string inside the command are harmless.
        let o = run_in(shell, "echo 'BA_x_END rc=9'; false").unwrap();
        assert_eq!(
            (o.lines, o.exit_code),
            (vec!["BA_x_END rc=9".to_string()], 1),
            "{shell}"
        );
    }
}

#[test]
fn console_noise_between_markers_is_returned_separately() {
    let noise = NoiseFilter::default_console().with([
        re(r"^LAN IPv4 address: "),
        re(r"^<<< Welcome to "),
        re(r"^pre-nixos boot image version "),
    ]);
    let between = concat!(
        "STATE=applied\n",
        "[   12.345678] random: crng init done\n",
        "[  OK  ] Started Pre-NixOS setup.\n",
        "[FAILED] Failed to start foo.service.\n",
        "         Starting Network Configuration...\n",
        "LAN IPv4 address: 10.0.2.15\n",
        "<<< Welcome to NixOS 25.05 (x86_64) - ttyS0 >>>\n",
        "pre-nixos boot image version 0.7.9\n",
        "DETAIL=auto-applied\n",
        "\n",
    );
    let o = parse_between(between, 0, &noise);
    assert_eq!(o.lines, vec!["STATE=applied", "DETAIL=auto-applied"]);
    assert_eq!(o.interleaved.len(), 7);
    assert_eq!(o.raw, between);
    // Without the filter every line is output.
    let o = parse_between(between, 0, &NoiseFilter::none());
    assert_eq!(o.lines.len(), 9);
    assert!(o.interleaved.is_empty());
}

#[test]
fn kernel_line_glued_into_an_output_line_is_cut_out_and_the_line_rejoined() {
    let between = "inet 10.0.2[   33.123456] virtio_net virtio0 lan: link up\n.15/24 brd 10.0.2.255\nnext\n\n";
    let o = parse_between(between, 0, &NoiseFilter::default_console());
    assert_eq!(o.lines, vec!["inet 10.0.2.15/24 brd 10.0.2.255", "next"]);
    assert_eq!(
        o.interleaved,
        vec!["[   33.123456] virtio_net virtio0 lan: link up"]
    );
}

#[test]
fn extract_finds_the_first_frame_after_the_echo() {
    let f = frame_with_token("id -u", "zz9").unwrap();
    let text = format!(
        "PRE-NIXOS> {line}\n1000\nBA_zz9_BEGIN\n1000\n\nBA_zz9_END rc=0\nPRE-NIXOS> ",
        line = f.line
    );
    let o = f.extract(&text, &NoiseFilter::none()).unwrap();
    assert_eq!((o.lines, o.exit_code), (vec!["1000".to_string()], 0));
    assert!(f
        .extract("BA_zz9_BEGIN\nno end yet", &NoiseFilter::none())
        .is_none());
}
