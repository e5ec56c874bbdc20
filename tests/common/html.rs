//! report.html in a real headless Chromium (Debian's `chromium`, installed by
//! scripts/setup.sh): the page loads without a script error and without fetching anything,
//! a failed condition is on the first screen, the timeline is drawn, the serial log's filter
//! filters, nothing overflows a phone's width, and it prints. Screenshots (desktop, phone)
//! and the PDF are kept in target/test-artifacts/html/NAME/.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// What the probe script measured in the loaded page.
#[derive(Debug)]
pub struct Seen {
    pub probe: Value,
    pub artifacts: PathBuf,
}

/// What a page must show.
pub struct Expect<'a> {
    /// A condition that failed: its box must be on the first screen (1280×800).
    pub failed: Option<&'a str>,
    /// Boot stages drawn on the timeline, at least.
    pub stages: usize,
    /// Conditions drawn on the timeline (a live run's; a replay's have no time on its axis).
    pub bars: bool,
}

/// Runs before the page's own script: records script errors.
const PROBE_HEAD: &str = "<script>window.__errors=[];window.addEventListener('error',function(e){window.__errors.push(String(e.message||e));});</script>";

/// Runs after the page's own script, once it has loaded: measures the page, tries the filter.
const PROBE_BODY: &str = r#"<script>window.addEventListener('load',function(){
var f=document.querySelector('#failures article');var r=f?f.getBoundingClientRect():null;
var lines=document.querySelectorAll('#serial-log .l').length;var input=document.getElementById('filter');var kept=null;
if(input&&lines){input.value='/^\\s*\\d+\\.\\d+ >/';input.dispatchEvent(new Event('input'));kept=document.querySelectorAll('#serial-log .l:not(.hidden)').length;input.value='';input.dispatchEvent(new Event('input'));}
var res={errors:window.__errors,innerWidth:innerWidth,innerHeight:innerHeight,scrollWidth:document.documentElement.scrollWidth,
failureId:f?f.id:null,failureTop:r?r.top:null,stages:document.querySelectorAll('.timeline .stage').length,
bars:document.querySelectorAll('.timeline .bar').length,lines:lines,kept:kept,
fetched:performance.getEntriesByType('resource').map(function(e){return e.name;})};
document.documentElement.setAttribute('data-probe',JSON.stringify(res));});</script>"#;

fn chromium() -> Command {
    let exe = ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|c| {
            Command::new(c)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        })
        .unwrap_or_else(|| {
            panic!("no chromium on PATH: run scripts/setup.sh (it installs Debian's chromium)")
        });
    let mut cmd = Command::new(exe);
    // Root in a container has no user namespace for the sandbox; the page is our own.
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--hide-scrollbars",
        "--no-first-run",
        "--virtual-time-budget=3000",
    ]);
    cmd
}

fn run(mut cmd: Command, what: &str) -> std::process::Output {
    // A profile of its own: two tests' Chromiums would otherwise meet in one session.
    let profile = tempfile::tempdir().unwrap();
    cmd.arg(format!("--user-data-dir={}", profile.path().display()));
    let child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start chromium for {what}: {e}"));
    // Read its output while it runs (a DOM dump is larger than a pipe holds); a watchdog
    // kills it if it hangs.
    let pid = child.id();
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watchdog = {
        let done = done.clone();
        std::thread::spawn(move || {
            let started = std::time::Instant::now();
            while !done.load(std::sync::atomic::Ordering::SeqCst) {
                if started.elapsed() > Duration::from_secs(120) {
                    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
                    return true;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            false
        })
    };
    let out = child.wait_with_output().unwrap();
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    assert!(
        !watchdog.join().unwrap(),
        "chromium did not finish {what} in 120 s"
    );
    assert!(
        out.status.success(),
        "chromium failed for {what}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Load `dir/report.html` in Chromium at a window size; the probe's measurements.
fn probe(page: &Path, width: u32, height: u32) -> Value {
    let mut cmd = chromium();
    cmd.arg(format!("--window-size={width},{height}"))
        .arg("--dump-dom")
        .arg(format!("file://{}", page.display()));
    let out = run(cmd, "--dump-dom");
    let dom = String::from_utf8_lossy(&out.stdout);
    let start = dom
        .find("data-probe=\"")
        .unwrap_or_else(|| panic!("the probe did not run: the page did not load\n{dom:.2000}"))
        + "data-probe=\"".len();
    let end = start + dom[start..].find('"').unwrap();
    let json = dom[start..end]
        .replace("&quot;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&");
    serde_json::from_str(&json).unwrap_or_else(|e| panic!("probe output {json}: {e}"))
}

/// Check `dir/report.html` in Chromium and keep screenshots under `name`.
pub fn check(dir: &Path, name: &str, expect: Expect<'_>) -> Seen {
    let page = dir.join("report.html");
    let html = std::fs::read_to_string(&page).unwrap_or_else(|e| panic!("{}: {e}", page.display()));
    let artifacts = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target/test-artifacts/html")
        .join(name);
    std::fs::create_dir_all(&artifacts).unwrap();
    // The page with the probe added: the report's own markup and script, measured.
    let probed = artifacts.join("probed.html");
    let with_probe = html
        .replacen("<head>", &format!("<head>{PROBE_HEAD}"), 1)
        .replacen("</body>", &format!("{PROBE_BODY}</body>"), 1);
    std::fs::write(&probed, with_probe).unwrap();

    let desktop = probe(&probed, 1280, 800);
    assert_eq!(
        desktop["errors"],
        serde_json::json!([]),
        "script errors: {desktop}"
    );
    assert_eq!(
        desktop["fetched"],
        serde_json::json!([]),
        "the page fetched: {desktop}"
    );
    if let Some(id) = expect.failed {
        assert_eq!(
            desktop["failureId"],
            format!("f-{id}"),
            "first failure: {desktop}"
        );
        let top = desktop["failureTop"].as_f64().unwrap();
        let screen = desktop["innerHeight"].as_f64().unwrap();
        assert!(
            top + 40.0 < screen,
            "the failure starts at {top}px, below the first screen ({screen}px)"
        );
    }
    let stages = desktop["stages"].as_u64().unwrap() as usize;
    assert!(stages >= expect.stages, "timeline stages drawn: {desktop}");
    let bars = desktop["bars"].as_u64().unwrap();
    assert_eq!(bars > 0, expect.bars, "condition bars: {desktop}");
    if desktop["lines"].as_u64().unwrap_or(0) > 0 {
        let kept = desktop["kept"].as_u64().unwrap();
        let lines = desktop["lines"].as_u64().unwrap();
        assert!(kept < lines, "the filter kept every line: {desktop}");
    }
    let phone = probe(&probed, 390, 844);
    assert_eq!(phone["errors"], serde_json::json!([]), "{phone}");
    let (scroll, width) = (
        phone["scrollWidth"].as_f64().unwrap(),
        phone["innerWidth"].as_f64().unwrap(),
    );
    assert!(
        scroll <= width + 1.0,
        "the page is {scroll}px wide on a {width}px phone screen"
    );

    for (file, size) in [("desktop.png", "1280,800"), ("phone.png", "390,844")] {
        let mut cmd = chromium();
        cmd.arg(format!("--window-size={size}"))
            .arg(format!("--screenshot={}", artifacts.join(file).display()))
            .arg(format!("file://{}", page.display()));
        run(cmd, file);
        let len = std::fs::metadata(artifacts.join(file)).map_or(0, |m| m.len());
        assert!(len > 1000, "{file}: {len} bytes");
    }
    let mut cmd = chromium();
    cmd.arg("--no-pdf-header-footer")
        .arg(format!(
            "--print-to-pdf={}",
            artifacts.join("print.pdf").display()
        ))
        .arg(format!("file://{}", page.display()));
    run(cmd, "print");
    let pdf = std::fs::read(artifacts.join("print.pdf")).unwrap();
    assert!(pdf.starts_with(b"%PDF") && pdf.len() > 1000, "print.pdf");
    Seen {
        probe: desktop,
        artifacts,
    }
}
