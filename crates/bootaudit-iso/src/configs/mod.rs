//! Boot loader configs inside the image, and the kernel command lines they hold.
//!
//! Which files: `isolinux/`, `syslinux/`, `boot/isolinux/`, `boot/syslinux/` `*.cfg`
//! (syslinux format), `boot/grub/grub.cfg`, `EFI/BOOT/grub.cfg`, `boot/grub/loopback.cfg`
//! (GRUB script), `loader/entries/*.conf` (systemd-boot) — all matched ignoring case, because
//! `EFI/BOOT` vs `EFI/boot` differs between distributions and both boot. Files pulled in by
//! syslinux `INCLUDE`/`MENU INCLUDE`/`CONFIG` and GRUB `source`/`configfile` (literal paths)
//! are parsed as well; each file is parsed once, which also breaks include loops.
//!
//! Each Linux entry becomes a [`BootEntry`]; entries that boot something else (memtest,
//! chainloader, COM32 modules, local disk) become [`SkippedEntry`]s so a report can still
//! show them. A config that cannot be read or parsed cleanly yields a [`ConfigWarning`]
//! rather than an error: one odd file should not hide the verdict on the others.

mod grub;
mod sdboot;
mod syslinux;

use std::collections::HashSet;

use crate::error::IsoError;
use crate::image::{names_equal, normalise, Entry, IsoImage, DEFAULT_READ_LIMIT};

/// The syntax a config file is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigKind {
    /// isolinux / syslinux `.cfg`.
    Syslinux,
    /// GRUB 2 script (`grub.cfg`, `loopback.cfg`).
    Grub,
    /// systemd-boot Boot Loader Specification entry (`loader/entries/*.conf`).
    SystemdBoot,
}

/// A Linux boot entry with its kernel command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootEntry {
    /// Config file path inside the image (`isolinux/isolinux.cfg`).
    pub config: String,
    /// 1-based line where the entry starts (`LABEL`, `menuentry`, `title`).
    pub line: usize,
    /// `MENU LABEL` (else `LABEL`), the menuentry title, or the systemd-boot `title`.
    pub label: String,
    /// What the loader calls it: the syslinux `LABEL` (typed at its `boot:` prompt), the
    /// menuentry title, the systemd-boot entry file's name.
    pub name: String,
    /// Where the menu shows it: its position among the items of its menu, after the positions
    /// of the submenus that hold it (GRUB `submenu`); counted from 0, every item counted.
    pub menu_path: Vec<usize>,
    /// Kernel path as written.
    pub kernel: String,
    /// Initrd paths as written (`INITRD`, `initrd=` in APPEND, GRUB `initrd`, BLS `initrd`).
    pub initrd: Vec<String>,
    /// The kernel command line as the loader passes it (GRUB variables left unexpanded).
    pub cmdline: String,
    /// 1-based line of the command line (`APPEND`, `linux`, first `options`); equals `line`
    /// when the entry has none.
    pub cmdline_line: usize,
}

/// An entry that does not boot a Linux kernel with a command line, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedEntry {
    pub config: String,
    pub line: usize,
    pub label: String,
    /// e.g. "memtest", "COM32 module vesamenu.c32", "chainloader".
    pub reason: String,
}

/// A problem with one config file that did not stop the scan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigWarning {
    pub config: String,
    pub line: Option<usize>,
    pub message: String,
}

impl std::fmt::Display for ConfigWarning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.line {
            Some(l) => write!(f, "{}:{}: {}", self.config, l, self.message),
            None => write!(f, "{}: {}", self.config, self.message),
        }
    }
}

/// One parsed config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootConfig {
    pub path: String,
    pub kind: ConfigKind,
    /// The default entry as the config names it: syslinux `DEFAULT`/`MENU DEFAULT` (a label),
    /// GRUB `set default=` (an index or a title).
    pub default: Option<String>,
    pub entries: Vec<BootEntry>,
    pub skipped: Vec<SkippedEntry>,
}

/// Everything [`boot_configs`] found.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BootConfigScan {
    /// Config files in the order they were parsed (discovered files by path, then includes).
    pub configs: Vec<BootConfig>,
    pub warnings: Vec<ConfigWarning>,
}

impl BootConfigScan {
    /// All Linux entries of all configs.
    pub fn entries(&self) -> Vec<BootEntry> {
        self.configs
            .iter()
            .flat_map(|c| c.entries.clone())
            .collect()
    }
    /// All skipped entries of all configs.
    pub fn skipped(&self) -> Vec<SkippedEntry> {
        self.configs
            .iter()
            .flat_map(|c| c.skipped.clone())
            .collect()
    }
}

/// What a single-file parser returns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ParsedConfig {
    /// See [`BootConfig::default`].
    pub default: Option<String>,
    pub entries: Vec<BootEntry>,
    pub skipped: Vec<SkippedEntry>,
    /// Other config files this one pulls in: (line, path as written).
    pub includes: Vec<(usize, String)>,
    pub warnings: Vec<ConfigWarning>,
}

/// Parses one config file's text. `path` is only used to label the results.
pub fn parse_config(kind: ConfigKind, path: &str, text: &str) -> ParsedConfig {
    match kind {
        ConfigKind::Syslinux => syslinux::parse(path, text),
        ConfigKind::Grub => grub::parse(path, text),
        ConfigKind::SystemdBoot => sdboot::parse(path, text),
    }
}

/// Which kind of config a path is, if it is one we scan.
pub fn classify(path: &str) -> Option<ConfigKind> {
    let comps = normalise(path);
    let lower: Vec<String> = comps.iter().map(|c| c.to_lowercase()).collect();
    let (file, dir) = lower.split_last()?;
    let dir = dir.join("/");
    if file.ends_with(".cfg")
        && ["isolinux", "syslinux", "boot/isolinux", "boot/syslinux"].contains(&dir.as_str())
    {
        return Some(ConfigKind::Syslinux);
    }
    let full = lower.join("/");
    if [
        "boot/grub/grub.cfg",
        "efi/boot/grub.cfg",
        "boot/grub/loopback.cfg",
    ]
    .contains(&full.as_str())
    {
        return Some(ConfigKind::Grub);
    }
    if dir == "loader/entries" && file.ends_with(".conf") {
        return Some(ConfigKind::SystemdBoot);
    }
    None
}

/// A bound on configs parsed per image, so an include fan-out cannot run away.
const MAX_CONFIGS: usize = 256;

/// Finds and parses every boot config of the image.
///
/// Fails only when the directory tree itself cannot be read (then nothing can be said about
/// the configs); problems with single files become [`BootConfigScan::warnings`].
pub fn boot_configs(image: &IsoImage) -> Result<BootConfigScan, IsoError> {
    let files: Vec<Entry> = image.walk()?.into_iter().filter(|e| !e.is_dir()).collect();
    let mut queue: std::collections::VecDeque<(String, ConfigKind)> = files
        .iter()
        .filter_map(|f| classify(f.path()).map(|k| (f.path().to_string(), k)))
        .collect();
    let mut seen: HashSet<String> = HashSet::new();
    let mut scan = BootConfigScan::default();
    while let Some((path, kind)) = queue.pop_front() {
        if !seen.insert(path.clone()) {
            continue;
        }
        if scan.configs.len() >= MAX_CONFIGS {
            scan.warnings.push(ConfigWarning {
                config: path,
                line: None,
                message: format!("not parsed: more than {MAX_CONFIGS} config files"),
            });
            break;
        }
        let Some(entry) = find_file(&files, &path) else {
            continue;
        };
        let bytes = match image.read_entry(entry, DEFAULT_READ_LIMIT) {
            Ok(b) => b,
            Err(e) => {
                scan.warnings.push(ConfigWarning {
                    config: path,
                    line: None,
                    message: format!("not parsed: {e}"),
                });
                continue;
            }
        };
        let text = String::from_utf8_lossy(&bytes);
        let parsed = parse_config(kind, &path, &text);
        scan.warnings.extend(parsed.warnings);
        for (line, target) in parsed.includes {
            match resolve_include(&files, &path, &target) {
                Some(found) => queue.push_back((found.path().to_string(), kind)),
                None => scan.warnings.push(ConfigWarning {
                    config: path.clone(),
                    line: Some(line),
                    message: format!("includes {target}, which is not in the image"),
                }),
            }
        }
        scan.configs.push(BootConfig {
            path,
            kind,
            default: parsed.default,
            entries: parsed.entries,
            skipped: parsed.skipped,
        });
    }
    Ok(scan)
}

fn find_file<'a>(files: &'a [Entry], path: &str) -> Option<&'a Entry> {
    let want = normalise(path).join("/");
    files
        .iter()
        .find(|f| f.path() == want)
        .or_else(|| files.iter().find(|f| names_equal(f.path(), &want)))
}

/// Absolute targets are looked up from the root; relative ones next to the including file
/// (where isolinux sets its working directory), then from the root.
fn resolve_include<'a>(files: &'a [Entry], from: &str, target: &str) -> Option<&'a Entry> {
    if target.contains('$') {
        return None;
    }
    if !target.starts_with('/') {
        let dir = match from.rfind('/') {
            Some(i) => &from[..i],
            None => "",
        };
        if let Some(f) = find_file(files, &format!("{dir}/{target}")) {
            return Some(f);
        }
    }
    find_file(files, target)
}

/// Kernel paths that are memory testers, not Linux.
pub(crate) fn is_memtest(kernel: &str) -> bool {
    kernel.to_lowercase().contains("memtest")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_paths_ignoring_case() {
        assert_eq!(
            classify("ISOLINUX/ISOLINUX.CFG"),
            Some(ConfigKind::Syslinux)
        );
        assert_eq!(
            classify("boot/syslinux/menu.cfg"),
            Some(ConfigKind::Syslinux)
        );
        assert_eq!(classify("EFI/boot/grub.cfg"), Some(ConfigKind::Grub));
        assert_eq!(classify("/boot/grub/loopback.cfg"), Some(ConfigKind::Grub));
        assert_eq!(
            classify("loader/entries/nixos.conf"),
            Some(ConfigKind::SystemdBoot)
        );
        assert_eq!(classify("isolinux/sub/x.cfg"), None);
        assert_eq!(classify("boot/grub/fonts.cfg"), None);
        assert_eq!(classify("loader/loader.conf"), None);
    }
}
