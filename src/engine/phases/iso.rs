//! ISO phase: find the image, check it is a bootable ISO 9660 with an El Torito catalog, and
//! read its boot configs (without mounting) to see whether the kernel will talk on ttyS0.

use crate::engine::Engine;
use crate::model::{IsoInfo, Outcome};
use bootaudit_iso::{boot_configs, console, ConsoleStatus, IsoImage};
use sha2::{Digest, Sha256};
use std::io::Read;
use std::path::{Path, PathBuf};

pub fn build(engine: &mut Engine) -> Outcome {
    let Some(flake) = engine.opts.flake.clone() else {
        return Outcome::not_applicable("no --flake: the ISO is given with --iso");
    };
    let args = [
        "build".to_string(),
        flake.clone(),
        "--no-link".into(),
        "--print-out-paths".into(),
    ];
    let run =
        crate::qemu::process::run_probe("nix", &args, std::time::Duration::from_secs(3600), |_| {
            false
        });
    match run {
        Ok(r) if r.exit.is_some_and(|s| s.success()) => {
            let out = String::from_utf8_lossy(&r.output);
            let paths: Vec<&str> = out
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .collect();
            let isos: Vec<PathBuf> = paths
                .iter()
                .flat_map(|p| find_isos(Path::new(p)).unwrap_or_default())
                .collect();
            match isos.as_slice() {
                [one] => {
                    engine.opts.iso = Some(one.clone());
                    Outcome::pass(
                        format!("nix build {flake} produced {}", one.display()),
                        out.trim().to_string(),
                    )
                }
                [] => Outcome::fail(
                    format!(
                        "nix build {flake} produced no .iso (outputs: {})",
                        paths.join(", ")
                    ),
                    out.trim().to_string(),
                ),
                many => Outcome::fail(
                    format!(
                        "nix build {flake} produced {} ISOs: {} — build a single ISO attribute",
                        many.len(),
                        list(many)
                    ),
                    out.trim().to_string(),
                ),
            }
        }
        Ok(r) => {
            let err = String::from_utf8_lossy(&r.stderr);
            let last = err
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("no output");
            Outcome::fail(
                format!("nix build {flake} failed: {last}"),
                err.trim().to_string(),
            )
        }
        Err(e) => Outcome::fail(format!("cannot run nix build: {e}"), ""),
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
    match sha256(&file) {
        Ok((digest, bytes)) => {
            engine.facts.iso_path = Some(file.clone());
            engine.facts.iso_info = Some(IsoInfo {
                path: file.display().to_string(),
                sha256: Some(digest.clone()),
                bytes: Some(bytes),
            });
            Outcome::pass(
                format!("{} ({} bytes)", file.display(), bytes),
                format!("sha256 {digest}"),
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
            let entries: Vec<String> = cat.entries.iter().map(|e| format!("{e:?}")).collect();
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
                    entries.join("; "),
                );
            }
            let mut o = Outcome::pass(
                format!(
                    "ISO 9660 volume `{}` with El Torito boot entries: {kinds}",
                    image.volume_id()
                ),
                entries.join("; "),
            );
            if !cat.has_bios() {
                o = o.with_warning(
                    "no BIOS boot entry: the profile's QEMU machine boots with SeaBIOS (BIOS)",
                );
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

pub fn console(engine: &mut Engine) -> Outcome {
    let image = match open_image(engine) {
        Ok(i) => i,
        Err(o) => return o,
    };
    let scan = match boot_configs(&image) {
        Ok(s) => s,
        Err(e) => return Outcome::fail(format!("cannot read boot configs: {e}"), ""),
    };
    let entries = scan.entries();
    let verdict = console::judge(&entries);
    let per_entry: Vec<String> = entries
        .iter()
        .map(|e| {
            format!(
                "{}:{} '{}': {}",
                e.config, e.cmdline_line, e.label, e.cmdline
            )
        })
        .collect();
    let evidence = per_entry.join("\n");
    let configs: Vec<&str> = scan.configs.iter().map(|c| c.path.as_str()).collect();
    let mut outcome = match verdict.status {
        ConsoleStatus::Pass => Outcome::pass(
            format!("all {} kernel command lines in {} send the console to ttyS0", verdict.checked, configs.join(", ")),
            evidence,
        ),
        ConsoleStatus::Fail => Outcome::fail(
            format!(
                "{} of {} boot entries do not send the console to ttyS0: {}",
                verdict.failures.len(),
                verdict.checked,
                verdict.failures.iter().map(|f| f.to_string()).collect::<Vec<_>>().join("; ")
            ),
            evidence,
        ),
        ConsoleStatus::NoEntries => Outcome::fail(
            format!(
                "found no Linux boot entry in the image's boot configs ({}) — nothing shows the kernel will use ttyS0",
                if configs.is_empty() { "none found".to_string() } else { configs.join(", ") }
            ),
            scan.warnings.iter().map(|w| w.to_string()).collect::<Vec<_>>().join("\n"),
        ),
    };
    for w in &verdict.warnings {
        outcome = outcome.with_warning(w.to_string());
    }
    outcome
}
