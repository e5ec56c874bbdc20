//! From parsed command line to exit code: load the profile, prepare the report folder, wire the
//! reporters, run the engine, print the machine output. Errors map to SPEC's exit codes.

use crate::cli::{BootArgs, CheckPhase, Cli, Command, CommonArgs, Format};
use crate::engine::events::{Fanout, Reporter};
use crate::engine::{Engine, RunOptions, Scope};
use crate::exit_codes;
use crate::model::Phase;
use crate::report::{folder::FolderReporter, github::GithubReporter, progress::ProgressReporter};
use crate::signal::{self, Cancel};
use std::path::{Path, PathBuf};

pub fn main(cli: Cli) -> i32 {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("bootaudit: cannot start the async runtime: {e}");
            return exit_codes::HARNESS;
        }
    };
    // First of all: a signal from here on gives the partial report and exit 130 (one in the
    // reaping or the profile loading is seen as soon as the run starts).
    // Only the commands that read the flag listen; `list`, `compare` and `clean` end at
    // once on Ctrl-C, as any command-line tool does.
    let cancel = Cancel::new();
    if matches!(
        cli.command,
        Command::Run(_) | Command::Check { .. } | Command::Replay(_)
    ) {
        let _in_runtime = runtime.enter();
        signal::install(cancel.clone());
    }
    if !matches!(
        cli.command,
        Command::Clean | Command::List(_) | Command::Compare(_)
    ) {
        for reaped in crate::cleanup::reap_stale() {
            eprintln!("bootaudit: {reaped}");
        }
    }
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        runtime.block_on(async move {
            match cli.command {
                Command::Run(a) => {
                    let target = Target::new(a.image.iso, a.image.flake, a.boot);
                    audit(a.common, Scope::Full, target, cancel).await
                }
                Command::Check { phase } => match phase {
                    CheckPhase::Host(a) => {
                        let target = Target::new(None, a.flake, BootArgs::default());
                        audit(a.common, Scope::Phase(Phase::Host), target, cancel).await
                    }
                    CheckPhase::Virt(a) => {
                        let boot = BootArgs {
                            accel: a.accel,
                            ..BootArgs::default()
                        };
                        audit(
                            a.common,
                            Scope::Phase(Phase::Virt),
                            Target::new(None, None, boot),
                            cancel,
                        )
                        .await
                    }
                    CheckPhase::Iso(a) => {
                        let target = Target::new(a.image.iso, a.image.flake, BootArgs::default());
                        audit(a.common, Scope::Phase(Phase::Iso), target, cancel).await
                    }
                },
                Command::Replay(a) => crate::replay::run(a, cancel).await,
                Command::List(a) => crate::list::run(a),
                Command::Compare(a) => crate::compare::run(a),
                Command::Clean => clean(),
            }
        })
    }));
    // Dropping the runtime here ends the console tasks; QEMU guards were dropped on unwinding.
    drop(runtime);
    result.unwrap_or_else(|_| {
        eprintln!("bootaudit: internal error (a bug): see the message above");
        exit_codes::HARNESS
    })
}

/// `bootaudit clean`: reap dead runs' leftovers and say what still runs.
fn clean() -> i32 {
    let reaped = crate::cleanup::reap_stale();
    let mut code = exit_codes::PASS;
    for r in &reaped {
        println!("{r}");
        if !r.problems.is_empty() {
            code = exit_codes::HARNESS;
        }
    }
    let me = std::process::id() as i32;
    for (pid, started, folders) in crate::cleanup::live_runs() {
        if pid != me {
            println!(
                "run pid {pid} (started {started}) is still running: left alone ({} folder(s))",
                folders.len()
            );
        }
    }
    if reaped.is_empty() {
        println!(
            "nothing to clean (records in {})",
            crate::cleanup::state_dir().join("runs").display()
        );
    }
    code
}

/// audit-reports/<UTC time>-<name>/, with audit-reports/latest pointing at it. Claimed by
/// creating it: a run started in the same second (a parallel audit) takes `…-2`, `…-3`.
fn default_out_dir(name: &str) -> std::io::Result<PathBuf> {
    let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%SZ");
    let safe: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    let base = PathBuf::from("audit-reports");
    std::fs::create_dir_all(&base)?;
    for n in 1.. {
        let dir = match n {
            1 => base.join(format!("{stamp}-{safe}")),
            n => base.join(format!("{stamp}-{safe}-{n}")),
        };
        match std::fs::create_dir(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && n < 1000 => continue,
            Err(e) => return Err(e),
        }
    }
    unreachable!("the loop returns")
}

fn point_latest(out: &Path) {
    let Some(parent) = out.parent() else { return };
    let Some(name) = out.file_name() else { return };
    let link = parent.join("latest");
    // Made aside and renamed over the old link: parallel runs never see it missing, and the
    // last to finish its rename wins.
    let aside = parent.join(format!(".latest-{}", std::process::id()));
    let _ = std::fs::remove_file(&aside);
    let made =
        std::os::unix::fs::symlink(name, &aside).and_then(|_| std::fs::rename(&aside, &link));
    if let Err(e) = made {
        let _ = std::fs::remove_file(&aside);
        eprintln!(
            "bootaudit: warning: could not update {}: {e}",
            link.display()
        );
    }
}

/// Load the profile or explain why not (exit 2).
pub fn load_config(profile: &str, vars: &[(String, String)]) -> Result<crate::config::Config, i32> {
    crate::config::load_with_vars(profile, vars).map_err(|errors| {
        for e in &errors.0 {
            eprintln!("bootaudit: {e}");
        }
        if errors.0.len() > 1 {
            eprintln!("bootaudit: {} configuration errors", errors.0.len());
        }
        exit_codes::USAGE
    })
}

/// The report folder and its reporters, with the flag that turns true if the report could not
/// be written whole.
pub struct Reporting {
    pub dir: PathBuf,
    pub reporters: Vec<Box<dyn Reporter + Send>>,
    pub incomplete: crate::report::folder::Incomplete,
}

/// Create the report folder with its reporters, or fail with exit 3.
pub fn reporters(
    out: Option<PathBuf>,
    default_name: &str,
    console_files: bool,
    common: &CommonArgs,
    is_run: bool,
) -> Result<Reporting, i32> {
    // `latest` is the newest run's, so `bootaudit replay audit-reports/latest` always replays
    // a boot: checks and replays do not move it.
    let links_latest = out.is_none() && is_run;
    let dir = match out {
        Some(d) => d,
        None => default_out_dir(default_name).map_err(|e| {
            eprintln!(
                "bootaudit: cannot create a report folder in audit-reports/: {e} — choose one with --out"
            );
            exit_codes::HARNESS
        })?,
    };
    let folder = FolderReporter::create(&dir, console_files).map_err(|e| {
        // The folder given is wrong (a symlink, someone else's files): the user's to fix.
        let (code, fix) = match e.kind() {
            std::io::ErrorKind::InvalidInput => (exit_codes::USAGE, ""),
            _ => (exit_codes::HARNESS, " — choose another with --out"),
        };
        eprintln!(
            "bootaudit: cannot use the report folder {}: {e}{fix}",
            dir.display()
        );
        code
    })?;
    if links_latest {
        point_latest(&dir);
    }
    let incomplete = folder.incomplete();
    let mut all: Vec<Box<dyn Reporter + Send>> =
        vec![Box::new(ProgressReporter::new()), Box::new(folder)];
    if let Some(github) = GithubReporter::from_env(common.github, common.format == Format::Json) {
        all.push(Box::new(github));
    }
    Ok(Reporting {
        dir,
        reporters: all,
        incomplete,
    })
}

/// Print the machine output and give the exit code: the verdict's, or 3 when the report could
/// not be written whole (a full disk) — what was written stays valid.
pub fn finish(report: &crate::model::Report, reporting_failed: bool, format: Format) -> i32 {
    if format == Format::Json {
        print_stdout(&serde_json::to_string_pretty(report).expect("report serialises"));
    }
    match (reporting_failed, report.verdict) {
        (true, v) if v != crate::model::Verdict::Interrupted => {
            eprintln!(
                "bootaudit: the report folder is incomplete (see the warnings above: a full \
                 disk?) — the verdict was {}, but the run ends as an error of the host (exit 3)",
                v.as_str()
            );
            exit_codes::HARNESS
        }
        _ => report.verdict.exit_code(),
    }
}

/// What a command audits and how it boots, from the flags that command takes.
struct Target {
    iso: Option<PathBuf>,
    flake: Option<String>,
    boot: BootArgs,
}

impl Target {
    fn new(iso: Option<PathBuf>, flake: Option<String>, boot: BootArgs) -> Target {
        Target { iso, flake, boot }
    }
}

async fn audit(common: CommonArgs, scope: Scope, target: Target, cancel: Cancel) -> i32 {
    let Target { iso, flake, boot } = target;
    let config = match load_config(&common.profile, &common.vars) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let name = match (&scope, &iso) {
        (Scope::Phase(p), _) if *p != Phase::Iso => format!("check-{p}"),
        (_, Some(p)) => p
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "image".into()),
        (_, None) => flake.clone().unwrap_or_else(|| "image".into()),
    };
    if let Err(e) = crate::engine::validate(&config, &common.only, &common.skip) {
        eprintln!("bootaudit: {e}");
        return exit_codes::USAGE;
    }
    if scope == Scope::Full {
        if let Err(e) = config.contract.check_secrets() {
            eprintln!("bootaudit: {}: {e}", config.profile_source.name);
            return exit_codes::USAGE;
        }
    }
    let Reporting {
        dir: out_dir,
        reporters,
        incomplete,
    } = match reporters(
        common.out.clone(),
        &name,
        true,
        &common,
        scope == Scope::Full,
    ) {
        Ok(r) => r,
        Err(code) => return code,
    };
    let opts = RunOptions {
        scope,
        accel: boot.accel,
        timeout_scale: boot.timeout_scale,
        only: common.only.clone(),
        skip: common.skip.clone(),
        flake,
        iso,
        out_dir,
    };
    let engine = match Engine::new(config, opts, Fanout::new(reporters), cancel.clone()) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("bootaudit: {e}");
            return exit_codes::USAGE;
        }
    };
    let report = engine.run().await;
    finish(
        &report,
        incomplete.load(std::sync::atomic::Ordering::SeqCst),
        common.format,
    )
}

/// Machine output on stdout. A reader that went away (`| head`) is not an error of ours: the
/// report folder is written and the verdict's exit code stands.
pub fn print_stdout(text: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{text}").and_then(|_| out.flush());
}
