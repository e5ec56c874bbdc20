//! Console-stack benchmarks, ours and a baseline side by side in one run (plain `harness = false`
//! binary: the figures we need — allocated bytes, peak RSS, CPU time while waiting, scaling with
//! the amount of noise — are not what a statistics harness measures).
//!
//! ```text
//! cargo bench -p bootaudit-console --bench console                 # everything (~3-4 min)
//! cargo bench -p bootaudit-console --bench console -- --only norm   # norm | mem | expect | wait
//! cargo bench -p bootaudit-console --bench console -- --runs 7 --mb 20
//! ```
//!
//! Single cases (`--case NAME`) run once and print one line; `benches/callgrind.sh` runs them
//! under callgrind, which counts only the instructions of `measured` (repeatable on a busy
//! machine). Figures and their meaning: `docs/benchmarks.md`.
//!
//! The input is synthesised here from a fixed seed (no file is read): an ISOLINUX menu with DEC
//! line drawing and cursor moves, kernel printk lines, coloured systemd status lines, agetty's
//! `\r\r\n`, bash prompts with OSC titles and bracketed-paste toggles ("boot"), and a service
//! that prints a line every few ms ("flood").

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::io::Write as _;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant as StdInstant};

use bootaudit_console::transcript::RESCAN_WINDOW;
use bootaudit_console::{Console, ConsoleConfig, ExpectError, Normalizer, Transcript};
use regex::Regex;
use tokio::io::AsyncWriteExt;
use tokio::time::Instant;

// ---------------------------------------------------------------------------------------------
// Counting allocator: live and peak bytes requested from the system allocator.

struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn grew(by: usize) {
    let now = LIVE.fetch_add(by, Ordering::Relaxed) + by;
    PEAK.fetch_max(now, Ordering::Relaxed);
}

// SAFETY: forwards every call to `System` unchanged; only counts sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        grew(l.size());
        System.alloc(l)
    }
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        grew(l.size());
        System.alloc_zeroed(l)
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size(), Ordering::Relaxed);
        System.dealloc(p, l)
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        // Counted as grow/shrink in place: glibc moves large blocks with mremap, without a copy.
        if new >= l.size() {
            grew(new - l.size());
        } else {
            LIVE.fetch_sub(l.size() - new, Ordering::Relaxed);
        }
        System.realloc(p, l, new)
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Reset the peak to the live bytes; returns the live bytes.
fn alloc_mark() -> usize {
    let live = LIVE.load(Ordering::Relaxed);
    PEAK.store(live, Ordering::Relaxed);
    live
}

// ---------------------------------------------------------------------------------------------
// Deterministic input.

const SEED: u64 = 0x5EED_B007_A0D1_7000;
const MB: usize = 1_000_000;

/// splitmix64: tiny, deterministic, good enough to vary numbers and message choice.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
}

const UNITS: &[&str] = &[
    "systemd-journald.service",
    "systemd-udevd.service",
    "dbus.service",
    "nscd.service",
    "network-setup.service",
    "dhcpcd.service",
    "sshd.service",
    "systemd-logind.service",
    "systemd-timesyncd.service",
    "firewall.service",
    "reload-systemd-vconsole-setup.service",
    "systemd-tmpfiles-setup.service",
    "mount-pstore.service",
    "getty@tty1.service",
    "serial-getty@ttyS0.service",
];
const TARGETS: &[&str] = &[
    "local-fs.target",
    "network.target",
    "network-online.target",
    "sockets.target",
    "basic.target",
    "multi-user.target",
    "getty.target",
];
const KMSG: &[&str] = &[
    "pci 0000:00:{h2}.0: [8086:{h4}] type 00 class 0x{h6} conventional PCI endpoint",
    "ACPI: PM-Timer IO Port: 0x{h4}",
    "usb 1-1: new high-speed USB device number {d} using xhci_hcd",
    "EXT4-fs (vda{d}): mounted filesystem {h4}{h4}-{h4} r/w with ordered data mode. Quota mode: none.",
    "audit: type=1400 audit({d}.{d}:{d}): apparmor=\"STATUS\" operation=\"profile_load\" name=\"nscd\" pid={d}",
    "virtio_net virtio{d} ens{d}: renamed from eth0",
    "random: crng init done",
    "clocksource: tsc: mask: 0xffffffffffffffff max_cycles: 0x{h6}{h6}, max_idle_ns: {d} ns",
    "systemd[1]: Queued start job for default target multi-user.target.",
    "NET: Registered PF_INET6 protocol family",
    "sr 0:0:0:0: Attached scsi CD-ROM sr0",
    "Freeing unused kernel image (initmem) memory: {d}K",
];

fn fill(rng: &mut Rng, template: &str) -> String {
    let mut out = String::with_capacity(template.len() + 16);
    let mut rest = template;
    while let Some(i) = rest.find('{') {
        out.push_str(&rest[..i]);
        let j = rest[i..].find('}').map_or(rest.len(), |j| i + j + 1);
        match &rest[i..j] {
            "{h2}" => out.push_str(&format!("{:02x}", rng.below(0x20))),
            "{h4}" => out.push_str(&format!("{:04x}", rng.below(0x1_0000))),
            "{h6}" => out.push_str(&format!("{:06x}", rng.below(0x100_0000))),
            _ => out.push_str(&rng.below(100_000).to_string()),
        }
        rest = &rest[j..];
    }
    out.push_str(rest);
    out
}

/// Kernel timestamp `[    1.234567] ` from microseconds.
fn ts(us: u64) -> String {
    format!("[{:5}.{:06}] ", us / 1_000_000, us % 1_000_000)
}

fn isolinux_menu(out: &mut Vec<u8>, rng: &mut Rng) {
    out.extend_from_slice(b"\x1b[?25l\x1b[0m\x1b[2J\x1b[H\x1b]0;ISOLINUX 6.04\x07");
    let width = 40;
    out.extend_from_slice(format!("\x1b[4;20H\x1b(0l{}k\x1b(B", "q".repeat(width)).as_bytes());
    let entries = [
        "NixOS 24.05 Installer",
        "NixOS 24.05 Installer (nomodeset)",
        "NixOS 24.05 Installer (copytoram)",
        "NixOS 24.05 Installer (serial console=ttyS0,115200n8)",
        "Boot from first hard disk",
    ];
    for (row, e) in entries.iter().enumerate() {
        let colour = if row == 0 { "0;30;47" } else { "0;37;40" };
        let label: String = format!("  {e:<38}").chars().take(width).collect();
        out.extend_from_slice(
            format!(
                "\x1b[{};20H\x1b(0x\x1b(B\x1b[{colour}m{label}\x1b[0m\x1b(0x\x1b(B",
                5 + row
            )
            .as_bytes(),
        );
    }
    out.extend_from_slice(format!("\x1b[10;20H\x1b(0m{}j\x1b(B", "q".repeat(width)).as_bytes());
    // Countdown redraws in place: CR plus cursor positioning, no newline.
    for s in (1..=10).rev() {
        out.extend_from_slice(
            format!("\x1b[12;20H\x1b[0mAutomatic boot in {s:>2} seconds...\x1b[K\r").as_bytes(),
        );
    }
    // Arrow keys move the highlight a couple of times.
    for _ in 0..rng.below(3) {
        out.extend_from_slice(b"\x1b[5;21H\x1b[0;37;40m  NixOS 24.05 Installer\x1b[6;21H\x1b[0;30;47m  NixOS 24.05 Installer (nomodeset)\x1b[0m");
    }
    out.extend_from_slice(b"\x1b[?25h\x1b[0m\x1b[2J\x1b[H\r\nLoading /boot/bzImage... ok\r\nLoading /boot/initrd... ok\r\n");
}

fn systemd_line(out: &mut Vec<u8>, rng: &mut Rng) {
    let unit = rng.pick(UNITS);
    match rng.below(10) {
        0..=3 => out.extend_from_slice(
            format!("         Starting \x1b[0;1;39m{unit}\x1b[0m - Service {unit}...\r\n").as_bytes(),
        ),
        4..=7 => out.extend_from_slice(
            format!("[\x1b[0;32m  OK  \x1b[0m] Started \x1b[0;1;39m{unit}\x1b[0m - Service {unit}.\r\n")
                .as_bytes(),
        ),
        8 => {
            let t = rng.pick(TARGETS);
            out.extend_from_slice(
                format!("[\x1b[0;32m  OK  \x1b[0m] Reached target \x1b[0;1;39m{t}\x1b[0m - Target {t}.\r\n")
                    .as_bytes(),
            )
        }
        _ => out.extend_from_slice(
            format!("[\x1b[0;1;31mFAILED\x1b[0m] Failed to start \x1b[0;1;39m{unit}\x1b[0m - Service {unit}.\r\nSee 'systemctl status {unit}' for details.\r\n")
                .as_bytes(),
        ),
    }
}

fn shell_session(out: &mut Vec<u8>, rng: &mut Rng) {
    out.extend_from_slice(
        format!(
            "\r\r\n\r\r\n<<< Welcome to NixOS 24.05.{} (x86_64) - ttyS0 >>>\r\r\n\r\r\nnixos login: nixos (automatic login)\r\r\n\r\r\n",
            rng.below(9000)
        )
        .as_bytes(),
    );
    let commands = [
        "systemctl is-system-running",
        "id -u",
        "uname -a",
        "systemctl status sshd",
    ];
    for cmd in commands {
        // OSC title, bracketed paste on, coloured prompt; the echo; paste off before output.
        out.extend_from_slice(
            format!(
                "\x1b]0;nixos@nixos: ~\x07\x1b[?2004h\x1b[1;32m[nixos@nixos:~]$\x1b[0m {cmd}\r\n\x1b[?2004l\r"
            )
            .as_bytes(),
        );
        match cmd {
            "id -u" => out.extend_from_slice(b"1000\r\n"),
            "systemctl status sshd" => out.extend_from_slice(
                "\x1b[0;1;32m\u{25cf}\x1b[0m sshd.service - SSH Daemon\r\n     Loaded: loaded (/etc/systemd/system/sshd.service; enabled; preset: enabled)\r\n     Active: \x1b[0;1;32mactive (running)\x1b[0m since Mon 2024-06-03 10:00:00 UTC; 3s ago\r\n"
                    .as_bytes(),
            ),
            _ => out.extend_from_slice(b"running\r\n"),
        }
    }
}

/// The "boot" profile: menu, kernel, systemd, login and a few shell commands, repeated until
/// `target` bytes.
fn gen_boot(target: usize, seed: u64) -> Vec<u8> {
    let mut rng = Rng(seed);
    let mut out = Vec::with_capacity(target + 4096);
    while out.len() < target {
        isolinux_menu(&mut out, &mut rng);
        let mut us = 0u64;
        for _ in 0..400 {
            us += 200 + rng.below(30_000);
            let template = KMSG[rng.below(KMSG.len() as u64) as usize];
            let msg = fill(&mut rng, template);
            out.extend_from_slice(ts(us).as_bytes());
            out.extend_from_slice(msg.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        for _ in 0..200 {
            systemd_line(&mut out, &mut rng);
        }
        shell_session(&mut out, &mut rng);
    }
    out.truncate(target);
    out
}

/// The "flood" profile: one service line every 2–8 ms of guest time, with an occasional coloured
/// systemd line. Ends on a line boundary at or after `target` bytes.
fn gen_flood(target: usize, seed: u64) -> Vec<u8> {
    let mut rng = Rng(seed);
    let mut out = Vec::with_capacity(target + 256);
    let mut us = 30_000_000u64;
    let mut tick = 0u64;
    while out.len() < target {
        us += 2_000 + rng.below(6_000);
        tick += 1;
        match rng.below(50) {
            0 => systemd_line(&mut out, &mut rng),
            1 | 2 => out.extend_from_slice(
                format!(
                    "{}flood-svc[812]: \x1b[0;1;33mwarning\x1b[0m: queue above {} (tick {tick})\r\n",
                    ts(us),
                    rng.below(1000)
                )
                .as_bytes(),
            ),
            _ => out.extend_from_slice(
                format!(
                    "{}flood-svc[812]: tick={tick} queue={} latency_ms={}.{} status=ok\r\n",
                    ts(us),
                    rng.below(64),
                    rng.below(40),
                    rng.below(10)
                )
                .as_bytes(),
            ),
        }
    }
    out
}

fn gen(profile: &str, mb: f64) -> Vec<u8> {
    let target = (mb * MB as f64) as usize;
    match profile {
        "boot" => gen_boot(target, SEED),
        "flood" => gen_flood(target, SEED ^ 1),
        other => panic!("unknown profile {other}"),
    }
}

/// Split `data` into pieces of `size` bytes, or at every `\n` when `size == 0` (a flood line per
/// read, which is how a service printing every few ms arrives on the socket).
fn chunks(data: &[u8], size: usize) -> Vec<&[u8]> {
    if size == 0 {
        data.split_inclusive(|&b| b == b'\n').collect()
    } else {
        data.chunks(size).collect()
    }
}

// ---------------------------------------------------------------------------------------------
// Normalisers: ours and two baselines, all streaming chunk by chunk.

/// `vte`-based stripping (the parser strip-ansi-escapes is built on) into a String.
#[derive(Default)]
struct VteText(String);

impl vte::Perform for VteText {
    fn print(&mut self, c: char) {
        self.0.push(c);
    }
    fn execute(&mut self, byte: u8) {
        if byte == b'\n' {
            self.0.push('\n');
        }
    }
}

/// Normalise `input` in chunks of `chunk` bytes with implementation `imp`; returns the output
/// length (and keeps the output alive until then, so memory figures include it).
#[inline(never)]
fn measured(imp: &str, input: &[u8], chunk: usize) -> usize {
    match imp {
        "ours" => {
            let at = Instant::now();
            let mut n = Normalizer::new();
            for c in input.chunks(chunk) {
                n.push(c, at);
            }
            n.finish();
            black_box(n.text().len())
        }
        // `ours@NS`: every read carries its own arrival time, NS nanoseconds of guest time per
        // input byte (60000 = 20 MB over a 20-minute boot). With one `Instant` for all reads
        // (`ours`) the time map's 1 ms merge folds everything into one entry; a live console
        // stamps each read with `Instant::now()`.
        paced if paced.starts_with("ours@") => {
            let ns: u64 = paced["ours@".len()..].parse().expect("ours@NS_PER_BYTE");
            let base = Instant::now();
            let mut n = Normalizer::new();
            let mut off = 0u64;
            for c in input.chunks(chunk) {
                off += c.len() as u64;
                n.push(c, base + Duration::from_nanos(off * ns));
            }
            n.finish();
            black_box(n.text().len())
        }
        "strip" => {
            let mut w = strip_ansi_escapes::Writer::new(Vec::new());
            for c in input.chunks(chunk) {
                w.write_all(c).expect("writing to a Vec cannot fail");
            }
            let v = w.into_inner().expect("flush to a Vec cannot fail");
            black_box(v.len())
        }
        "vte" => {
            let mut p = vte::Parser::new();
            let mut t = VteText::default();
            for c in input.chunks(chunk) {
                p.advance(&mut t, c);
            }
            black_box(t.0.len())
        }
        other => panic!("unknown normaliser {other}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Expect under flood.

const MARKER_LINE: &[u8] = b"BA_k3J9x2QpLm_END rc=0\r\n";

fn expect_patterns() -> Vec<Regex> {
    vec![
        // A framed command's end marker (literal prefix) and a login prompt (no literal prefix).
        Regex::new(r"BA_k3J9x2QpLm_END rc=(\d+)\n").unwrap(),
        Regex::new(r"(?m)^\S+ login: $").unwrap(),
    ]
}

fn expect_input(noise_mb: f64) -> Vec<u8> {
    let mut v = gen("flood", noise_mb);
    v.extend_from_slice(MARKER_LINE);
    v.extend_from_slice(&gen_flood(4096, 7));
    v
}

/// Ours, the engine's loop without I/O: push a chunk, search from the cursor or the rescan
/// window, remember where the next search may start. Returns the match end.
#[inline(never)]
fn expect_ours(pieces: &[&[u8]], pats: &[Regex]) -> usize {
    let at = Instant::now();
    let mut t = Transcript::new();
    let mut search_from: Option<usize> = None;
    for c in pieces {
        t.push(c, at);
        let from = search_from.unwrap_or(0).max(t.cursor());
        if let Some(m) = t.expect_from(pats, from) {
            return m.end;
        }
        // Absolute offsets: a long flood may pass the transcript's bound.
        search_from = Some(t.start() + t.relative(t.end().saturating_sub(RESCAN_WINDOW)));
    }
    panic!("marker not found");
}

/// Baseline: same normaliser, but every chunk re-runs every regex over the whole buffer.
#[inline(never)]
fn expect_naive(pieces: &[&[u8]], pats: &[Regex]) -> usize {
    let at = Instant::now();
    let mut n = Normalizer::new();
    for c in pieces {
        n.push(c, at);
        if let Some(end) = pats
            .iter()
            .filter_map(|re| re.find(n.text()))
            .min_by_key(|m| m.start())
            .map(|m| m.end())
        {
            return end;
        }
    }
    panic!("marker not found");
}

/// Ours end to end: the real `Console` over a `tokio::io::duplex`, a writer task sending the
/// chunks; the reader coalesces what is available into one read, as on a socket.
#[inline(never)]
fn expect_engine(pieces: &[&[u8]], pats: &[Regex]) -> usize {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let owned: Vec<Vec<u8>> = pieces.iter().map(|c| c.to_vec()).collect();
    rt.block_on(async move {
        let (host, mut guest) = tokio::io::duplex(64 * 1024);
        let mut con = Console::from_stream(host, ConsoleConfig::default());
        let writer = tokio::spawn(async move {
            for c in owned {
                if guest.write_all(&c).await.is_err() {
                    return;
                }
            }
            // Keep the guest side open: a closed source would end the wait differently.
            tokio::time::sleep(Duration::from_secs(3600)).await;
        });
        let m = con
            .expect(pats, Instant::now() + Duration::from_secs(3600))
            .await
            .expect("marker found");
        writer.abort();
        m.end
    })
}

// ---------------------------------------------------------------------------------------------
// CPU while waiting.

#[derive(Clone, Copy)]
struct Usage {
    cpu: Duration,
    voluntary_switches: i64,
}

fn usage() -> Usage {
    // SAFETY: getrusage fills the zeroed struct it is given.
    let ru = unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut ru);
        ru
    };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    Usage {
        cpu: tv(ru.ru_utime) + tv(ru.ru_stime),
        voluntary_switches: ru.ru_nvcsw,
    }
}

/// Ours: `Console::expect` on a silent duplex source (after `preload` bytes arrived) until a
/// `wait` timeout. Returns CPU time and wake-ups spent in the wait.
fn wait_ours(preload: &[u8], wait: Duration) -> (Duration, i64) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let preload = preload.to_vec();
    rt.block_on(async move {
        let (host, mut guest) = tokio::io::duplex(64 * 1024);
        let mut con = Console::from_stream(host, ConsoleConfig::default());
        let len = preload.len() as u64;
        let writer = tokio::spawn(async move {
            guest.write_all(&preload).await.unwrap();
            tokio::time::sleep(Duration::from_secs(3600)).await;
        });
        while con.bytes_received() < len {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let pats = expect_patterns();
        let u0 = usage();
        let r = con.expect(&pats, Instant::now() + wait).await;
        let u1 = usage();
        assert!(matches!(r, Err(ExpectError::Timeout { .. })));
        writer.abort();
        (
            u1.cpu - u0.cpu,
            u1.voluntary_switches - u0.voluntary_switches,
        )
    })
}

/// Baseline: a synchronous expect loop that polls a non-blocking source, re-runs the regexes
/// over its whole buffer and sleeps 10 ms.
fn wait_poll(preload: &[u8], wait: Duration) -> (Duration, i64) {
    use std::io::Read;
    let (mut src, _guest) = std::os::unix::net::UnixStream::pair().unwrap();
    src.set_nonblocking(true).unwrap();
    let mut n = Normalizer::new();
    n.push(preload, Instant::now());
    let pats = expect_patterns();
    let mut buf = [0u8; 8192];
    let u0 = usage();
    let deadline = StdInstant::now() + wait;
    loop {
        match src.read(&mut buf) {
            Ok(k) if k > 0 => {
                n.push(&buf[..k], Instant::now());
            }
            _ => {}
        }
        if pats.iter().any(|re| re.is_match(n.text())) {
            panic!("nothing should match");
        }
        if StdInstant::now() >= deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let u1 = usage();
    (
        u1.cpu - u0.cpu,
        u1.voluntary_switches - u0.voluntary_switches,
    )
}

// ---------------------------------------------------------------------------------------------
// Memory (each case in a fresh child process so RSS is not polluted by earlier cases).

fn proc_status_kb(field: &str) -> usize {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// `--case mem:IMP:PROFILE:CHUNK`: prints `peak_alloc=… rss_delta=… out=…` (bytes).
fn mem_case(imp: &str, profile: &str, chunk: usize, mb: f64) {
    let input = gen(profile, mb);
    // Reset VmHWM to the current RSS (Linux >= 4.0), so the delta is this case's own.
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let rss0 = proc_status_kb("VmRSS:");
    let live0 = alloc_mark();
    let out = measured(imp, &input, chunk);
    let peak = PEAK.load(Ordering::Relaxed) - live0;
    let hwm = proc_status_kb("VmHWM:");
    println!(
        "peak_alloc={peak} rss_delta={} out={out} in={}",
        hwm.saturating_sub(rss0) * 1024,
        input.len()
    );
}

fn run_child(case: &str, mb: f64) -> Vec<(String, f64)> {
    let exe = std::env::current_exe().unwrap();
    let out = std::process::Command::new(exe)
        .args(["--case", case, "--mb", &mb.to_string()])
        .output()
        .expect("run bench child");
    assert!(out.status.success(), "child {case} failed: {out:?}");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.parse().unwrap_or(f64::NAN)))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Reporting helpers.

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn spread(v: &[f64]) -> (f64, f64) {
    let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    (lo, hi)
}

fn time<T>(f: impl FnOnce() -> T) -> (f64, T) {
    let t = StdInstant::now();
    let r = f();
    (t.elapsed().as_secs_f64(), r)
}

fn mib(bytes: f64) -> String {
    format!("{:.1} MiB", bytes / (1024.0 * 1024.0))
}

struct Opts {
    runs: usize,
    mb: f64,
    only: Option<String>,
    case: Option<String>,
}

fn opts() -> Opts {
    let mut o = Opts {
        runs: 5,
        mb: 20.0,
        only: None,
        case: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--runs" => o.runs = args.next().and_then(|v| v.parse().ok()).expect("--runs N"),
            "--mb" => o.mb = args.next().and_then(|v| v.parse().ok()).expect("--mb MB"),
            "--only" => o.only = args.next(),
            "--case" => o.case = args.next(),
            // `cargo bench` passes `--bench`; filters of other harnesses are ignored too.
            _ => {}
        }
    }
    o
}

// ---------------------------------------------------------------------------------------------
// Sections.

const IMPS: &[(&str, &str)] = &[
    ("ours", "ours: Normalizer"),
    ("strip", "strip-ansi-escapes 0.2 Writer"),
    ("vte", "vte 0.14 Parser → String"),
];

fn section_norm(o: &Opts) {
    println!(
        "\n## Normaliser throughput ({} MB per profile, median of {} runs, MB/s, min–max)\n",
        o.mb, o.runs
    );
    println!("| profile | chunk | ours: Normalizer | strip-ansi-escapes 0.2 | vte 0.14 → String |");
    println!("|---|---:|---:|---:|---:|");
    for profile in ["boot", "flood"] {
        let input = gen(profile, o.mb);
        // Sanity: ours is split-invariant on this input.
        let whole = Normalizer::normalize_all(&input);
        let mut n = Normalizer::new();
        for c in input.chunks(1) {
            n.push(c, Instant::now());
        }
        n.finish();
        assert_eq!(n.text(), whole, "split invariance on the {profile} profile");
        for chunk in [1usize, 64, 4096] {
            let mut rates: Vec<Vec<f64>> = vec![Vec::new(); IMPS.len()];
            for _ in 0..o.runs {
                // Interleaved, so a burst of background load hits all implementations alike.
                for (i, (imp, _)) in IMPS.iter().enumerate() {
                    let (s, _) = time(|| measured(imp, &input, chunk));
                    rates[i].push(input.len() as f64 / MB as f64 / s);
                }
            }
            let cells: Vec<String> = rates
                .iter_mut()
                .map(|r| {
                    let (lo, hi) = spread(r);
                    format!("{:.0} ({:.0}–{:.0})", median(r), lo, hi)
                })
                .collect();
            println!("| {profile} | {chunk} | {} |", cells.join(" | "));
        }
    }
}

/// Ours with a per-read arrival time (see `measured`): the time map then keeps one entry per
/// millisecond of guest time in which text arrived, which a single `Instant` for all reads hides.
const PACED: &[(&str, &str)] = &[
    ("ours@60000", "ours, reads stamped 20 MB / 20 min"),
    ("ours@6000", "ours, reads stamped 20 MB / 2 min"),
];

fn section_mem(o: &Opts) {
    println!(
        "\n## Memory to normalise {} MB (allocator peak is exact; RSS delta = VmHWM − VmRSS before, median of 3)\n",
        o.mb
    );
    println!("| profile | chunk | implementation | output | peak allocated | peak RSS delta |");
    println!("|---|---:|---|---:|---:|---:|");
    for profile in ["boot", "flood"] {
        for chunk in [1usize, 64, 4096] {
            for (imp, label) in IMPS.iter().chain(PACED) {
                let mut peaks = Vec::new();
                let mut rss = Vec::new();
                let mut out = 0.0;
                for _ in 0..3 {
                    let r = run_child(&format!("mem:{imp}:{profile}:{chunk}"), o.mb);
                    let get = |k: &str| r.iter().find(|(n, _)| n == k).map_or(f64::NAN, |x| x.1);
                    peaks.push(get("peak_alloc"));
                    rss.push(get("rss_delta"));
                    out = get("out");
                }
                println!(
                    "| {profile} | {chunk} | {label} | {} | {} | {} |",
                    mib(out),
                    mib(median(&mut peaks)),
                    mib(median(&mut rss))
                );
            }
        }
    }
}

fn section_expect(o: &Opts) {
    println!(
        "\n## Expect: marker after N MB of flood (seconds, median of {} runs; naive skipped once one run exceeds 8 s)\n",
        o.runs.min(3)
    );
    println!("| N MB | delivery | chunks | ours: Transcript + RESCAN_WINDOW | ours: Console engine over duplex | naive: whole-buffer regex per chunk |");
    println!("|---:|---|---:|---:|---:|---:|");
    let pats = expect_patterns();
    let runs = o.runs.min(3);
    for (delivery, size) in [("line per read", 0usize), ("4096-byte reads", 4096)] {
        let mut naive_too_slow = false;
        for n_mb in [1.0, 2.0, 4.0, 8.0, 16.0] {
            let input = expect_input(n_mb);
            let pieces = chunks(&input, size);
            let mut ours = Vec::new();
            let mut engine = Vec::new();
            let mut naive = Vec::new();
            let mut expected = None;
            for _ in 0..runs {
                let (s, end) = time(|| expect_ours(&pieces, &pats));
                assert_eq!(*expected.get_or_insert(end), end);
                ours.push(s);
                let (s, end) = time(|| expect_engine(&pieces, &pats));
                assert_eq!(expected, Some(end));
                engine.push(s);
                if !naive_too_slow {
                    let (s, end) = time(|| expect_naive(&pieces, &pats));
                    assert_eq!(expected, Some(end));
                    naive.push(s);
                    if s > 8.0 {
                        naive_too_slow = true;
                    }
                }
            }
            let naive_cell = if naive.is_empty() {
                "skipped".to_string()
            } else {
                format!("{:.3}", median(&mut naive))
            };
            println!(
                "| {n_mb} | {delivery} | {} | {:.3} | {:.3} | {naive_cell} |",
                pieces.len(),
                median(&mut ours),
                median(&mut engine)
            );
        }
    }
}

fn section_wait(o: &Opts) {
    let wait = Duration::from_secs(2);
    let runs = o.runs.min(3);
    println!(
        "\n## CPU while waiting {wait:?} on a silent source (getrusage user+sys, median of {runs} runs)\n"
    );
    println!("| already received | ours: Console::expect (watch channel) | wake-ups | baseline: poll + regex + sleep 10 ms | wake-ups |");
    println!("|---|---:|---:|---:|---:|");
    for (label, preload) in [
        ("nothing", Vec::new()),
        ("20 MB flood, unmatched", gen("flood", 20.0)),
    ] {
        let (mut oc, mut ow, mut bc, mut bw) = (vec![], vec![], vec![], vec![]);
        for _ in 0..runs {
            let (c, w) = wait_ours(&preload, wait);
            oc.push(c.as_secs_f64() * 1e3);
            ow.push(w as f64);
            let (c, w) = wait_poll(&preload, wait);
            bc.push(c.as_secs_f64() * 1e3);
            bw.push(w as f64);
        }
        let pct = |ms: f64| ms / wait.as_secs_f64() / 10.0;
        let (o_ms, b_ms) = (median(&mut oc), median(&mut bc));
        println!(
            "| {label} | {o_ms:.1} ms ({:.2} % of a core) | {:.0} | {b_ms:.1} ms ({:.2} % of a core) | {:.0} |",
            pct(o_ms),
            median(&mut ow),
            pct(b_ms),
            median(&mut bw)
        );
    }
}

fn single_case(case: &str, mb: f64) {
    let parts: Vec<&str> = case.split(':').collect();
    match parts.as_slice() {
        ["mem", imp, profile, chunk] => mem_case(imp, profile, chunk.parse().unwrap(), mb),
        ["gen", profile] => println!("in={}", black_box(gen(profile, mb)).len()),
        ["norm", imp, profile, chunk] => {
            let input = gen(profile, mb);
            let out = measured(imp, &input, chunk.parse().unwrap());
            println!("in={} out={out}", input.len());
        }
        ["expect", imp, delivery, n_mb] => {
            let input = expect_input(n_mb.parse().unwrap());
            let pieces = chunks(&input, if *delivery == "lines" { 0 } else { 4096 });
            let pats = expect_patterns();
            let end = match *imp {
                "ours" => expect_ours(&pieces, &pats),
                "naive" => expect_naive(&pieces, &pats),
                "engine" => expect_engine(&pieces, &pats),
                other => panic!("unknown expect implementation {other}"),
            };
            println!("chunks={} end={end}", pieces.len());
        }
        _ => panic!("unknown case {case}"),
    }
}

fn main() {
    let o = opts();
    if let Some(case) = &o.case {
        single_case(case, o.mb);
        return;
    }
    println!(
        "bootaudit-console benchmarks: {} cores, load average {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    let want = |s: &str| o.only.as_deref().is_none_or(|x| x == s);
    if want("norm") {
        section_norm(&o);
    }
    if want("mem") {
        section_mem(&o);
    }
    if want("expect") {
        section_expect(&o);
    }
    if want("wait") {
        section_wait(&o);
    }
}
