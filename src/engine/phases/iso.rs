//! ISO phase: find the image, check it is a bootable ISO 9660 with an El Torito catalog, and
//! read its boot configs (without mounting) to see which entry the profile boots and whether
//! the kernel will talk on the profile's console port.

use crate::config::contract::{EntryChoice, IsoConsolePolicy};
use crate::config::profile::Firmware;
use crate::engine::Engine;
use crate::model::{IsoInfo, Outcome};
use bootaudit_iso::{
    boot_configs, console, BootConfigScan, BootEntry, ConfigKind, ConsoleStatus, IsoImage,
};
use sha2::{Digest, Sha256};
use std::io::Read;
use std::path::{Path, PathBuf};

/// Flakes and the `nix` command are experimental features up to nix 2.19 (Debian 12 ships
/// nix 2.8), and enabled by default later: passing them costs nothing on a new nix and lets an
/// old one build without its users editing nix.conf.
pub const NIX_FEATURES: [&str; 2] = ["--extra-experimental-features", "nix-command flakes"];

/// How long a `nix build` may take (a NixOS ISO built without a binary cache takes long).
const NIX_BUILD_LIMIT: std::time::Duration = std::time::Duration::from_secs(3600);

pub fn build(engine: &mut Engine) -> Outcome {
    let Some(flake) = engine.opts.flake.clone() else {
        return Outcome::not_applicable("no --flake: the ISO is given with --iso");
    };
    // `--json` names the output paths on every nix since 2.4 (`--print-out-paths` came with
    // 2.9); `--no-link` leaves no `result` symlink in the caller's folder.
    let args: Vec<String> = NIX_FEATURES
        .iter()
        .map(|s| s.to_string())
        .chain([
            "build".into(),
            flake.clone(),
            "--no-link".into(),
            "--json".into(),
        ])
        .collect();
    let r = match run_nix(&args, &engine.cancel, NIX_BUILD_LIMIT) {
        Ok(r) => r,
        Err(e) => return Outcome::fail(format!("cannot run nix build: {e}"), ""),
    };
    let out = String::from_utf8_lossy(&r.stdout);
    let err = String::from_utf8_lossy(&r.stderr);
    match r.exit {
        _ if r.stopped && engine.cancel.is_cancelled() => Outcome::skip("interrupted"),
        _ if r.stopped => Outcome::fail(
            format!(
                "nix build {flake} did not finish within {} s",
                NIX_BUILD_LIMIT.as_secs()
            ),
            err.trim().to_string(),
        ),
        None => Outcome::fail(
            format!("nix build {flake} ended without an exit status"),
            err.trim().to_string(),
        ),
        Some(s) if !s.success() => Outcome::fail(
            format!("nix build {flake} failed: {}", nix_error(&err)),
            err.trim().to_string(),
        ),
        Some(_) => {
            let paths = out_paths(&out);
            let evidence = paths.join("\n");
            let isos: Vec<PathBuf> = paths
                .iter()
                .flat_map(|p| find_isos(Path::new(p)).unwrap_or_default())
                .collect();
            match isos.as_slice() {
                [one] => {
                    engine.opts.iso = Some(one.clone());
                    Outcome::pass(
                        format!("nix build {flake} produced {}", one.display()),
                        evidence,
                    )
                }
                [] => Outcome::fail(
                    format!(
                        "nix build {flake} produced no .iso (outputs: {}) — build an attribute whose output holds the ISO, e.g. a NixOS config's config.system.build.isoImage",
                        if paths.is_empty() { "none".to_string() } else { paths.join(", ") }
                    ),
                    out.trim().to_string(),
                ),
                many => Outcome::fail(
                    format!(
                        "nix build {flake} produced {} ISOs: {} — build a single ISO attribute",
                        many.len(),
                        list(many)
                    ),
                    evidence,
                ),
            }
        }
    }
}

/// What a `nix` command did.
struct NixRun {
    exit: Option<std::process::ExitStatus>,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    /// It was asked to stop: the run was interrupted or the limit passed.
    stopped: bool,
}

/// `nix ARGS` in a process group of its own. An interrupted run (or the limit) stops it with
/// SIGINT, so nix ends its builders (they run in sessions of their own, which a kill of nix's
/// group would leave behind), and kills it 10 s later; if bootaudit dies, nix gets SIGTERM.
fn run_nix(
    args: &[String],
    cancel: &crate::signal::Cancel,
    limit: std::time::Duration,
) -> std::io::Result<NixRun> {
    use std::os::unix::process::CommandExt;
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};
    let mut cmd = Command::new("nix");
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let parent = std::process::id() as libc::pid_t;
    // SAFETY: only async-signal-safe calls (prctl, getppid, _exit) between fork and exec. The
    // calling thread waits for nix below, so it outlives it (PDEATHSIG follows the thread).
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGTERM as libc::c_ulong,
                0,
                0,
                0,
            ) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            if libc::getppid() != parent {
                libc::_exit(1);
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn()?;
    let pid = child.id() as libc::pid_t;
    crate::cleanup::track_process(pid);
    fn drain(r: Option<impl Read + Send + 'static>) -> std::thread::JoinHandle<Vec<u8>> {
        std::thread::spawn(move || {
            let mut b = Vec::new();
            if let Some(mut r) = r {
                let _ = r.read_to_end(&mut b);
            }
            b
        })
    }
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());
    let started = Instant::now();
    let mut stop_sent: Option<Instant> = None;
    let exit = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) => {}
            // Not waitable: the group is killed below all the same.
            Err(_) => break None,
        }
        match stop_sent {
            None if cancel.is_cancelled() || started.elapsed() > limit => {
                // SAFETY: kill(2) of the child we spawned.
                unsafe { libc::kill(pid, libc::SIGINT) };
                stop_sent = Some(Instant::now());
            }
            Some(at) if at.elapsed() > Duration::from_secs(10) => {
                let _ = child.kill();
                break child.wait().ok();
            }
            _ => {}
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    // Whatever nix left in its group (its builders have sessions of their own, ended by nix).
    // SAFETY: kill(2) of the process group we created.
    unsafe { libc::kill(-pid, libc::SIGKILL) };
    crate::cleanup::untrack_process(pid);
    Ok(NixRun {
        exit,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
        stopped: stop_sent.is_some(),
    })
}

/// The output paths `nix build --json` printed: `[{"drvPath": …, "outputs": {"out": PATH}}]`;
/// lines that are paths, if its stdout is not that JSON (a wrapper's own printing).
fn out_paths(stdout: &str) -> Vec<String> {
    match serde_json::from_str::<serde_json::Value>(stdout.trim()) {
        Ok(serde_json::Value::Array(built)) => built
            .iter()
            .filter_map(|b| b.get("outputs")?.as_object())
            .flat_map(|outputs| outputs.values())
            .filter_map(|p| p.as_str().map(str::to_string))
            .collect(),
        _ => stdout
            .lines()
            .map(str::trim)
            .filter(|l| l.starts_with('/'))
            .map(str::to_string)
            .collect(),
    }
}

/// nix's own words for a failed build, on one line: its first `error:` and what follows (the
/// derivation, the exit code, the builder's last log lines), without the pointer to
/// `nix log`; with a hint where the cause is a known setup problem.
fn nix_error(stderr: &str) -> String {
    let lines: Vec<String> = stderr.lines().map(strip_escapes).collect();
    let first = lines
        .iter()
        .position(|l| l.trim_start().starts_with("error:"));
    let mut text = match first {
        Some(i) => lines[i..]
            .iter()
            .map(|l| l.trim())
            .take_while(|l| !l.starts_with("For full logs"))
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join(" "),
        None => lines
            .iter()
            .rev()
            .map(|l| l.trim())
            .find(|l| !l.is_empty())
            .unwrap_or("nix printed no error")
            .to_string(),
    };
    if let Some(rest) = text.strip_prefix("error:") {
        text = rest.trim_start().to_string();
    }
    const MAX: usize = 600;
    if text.len() > MAX {
        let mut cut = MAX;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        text.push_str(" …");
    }
    if stderr.contains("build-users-group") && stderr.contains("does not exist") {
        text.push_str(" — nix builds as root without its daemon here: start nix-daemon (Debian: apt-get install nix-setup-systemd), or set `build-users-group =` in /etc/nix/nix.conf");
    }
    text
}

/// `line` without terminal escape sequences (nix colours its errors on a terminal).
fn strip_escapes(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            if chars.peek() == Some(&'[') {
                chars.next();
                for c in chars.by_ref() {
                    if c.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
            continue;
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod nix_tests {
    use super::*;

    #[test]
    fn out_paths_come_from_nix_builds_json() {
        let json = r#"[{"drvPath":"/nix/store/a-x.drv","outputs":{"out":"/nix/store/b-x","dev":"/nix/store/c-x-dev"}}]"#;
        let mut paths = out_paths(json);
        paths.sort();
        assert_eq!(
            paths,
            ["/nix/store/b-x", "/nix/store/c-x-dev"],
            "every output"
        );
        assert_eq!(out_paths("/nix/store/b-x\n"), ["/nix/store/b-x"]);
        assert!(out_paths("").is_empty());
    }

    #[test]
    fn nix_error_is_the_error_block_on_one_line() {
        // nix 2.8's words for a builder that exits 1.
        let stderr = "building '/nix/store/8x-broken.drv'...\n\
            error: builder for '/nix/store/8x-broken.drv' failed with exit code 1;\n\
            \x20      last 2 log lines:\n\
            \x20      > building\n\
            \x20      > \x1b[31mit fails\x1b[0m\n\
            \x20      For full logs, run 'nix log /nix/store/8x-broken.drv'.\n";
        assert_eq!(
            nix_error(stderr),
            "builder for '/nix/store/8x-broken.drv' failed with exit code 1; last 2 log lines: > building > it fails"
        );
        assert_eq!(nix_error("warning: x\nsomething odd\n"), "something odd");
        let m = nix_error(
            "error: the group 'nixbld' specified in 'build-users-group' does not exist\n",
        );
        assert!(
            m.contains("nix-daemon") && m.contains("build-users-group ="),
            "{m}"
        );
    }
}

fn list(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// `.iso` files in `dir` and, like nix's result/, in `dir/iso`.
fn find_isos(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    if dir.is_file() {
        return Ok(vec![dir.to_path_buf()]);
    }
    let mut found = Vec::new();
    for d in [dir.to_path_buf(), dir.join("iso")] {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.extension().is_some_and(|x| x.eq_ignore_ascii_case("iso")) && p.is_file() {
                found.push(p);
            }
        }
    }
    found.sort();
    Ok(found)
}

fn sha256(path: &Path) -> std::io::Result<(String, u64)> {
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        total += n as u64;
        h.update(&buf[..n]);
    }
    let digest = h.finalize();
    Ok((digest.iter().map(|b| format!("{b:02x}")).collect(), total))
}

pub fn resolve(engine: &mut Engine) -> Outcome {
    let Some(arg) = engine.opts.iso.clone() else {
        return Outcome::fail("no image given — pass --iso PATH (an .iso file or a directory holding one), or --flake REF", "");
    };
    engine.facts.iso_info = Some(IsoInfo {
        path: arg.display().to_string(),
        sha256: None,
        bytes: None,
    });
    let meta = match std::fs::metadata(&arg) {
        Ok(m) => m,
        Err(e) => {
            return Outcome::fail(
                format!("{}: {e} — check the path given to --iso", arg.display()),
                "",
            )
        }
    };
    let file = if meta.is_dir() {
        let isos = match find_isos(&arg) {
            Ok(v) => v,
            Err(e) => return Outcome::fail(format!("cannot list {}: {e}", arg.display()), ""),
        };
        match isos.as_slice() {
            [one] => one.clone(),
            [] => {
                let seen: Vec<String> = std::fs::read_dir(&arg)
                    .map(|rd| {
                        rd.flatten()
                            .map(|e| e.file_name().to_string_lossy().into_owned())
                            .collect()
                    })
                    .unwrap_or_default();
                return Outcome::fail(
                    format!(
                        "{} holds no .iso file (it has: {}) — point --iso at the ISO or at nix's result/iso",
                        arg.display(),
                        if seen.is_empty() { "nothing".to_string() } else { seen.join(", ") }
                    ),
                    "",
                );
            }
            many => {
                return Outcome::fail(
                    format!(
                        "{} holds {} ISOs: {} — name one with --iso FILE",
                        arg.display(),
                        many.len(),
                        list(many)
                    ),
                    list(many),
                )
            }
        }
    } else {
        arg.clone()
    };
    // Readable and sized now; the digest (seconds for a real installer ISO) is computed in
    // the background while the boot runs, and lands in report.json.
    let readable = std::fs::File::open(&file).and_then(|mut f| {
        let mut first = [0u8; 2048];
        let _ = f.read(&mut first)?; // any bytes: readable
        f.metadata()
    });
    match readable {
        Ok(meta) => {
            let bytes = meta.len();
            engine.facts.iso_path = Some(file.clone());
            engine.facts.iso_info = Some(IsoInfo {
                path: file.display().to_string(),
                sha256: None,
                bytes: Some(bytes),
            });
            let path = file.clone();
            engine.facts.iso_sha256 = Some(crate::engine::in_background(move || {
                sha256(&path).map(|(digest, _)| digest)
            }));
            Outcome::pass(
                format!("{} ({} bytes)", file.display(), bytes),
                file.display().to_string(),
            )
        }
        Err(e) => Outcome::fail(
            format!(
                "cannot read {}: {e} — check its permissions",
                file.display()
            ),
            "",
        ),
    }
}

fn open_image(engine: &Engine) -> Result<IsoImage, Outcome> {
    let Some(path) = engine.facts.iso_path.clone() else {
        return Err(Outcome::error(
            "no resolved ISO path (iso.resolve did not run)",
        ));
    };
    IsoImage::open(&path).map_err(|e| Outcome::fail(format!("{}: {e}", path.display()), ""))
}

pub fn bootable(engine: &mut Engine) -> Outcome {
    let image = match open_image(engine) {
        Ok(i) => i,
        Err(o) => return o,
    };
    match image.boot_catalog() {
        Ok(Some(cat)) => {
            let entries: Vec<String> = cat
                .entries
                .iter()
                .map(|e| {
                    // For people: "BIOS: isolinux/isolinux.bin (no emulation)".
                    format!(
                        "{}: {} ({}{})",
                        e.platform,
                        e.image_path
                            .clone()
                            .unwrap_or_else(|| format!("a boot image at sector {}", e.load_rba)),
                        e.media,
                        if e.bootable { "" } else { ", not bootable" }
                    )
                })
                .collect();
            let kinds = match (cat.has_bios(), cat.has_uefi()) {
                (true, true) => "BIOS and UEFI",
                (true, false) => "BIOS only",
                (false, true) => "UEFI only",
                (false, false) => "no BIOS or UEFI",
            };
            if !cat.has_bios() && !cat.has_uefi() {
                return Outcome::fail(
                    format!(
                        "volume `{}`: the El Torito catalog has no BIOS or UEFI boot entry",
                        image.volume_id()
                    ),
                    entries.join(", "),
                );
            }
            let o = Outcome::pass(
                format!(
                    "ISO 9660 volume `{}` with El Torito boot entries: {kinds}",
                    image.volume_id()
                ),
                entries.join(", "),
            );
            let firmware = engine.config.profile.machine.firmware;
            match firmware {
                Firmware::Bios if !cat.has_bios() => {
                    return Outcome::fail(
                        format!(
                            "volume `{}` has no BIOS boot entry (UEFI only), and the profile boots with SeaBIOS — set `machine: firmware: uefi`",
                            image.volume_id()
                        ),
                        entries.join(", "),
                    )
                }
                Firmware::Uefi if !cat.has_uefi() => {
                    return Outcome::fail(
                        format!(
                            "volume `{}` has no UEFI boot entry (BIOS only), and the profile boots with UEFI — set `machine: firmware: bios`, or add an EFI boot image (xorriso -eltorito-alt-boot -e …)",
                            image.volume_id()
                        ),
                        entries.join(", "),
                    )
                }
                _ => {}
            }
            o
        }
        Ok(None) => Outcome::fail(
            format!(
                "volume `{}`: {}",
                image.volume_id(),
                bootaudit_iso::NO_BOOT_CATALOG
            ),
            "",
        ),
        Err(e) => Outcome::fail(format!("boot catalog: {e}"), ""),
    }
}

/// The entry a boot will start, found in the configs the firmware reads.
#[derive(Debug, Clone)]
pub struct ChosenEntry {
    pub entry: BootEntry,
    pub kind: ConfigKind,
    /// It is what the loader boots without a key press.
    pub is_default: bool,
    /// Where the loader's menu starts: the default entry's position.
    pub default_path: Vec<usize>,
    /// The config file the default entry is in (positions count within one file).
    pub default_config: Option<String>,
}

/// The configs the firmware's loader reads, main config first: ISOLINUX (else GRUB for BIOS)
/// under SeaBIOS; GRUB's EFI config, then systemd-boot, under OVMF. `loopback.cfg` is for
/// loop-mounting the ISO from another GRUB: no firmware reads it.
fn loader_configs(scan: &BootConfigScan, firmware: Firmware) -> Vec<&bootaudit_iso::BootConfig> {
    let lower = |c: &&bootaudit_iso::BootConfig| c.path.to_lowercase();
    let grub = |c: &&bootaudit_iso::BootConfig| {
        c.kind == ConfigKind::Grub && !lower(c).ends_with("loopback.cfg")
    };
    let efi = |c: &&bootaudit_iso::BootConfig| lower(c).starts_with("efi/");
    let mut picked: Vec<&bootaudit_iso::BootConfig> = match firmware {
        Firmware::Bios => {
            // The loader reads isolinux.cfg (syslinux.cfg) first; other *.cfg are its includes.
            let mut sys: Vec<_> = scan
                .configs
                .iter()
                .filter(|c| c.kind == ConfigKind::Syslinux)
                .collect();
            let named_main = |c: &&bootaudit_iso::BootConfig| {
                let l = lower(c);
                !(l.ends_with("/isolinux.cfg") || l.ends_with("/syslinux.cfg"))
            };
            sys.sort_by_key(named_main);
            if sys.is_empty() {
                scan.configs.iter().filter(|c| grub(c) && !efi(c)).collect()
            } else {
                sys
            }
        }
        Firmware::Uefi => {
            let mut v: Vec<_> = scan.configs.iter().filter(|c| grub(c) && efi(c)).collect();
            v.extend(scan.configs.iter().filter(|c| grub(c) && !efi(c)));
            v.extend(
                scan.configs
                    .iter()
                    .filter(|c| c.kind == ConfigKind::SystemdBoot),
            );
            v
        }
    };
    if picked.is_empty() {
        picked = scan.configs.iter().collect();
    }
    picked
}

/// The entry the profile boots: its default, or the first whose label (or name) matches.
/// Pure: tested on parsed configs.
pub fn choose_entry(
    scan: &BootConfigScan,
    firmware: Firmware,
    choice: &EntryChoice,
) -> Result<ChosenEntry, String> {
    let configs = loader_configs(scan, firmware);
    let entries: Vec<(&BootEntry, ConfigKind)> = configs
        .iter()
        .flat_map(|c| c.entries.iter().map(move |e| (e, c.kind)))
        .collect();
    // The main config: the first in the loader's order that boots something or names a
    // default (an EFI grub.cfg that only `configfile`s the real one does neither).
    let main = configs
        .iter()
        .find(|c| !c.entries.is_empty() || c.default.is_some())
        .or(configs.first());
    // The default: the first of the loader's configs whose `default` names one of its
    // entries (Debian's menus name it in an included file with `MENU DEFAULT`), else the main
    // config's first entry.
    let named_default = configs.iter().find_map(|c| {
        let d = c.default.as_deref()?;
        let in_config = |e: &&BootEntry| e.config == c.path;
        entries
            .iter()
            .find(|(e, _)| {
                e.name.eq_ignore_ascii_case(d) || (c.kind == ConfigKind::Grub && e.label == d)
            })
            .or_else(|| {
                let n = d.parse::<usize>().ok()?;
                entries
                    .iter()
                    .find(|(e, _)| in_config(e) && e.menu_path == [n])
            })
    });
    let default = named_default
        .or_else(|| main.and_then(|c| entries.iter().find(|(e, _)| e.config == c.path)))
        .or(entries.first())
        .map(|(e, _)| (*e).clone());
    let loader = match firmware {
        Firmware::Bios => "BIOS",
        Firmware::Uefi => "UEFI",
    };
    let shown = |es: &[(&BootEntry, ConfigKind)]| {
        es.iter()
            .map(|(e, _)| format!("'{}'", e.label))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let (entry, kind) = match choice {
        EntryChoice::Default => {
            let e = default.clone().ok_or_else(|| {
                format!("the image's {loader} boot configs have no Linux entry to boot")
            })?;
            let kind = entries
                .iter()
                .find(|(x, _)| **x == e)
                .map_or(ConfigKind::Syslinux, |(_, k)| *k);
            (e, kind)
        }
        EntryChoice::Label(re) => entries
            .iter()
            .find(|(e, _)| re.is_match(&e.label) || re.is_match(&e.name))
            .map(|(e, k)| ((*e).clone(), *k))
            .ok_or_else(|| {
                format!(
                    "no {loader} boot entry's label matches /{}/ (entries: {}) — fix `boot.entry` in the profile",
                    re.as_str(),
                    if entries.is_empty() { "none".to_string() } else { shown(&entries) }
                )
            })?,
    };
    let is_default = default.as_ref() == Some(&entry);
    Ok(ChosenEntry {
        entry,
        kind,
        is_default,
        default_path: default
            .as_ref()
            .map(|d| d.menu_path.clone())
            .unwrap_or_default(),
        default_config: default.map(|d| d.config),
    })
}

/// Scan the image's boot configs.
fn scan(engine: &Engine) -> Result<BootConfigScan, Outcome> {
    let image = open_image(engine)?;
    boot_configs(&image).map_err(|e| Outcome::fail(format!("cannot read boot configs: {e}"), ""))
}

/// The entry the boot starts: iso.console's choice, else made now (iso.console was skipped).
pub fn chosen_entry(engine: &mut Engine) -> Result<ChosenEntry, Outcome> {
    if let Some(c) = &engine.facts.boot_entry {
        return Ok(c.clone());
    }
    let scan = scan(engine)?;
    let c = choose_entry(
        &scan,
        engine.config.profile.machine.firmware,
        &engine.config.contract.boot.entry,
    )
    .map_err(|e| entry_not_found(engine, e))?;
    engine.facts.boot_entry = Some(c.clone());
    Ok(c)
}

/// No entry to boot: the image's fault when it has none, the profile's when its `boot.entry`
/// names none of them (a configuration error, not a verdict on the image).
fn entry_not_found(engine: &Engine, message: String) -> Outcome {
    match engine.config.contract.boot.entry {
        EntryChoice::Label(_) => Outcome::error(message),
        EntryChoice::Default => Outcome::fail(message, ""),
    }
}

pub fn console(engine: &mut Engine) -> Outcome {
    let scan = match scan(engine) {
        Ok(s) => s,
        Err(o) => return o,
    };
    let port = engine.config.contract.port.device();
    let policy = engine.config.contract.boot.iso_console;
    let chosen = choose_entry(
        &scan,
        engine.config.profile.machine.firmware,
        &engine.config.contract.boot.entry,
    );
    if let Ok(c) = &chosen {
        engine.facts.boot_entry = Some(c.clone());
    }
    let entries = scan.entries();
    let per_entry: Vec<String> = entries
        .iter()
        .map(|e| {
            let booted = match &chosen {
                Ok(c) if c.entry == *e => " [booted]",
                _ => "",
            };
            format!(
                "{}:{} '{}'{booted}: {}",
                e.config, e.cmdline_line, e.label, e.cmdline
            )
        })
        .collect();
    let evidence = per_entry.join("\n");
    let configs: Vec<&str> = scan.configs.iter().map(|c| c.path.as_str()).collect();
    let (judged, scope) = match policy {
        IsoConsolePolicy::EveryEntry => (entries.clone(), "kernel command lines".to_string()),
        IsoConsolePolicy::BootedEntry => match &chosen {
            Ok(c) => (
                vec![c.entry.clone()],
                format!("booted entry '{}'", c.entry.label),
            ),
            Err(e) => return Outcome::fail(e.clone(), evidence),
        },
    };
    let verdict = console::judge(&judged, &port);
    let mut outcome = match verdict.status {
        ConsoleStatus::Pass => Outcome::pass(
            match policy {
                IsoConsolePolicy::EveryEntry => format!(
                    "all {} kernel command lines in {} send the console to {port}",
                    verdict.checked,
                    configs.join(", ")
                ),
                IsoConsolePolicy::BootedEntry => {
                    format!("the {scope} sends the console to {port}")
                }
            },
            evidence,
        ),
        ConsoleStatus::Fail => Outcome::fail(
            match policy {
                IsoConsolePolicy::EveryEntry => format!(
                    "{} of {} boot entries do not send the console to {port}: {}",
                    verdict.failures.len(),
                    verdict.checked,
                    verdict.failures.iter().map(|f| f.to_string()).collect::<Vec<_>>().join("; ")
                ),
                IsoConsolePolicy::BootedEntry => format!(
                    "the {scope} does not send the console to {port}: {}",
                    verdict.failures.iter().map(|f| f.to_string()).collect::<Vec<_>>().join("; ")
                ),
            },
            evidence,
        ),
        ConsoleStatus::NoEntries => Outcome::fail(
            format!(
                "found no Linux boot entry in the image's boot configs ({}) — nothing shows the kernel will use {port}",
                if configs.is_empty() { "none found".to_string() } else { configs.join(", ") }
            ),
            scan.warnings.iter().map(|w| w.to_string()).collect::<Vec<_>>().join("\n"),
        ),
    };
    for w in &verdict.warnings {
        outcome = outcome.with_warning(w.to_string());
    }
    if policy == IsoConsolePolicy::BootedEntry {
        // The other entries' findings stay in the report, as warnings.
        let others: Vec<BootEntry> = entries
            .iter()
            .filter(|e| judged.first() != Some(*e))
            .cloned()
            .collect();
        let v = console::judge(&others, &port);
        for f in v.failures.iter().chain(&v.warnings) {
            outcome = outcome.with_warning(format!("not booted: {f}"));
        }
    }
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;
    use bootaudit_iso::{parse_config, BootConfig};

    fn config(kind: ConfigKind, path: &str, text: &str) -> BootConfig {
        let p = parse_config(kind, path, text);
        BootConfig {
            path: path.into(),
            kind,
            default: p.default,
            entries: p.entries,
            skipped: p.skipped,
        }
    }

    /// The stock NixOS installer's layout: the serial console is the second entry.
    fn installer() -> BootConfigScan {
        BootConfigScan {
            configs: vec![
                config(
                    ConfigKind::Grub,
                    "EFI/BOOT/grub.cfg",
                    "set default=0\nmenuentry 'NixOS' { linux /boot/bzImage console=tty0\n initrd /boot/initrd }\nsubmenu 'More' {\n menuentry 'NixOS (serial console=ttyS0,115200n8)' { linux /boot/bzImage console=ttyS0,115200n8\n initrd /boot/initrd }\n}\n",
                ),
                config(
                    ConfigKind::Syslinux,
                    "isolinux/isolinux.cfg",
                    "SERIAL 0 115200\nDEFAULT boot\nLABEL memtest\n  KERNEL /boot/memtest.bin\nLABEL boot\n  MENU LABEL NixOS\n  LINUX /boot/bzImage\n  APPEND console=tty0\n  INITRD /boot/initrd\nLABEL boot-serial\n  MENU LABEL NixOS (serial console=ttyS0,115200n8)\n  LINUX /boot/bzImage\n  APPEND console=ttyS0,115200n8\n  INITRD /boot/initrd\n",
                ),
            ],
            warnings: vec![],
        }
    }

    #[test]
    fn the_default_is_what_the_loader_boots() {
        let c = choose_entry(&installer(), Firmware::Bios, &EntryChoice::Default).unwrap();
        assert_eq!(c.entry.label, "NixOS");
        assert_eq!(c.entry.menu_path, [1], "the memtest label is item 0");
        assert!(c.is_default && c.kind == ConfigKind::Syslinux);
        let c = choose_entry(&installer(), Firmware::Uefi, &EntryChoice::Default).unwrap();
        assert_eq!(c.entry.config, "EFI/BOOT/grub.cfg");
        assert_eq!(c.entry.menu_path, [0]);
    }

    #[test]
    fn a_label_chooses_among_the_firmwares_entries() {
        let serial = EntryChoice::Label(regex::Regex::new("serial console=ttyS0").unwrap());
        let c = choose_entry(&installer(), Firmware::Bios, &serial).unwrap();
        assert_eq!(c.entry.name, "boot-serial");
        assert_eq!(c.entry.menu_path, [2]);
        assert!(!c.is_default);
        let c = choose_entry(&installer(), Firmware::Uefi, &serial).unwrap();
        assert_eq!(c.entry.menu_path, [1, 0], "inside the submenu");
        let none = EntryChoice::Label(regex::Regex::new("rescue").unwrap());
        let e = choose_entry(&installer(), Firmware::Bios, &none).unwrap_err();
        assert!(e.contains("'NixOS'") && e.contains("boot.entry"), "{e}");
    }

    /// Debian live-build's layout: isolinux.cfg names the menu module, the label marked
    /// `MENU DEFAULT` sits in an included file (its other files sort first).
    #[test]
    fn a_menu_default_in_an_included_file_is_the_default() {
        let scan = BootConfigScan {
            configs: vec![
                config(ConfigKind::Syslinux, "isolinux/adtxt.cfg", "label expert\n  menu label Expert install\n  kernel /install/vmlinuz\n  append priority=low\n"),
                config(ConfigKind::Syslinux, "isolinux/isolinux.cfg", "include menu.cfg\ndefault vesamenu.c32\nprompt 0\ntimeout 0\n"),
                config(ConfigKind::Syslinux, "isolinux/live.cfg", "label live-amd64-failsafe\n  menu label Live (failsafe)\n  linux /live/vmlinuz\n  append boot=live noapic\nlabel live-amd64\n  menu label Live system\n  menu default\n  linux /live/vmlinuz\n  append boot=live console=ttyS0\n"),
            ],
            warnings: vec![],
        };
        let c = choose_entry(&scan, Firmware::Bios, &EntryChoice::Default).unwrap();
        assert_eq!(c.entry.name, "live-amd64");
        assert!(c.is_default);
        assert_eq!(c.default_config.as_deref(), Some("isolinux/live.cfg"));
        let other = EntryChoice::Label(regex::Regex::new("Expert").unwrap());
        let c = choose_entry(&scan, Firmware::Bios, &other).unwrap();
        assert_ne!(
            c.default_config.as_deref(),
            Some(c.entry.config.as_str()),
            "menu mode must refuse it"
        );
    }
}
