//! isolinux / syslinux `.cfg` files.
//!
//! Keywords are case-insensitive. A `LABEL` starts an entry; `KERNEL`/`LINUX` name what it
//! boots, `APPEND` is the command line (a global `APPEND` applies to labels without their own;
//! `APPEND -` means none), `INITRD` adds an initrd. `KERNEL` guesses the type from the file
//! extension like syslinux does (`.c32` → COM32 module, `.bin`/`.0`/`.com`… → not Linux);
//! `LINUX` forces a Linux kernel. `MENU LABEL` and `TEXT HELP … ENDTEXT` are display text only:
//! a menu label saying "console=ttyS0" is not a command line.

use super::{is_memtest, BootEntry, ParsedConfig, SkippedEntry};

#[derive(Default)]
struct Label {
    line: usize,
    name: String,
    menu_label: Option<String>,
    /// (keyword, path) of KERNEL/LINUX/COM32/…
    kernel: Option<(String, String)>,
    append: Option<(String, usize)>,
    initrd: Vec<String>,
    localboot: bool,
    config: Option<String>,
    /// Its position in the menu.
    index: usize,
    /// `MENU HIDE`: not shown, so not counted.
    hidden: bool,
}

fn split_word(s: &str) -> (&str, &str) {
    let s = s.trim();
    match s.find(char::is_whitespace) {
        Some(i) => (&s[..i], s[i..].trim()),
        None => (s, ""),
    }
}

pub(super) fn parse(path: &str, text: &str) -> ParsedConfig {
    let mut out = ParsedConfig::default();
    let mut current: Option<Label> = None;
    let mut global_append: Option<(String, usize)> = None;
    let mut labels: Vec<Label> = Vec::new();
    let mut in_text = false;

    for (i, raw) in text.lines().enumerate() {
        let lineno = i + 1;
        let line = raw.trim();
        if in_text {
            if line.eq_ignore_ascii_case("endtext") {
                in_text = false;
            }
            continue;
        }
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (kw, rest) = split_word(line);
        match kw.to_ascii_lowercase().as_str() {
            "label" => {
                labels.extend(current.take());
                current = Some(Label {
                    line: lineno,
                    name: rest.to_string(),
                    index: labels.iter().filter(|l| !l.hidden).count(),
                    ..Label::default()
                });
            }
            // `DEFAULT vesamenu.c32` (old style) names the menu module, not a label.
            "default" if current.is_none() => {
                let (label, _) = split_word(rest);
                let module = label.to_ascii_lowercase().ends_with(".c32");
                if !label.is_empty() && !module && out.default.is_none() {
                    out.default = Some(label.to_string());
                }
            }
            "menu" => {
                let (sub, rest2) = split_word(rest);
                match sub.to_ascii_lowercase().as_str() {
                    "label" => {
                        if let Some(l) = current.as_mut() {
                            l.menu_label = Some(rest2.replace('^', ""));
                        }
                    }
                    "hide" => {
                        if let Some(l) = current.as_mut() {
                            l.hidden = true;
                        }
                    }
                    // `MENU DEFAULT` inside a label outranks the global `DEFAULT`.
                    "default" => {
                        if let Some(l) = current.as_ref() {
                            out.default = Some(l.name.clone());
                        }
                    }
                    "include" => {
                        let (file, _) = split_word(rest2);
                        if !file.is_empty() {
                            out.includes.push((lineno, file.to_string()));
                        }
                    }
                    _ => {}
                }
            }
            "text" if split_word(rest).0.eq_ignore_ascii_case("help") => in_text = true,
            "include" => {
                let (file, _) = split_word(rest);
                if !file.is_empty() {
                    out.includes.push((lineno, file.to_string()));
                }
            }
            "config" => {
                let (file, _) = split_word(rest);
                if !file.is_empty() {
                    out.includes.push((lineno, file.to_string()));
                    if let Some(l) = current.as_mut() {
                        l.config = Some(file.to_string());
                    }
                }
            }
            kw
            @ ("kernel" | "linux" | "boot" | "bss" | "pxe" | "fdimage" | "comboot" | "com32") => {
                if let Some(l) = current.as_mut() {
                    l.kernel = Some((kw.to_string(), split_word(rest).0.to_string()));
                }
            }
            "append" => match current.as_mut() {
                Some(l) => l.append = Some((rest.to_string(), lineno)),
                None => global_append = Some((rest.to_string(), lineno)),
            },
            "initrd" => {
                if let Some(l) = current.as_mut() {
                    l.initrd.extend(
                        rest.split(',')
                            .map(str::trim)
                            .filter(|s| !s.is_empty())
                            .map(String::from),
                    );
                }
            }
            "localboot" => {
                if let Some(l) = current.as_mut() {
                    l.localboot = true;
                }
            }
            _ => {}
        }
    }
    labels.extend(current.take());

    for l in labels {
        let label = l
            .menu_label
            .clone()
            .filter(|m| !m.trim().is_empty())
            .unwrap_or_else(|| l.name.clone());
        let skip = |reason: String| SkippedEntry {
            config: path.to_string(),
            line: l.line,
            label: label.clone(),
            reason,
        };
        let Some((kw, kernel)) = l.kernel.clone() else {
            out.skipped.push(skip(if l.localboot {
                "LOCALBOOT (boots the local disk)".into()
            } else if let Some(c) = &l.config {
                format!("CONFIG {c} (loads another config)")
            } else {
                "no KERNEL or LINUX line".into()
            }));
            continue;
        };
        let lower = kernel.to_ascii_lowercase();
        if kw == "com32" || lower.ends_with(".c32") {
            out.skipped.push(skip(format!("COM32 module {kernel}")));
            continue;
        }
        if is_memtest(&kernel) {
            out.skipped.push(skip(format!("memtest ({kernel})")));
            continue;
        }
        let non_linux_ext = [".bin", ".bs", ".bss", ".0", ".com", ".cbt", ".img"];
        let is_kernel_kw = kw == "linux" || kw == "kernel";
        if !is_kernel_kw || (kw == "kernel" && non_linux_ext.iter().any(|e| lower.ends_with(e))) {
            out.skipped.push(skip(format!(
                "{} {kernel} (not a Linux kernel)",
                kw.to_uppercase()
            )));
            continue;
        }
        let append = l.append.clone().or_else(|| global_append.clone());
        let (cmdline, cmdline_line) = match append {
            Some((a, line)) if a.trim() == "-" => (String::new(), line),
            Some((a, line)) => (a, line),
            None if kw == "linux" || !l.initrd.is_empty() => (String::new(), l.line),
            None => {
                out.skipped.push(skip(format!(
                    "KERNEL {kernel} without APPEND or INITRD (no kernel command line)"
                )));
                continue;
            }
        };
        let mut initrd = l.initrd.clone();
        for p in crate::console::kernel_params(&cmdline) {
            if let Some(v) = p.strip_prefix("initrd=") {
                initrd.extend(v.split(',').filter(|s| !s.is_empty()).map(String::from));
            }
        }
        out.entries.push(BootEntry {
            config: path.to_string(),
            line: l.line,
            label,
            name: l.name.clone(),
            menu_path: if l.hidden { Vec::new() } else { vec![l.index] },
            kernel,
            initrd,
            cmdline,
            cmdline_line,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const NIXOS: &str = "\
SERIAL 0 115200
TIMEOUT 10
DEFAULT boot

LABEL boot
MENU LABEL NixOS 25.05 Installer
LINUX /boot/bzImage
APPEND init=/nix/store/abc-nixos-system/init root=LABEL=nixos-minimal console=tty0 console=ttyS0,115200n8 loglevel=4
INITRD /boot/initrd

# A trap: the label mentions the serial console, the command line does not.
LABEL boot-serial
MENU LABEL NixOS 25.05 Installer (serial console=ttyS0,115200n8)
LINUX /boot/bzImage
APPEND init=/nix/store/abc-nixos-system/init console=tty0
INITRD /boot/initrd
TEXT HELP
  APPEND console=ttyS0 is what you want
ENDTEXT

label memtest
  menu label ^Memory test
  kernel /boot/memtest.bin

LABEL hdt
  COM32 hdt.c32

LABEL local
  LOCALBOOT 0
MENU INCLUDE more.cfg
";

    #[test]
    fn parses_nixos_layout() {
        let p = parse("isolinux/isolinux.cfg", NIXOS);
        assert_eq!(p.entries.len(), 2, "{p:#?}");
        let e = &p.entries[0];
        assert_eq!(e.line, 5);
        assert_eq!(e.label, "NixOS 25.05 Installer");
        assert_eq!(e.kernel, "/boot/bzImage");
        assert_eq!(e.initrd, vec!["/boot/initrd"]);
        assert_eq!(e.cmdline_line, 8);
        assert!(e.cmdline.ends_with("console=ttyS0,115200n8 loglevel=4"));
        let trap = &p.entries[1];
        assert!(trap.label.contains("console=ttyS0"));
        assert!(!trap.cmdline.contains("ttyS0"));
        let reasons: Vec<&str> = p.skipped.iter().map(|s| s.reason.as_str()).collect();
        assert_eq!(p.skipped.len(), 3, "{reasons:?}");
        assert!(reasons[0].starts_with("memtest"));
        assert!(reasons[1].starts_with("COM32"));
        assert!(reasons[2].starts_with("LOCALBOOT"));
        assert_eq!(p.skipped[0].label, "Memory test");
        assert_eq!(p.includes, vec![(30, "more.cfg".to_string())]);
    }

    #[test]
    fn global_append_applies_to_labels_without_their_own() {
        let p = parse(
            "x.cfg",
            "APPEND console=ttyS0\nLABEL a\nKERNEL vmlinuz\nLABEL b\nKERNEL vmlinuz\nAPPEND -\n",
        );
        assert_eq!(p.entries[0].cmdline, "console=ttyS0");
        assert_eq!(p.entries[0].cmdline_line, 1);
        assert_eq!(p.entries[1].cmdline, "");
    }
}
