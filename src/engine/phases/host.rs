//! Host phase: is this machine able to run the audit at all? Every failure says what fixes it.

use crate::engine::Engine;
use crate::model::Outcome;
use crate::qemu::{args::required_devices, probe};
use std::path::Path;

const QEMU_HINT: &str = "install QEMU: `apt-get install qemu-system-x86` (Debian/Ubuntu; on Debian 12 from bookworm-backports), `dnf install qemu-system-x86` (Fedora), or `nix profile install nixpkgs#qemu`";

pub fn qemu(engine: &mut Engine) -> Outcome {
    let program = engine.config.profile.machine.qemu.clone();
    match probe::version(&program) {
        Ok((version, line)) => {
            engine.facts.qemu_version = Some(version.clone());
            Outcome::pass(format!("{program} {version} runs"), line)
        }
        Err(e) => Outcome::fail(format!("{e} — {QEMU_HINT}"), ""),
    }
}

pub fn qemu_devices(engine: &mut Engine) -> Outcome {
    let m = &engine.config.profile.machine;
    let wanted = required_devices(m, &engine.config.contract.port);
    let firmware = match crate::qemu::firmware::uefi_files(m) {
        Ok(Some(f)) => format!(
            "; UEFI firmware {} and {}",
            f.code.display(),
            f.vars.display()
        ),
        Ok(None) => String::new(),
        Err(e) => return Outcome::fail(e, ""),
    };
    match probe::devices(&m.qemu) {
        Err(e) => Outcome::fail(format!("{e} — {QEMU_HINT}"), ""),
        Ok(offered) => {
            let missing: Vec<&String> = wanted.iter().filter(|w| !offered.contains(w)).collect();
            if missing.is_empty() {
                Outcome::pass(
                    format!("{} offers {}{firmware}", m.qemu, wanted.join(", ")),
                    wanted.join(" "),
                )
            } else {
                let missing: Vec<&str> = missing.iter().map(|s| s.as_str()).collect();
                Outcome::fail(
                    format!(
                        "{} lacks device(s) {} that the profile uses — install the full system emulator (Debian: qemu-system-x86, not only qemu-system-x86-microvm) or change the profile's machine",
                        m.qemu,
                        missing.join(", ")
                    ),
                    format!("{} devices offered", offered.len()),
                )
            }
        }
    }
}

/// Free bytes on the filesystem holding `path` (or its nearest existing ancestor).
fn free_disk(path: &Path) -> std::io::Result<u64> {
    let mut p = path;
    while !p.exists() {
        p = p.parent().unwrap_or(Path::new("/"));
    }
    let c =
        std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).map_err(std::io::Error::other)?;
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: c is a valid C string and st a valid out-pointer.
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(st.f_bavail as u64 * st.f_frsize as u64)
}

/// MemAvailable from /proc/meminfo, in bytes.
fn mem_available(meminfo: &str) -> Option<u64> {
    meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemAvailable:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .map(|kib| kib * 1024)
}

/// Room left under this process's cgroup v2 memory limit, if it has one.
fn cgroup_room() -> Option<(u64, String)> {
    let cg = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let rel = cg
        .lines()
        .find_map(|l| l.strip_prefix("0::"))?
        .trim()
        .to_string();
    // Walk up: the tightest limit on the path applies.
    let mut best: Option<(u64, String)> = None;
    let mut dir = Path::new("/sys/fs/cgroup").join(rel.trim_start_matches('/'));
    loop {
        let max = std::fs::read_to_string(dir.join("memory.max")).ok();
        let cur = std::fs::read_to_string(dir.join("memory.current")).ok();
        if let (Some(max), Some(cur)) = (max, cur) {
            if let (Ok(max), Ok(cur)) = (max.trim().parse::<u64>(), cur.trim().parse::<u64>()) {
                let room = max.saturating_sub(cur);
                if best.as_ref().is_none_or(|(b, _)| room < *b) {
                    best = Some((room, dir.display().to_string()));
                }
            }
        }
        if dir == Path::new("/sys/fs/cgroup") || !dir.pop() {
            break;
        }
    }
    best
}

pub fn resources(engine: &mut Engine) -> Outcome {
    use crate::config::units::Size;
    let p = &engine.config.profile;
    let work = engine.opts.out_dir.clone();
    let tmp = std::env::temp_dir();
    let need_disk = p.resources.disk.0;
    let need_mem = p.machine.memory.0 + p.resources.memory_overhead.0;
    let mut problems = Vec::new();
    let mut seen = Vec::new();
    for (what, dir) in [
        ("report folder", work.as_path()),
        ("temp folder (guest disks)", tmp.as_path()),
    ] {
        match free_disk(dir) {
            Ok(free) => {
                seen.push(format!("{what} {}: {} free", dir.display(), Size(free)));
                if free < need_disk {
                    problems.push(format!(
                        "only {} free for the {what} {} (need {}) — free space or point --out/TMPDIR elsewhere",
                        Size(free),
                        dir.display(),
                        Size(need_disk)
                    ));
                }
            }
            Err(e) => problems.push(format!("cannot read free space of {}: {e}", dir.display())),
        }
    }
    let available = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .as_deref()
        .and_then(mem_available);
    let cgroup = cgroup_room();
    let effective = match (available, &cgroup) {
        (Some(a), Some((c, _))) => Some(a.min(*c)),
        (a, c) => a.or(c.as_ref().map(|c| c.0)),
    };
    match effective {
        Some(mem) => {
            let source = match &cgroup {
                Some((c, dir)) if Some(*c) == effective => format!("cgroup limit at {dir}"),
                _ => "MemAvailable".to_string(),
            };
            seen.push(format!("memory: {} available ({source})", Size(mem)));
            if mem < need_mem {
                problems.push(format!(
                    "only {} of memory available ({source}); the guest needs {} plus {} for QEMU — lower machine.memory in the profile or free memory",
                    Size(mem),
                    p.machine.memory,
                    p.resources.memory_overhead
                ));
            }
        }
        None => problems.push("cannot read available memory from /proc/meminfo".into()),
    }
    if problems.is_empty() {
        Outcome::pass(
            format!(
                "enough disk ({} needed) and memory ({} needed)",
                Size(need_disk),
                Size(need_mem)
            ),
            seen.join("; "),
        )
    } else {
        Outcome::fail(problems.join("; "), seen.join("; "))
    }
}

/// What to do when nix is missing or too old for `--flake`.
const NIX_HINT: &str = "install nix 2.4 or later: `apt-get install nix-setup-systemd` (Debian 12/Ubuntu: nix-bin with its daemon and build users), `sh <(curl -L https://nixos.org/nix/install) --daemon` (any Linux), or build the ISO elsewhere and pass --iso instead of --flake";

/// `nix --version` prints `nix (Nix) 2.8.0`: its (major, minor).
fn nix_version(text: &str) -> Option<(u32, u32)> {
    let v = text.split_whitespace().last()?;
    let mut parts = v.split('.');
    let major = parts.next()?.parse().ok()?;
    let minor = parts
        .next()?
        .chars()
        .take_while(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .ok()?;
    Some((major, minor))
}

pub fn nix(engine: &mut Engine) -> Outcome {
    if engine.opts.flake.is_none() {
        return Outcome::not_applicable("no --flake: the ISO is not built, nix is not needed");
    }
    // With the flags iso.build passes, so a nix that does not know flakes fails here.
    let args: Vec<String> = super::iso::NIX_FEATURES
        .iter()
        .map(|s| s.to_string())
        .chain(["--version".to_string()])
        .collect();
    let run =
        crate::qemu::process::run_probe("nix", &args, std::time::Duration::from_secs(20), |_| {
            false
        });
    match run {
        Ok(run) if run.exit.is_some_and(|s| s.success()) => {
            let v = String::from_utf8_lossy(&run.output).trim().to_string();
            match nix_version(&v) {
                Some((major, minor)) if (major, minor) < (2, 4) => Outcome::fail(
                    format!("{v} is too old for flakes (they came with nix 2.4) — {NIX_HINT}"),
                    v,
                ),
                _ => Outcome::pass(format!("nix works: {v}"), v),
            }
        }
        Ok(run) if run.exit.is_none() => Outcome::fail(
            "`nix --version` did not answer within 20 s — check the nix installation",
            "",
        ),
        Ok(run) => {
            let err = String::from_utf8_lossy(&run.stderr).trim().to_string();
            Outcome::fail(
                format!(
                    "`nix {} --version` failed: {} — nix 2.4 or later is needed for flakes; {NIX_HINT}",
                    super::iso::NIX_FEATURES.join(" "),
                    err.lines().next().unwrap_or("no output")
                ),
                err,
            )
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Outcome::fail(
            format!("nix is not installed (no `nix` on PATH) and --flake needs it — {NIX_HINT}"),
            std::env::var("PATH")
                .map(|p| format!("PATH={p}"))
                .unwrap_or_default(),
        ),
        Err(e) => Outcome::fail(format!("cannot run nix: {e} — {NIX_HINT}"), ""),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_meminfo() {
        assert_eq!(
            mem_available("MemTotal: 10 kB\nMemAvailable:   2048 kB\n"),
            Some(2048 * 1024)
        );
        assert_eq!(mem_available("MemTotal: 10 kB\n"), None);
    }

    #[test]
    fn reads_nix_version() {
        assert_eq!(nix_version("nix (Nix) 2.8.0"), Some((2, 8)));
        assert_eq!(nix_version("nix (Nix) 2.3.16"), Some((2, 3)));
        assert_eq!(
            nix_version("nix (Nix) 2.24.10pre20241001_dirty"),
            Some((2, 24))
        );
        assert_eq!(nix_version("nix (Lix, like Nix) 2.91.1"), Some((2, 91)));
        assert_eq!(nix_version("something"), None);
    }

    #[test]
    fn free_disk_of_missing_path_uses_ancestor() {
        assert!(free_disk(Path::new("/tmp/does/not/exist/yet")).unwrap() > 0);
    }
}
