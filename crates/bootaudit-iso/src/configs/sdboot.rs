//! systemd-boot / Boot Loader Specification type #1 entries (`loader/entries/*.conf`).
//!
//! One entry per file: `key value` lines, `#` comments. `options` may appear several times;
//! the values are joined with spaces, as systemd-boot does. An entry with `efi` instead of
//! `linux` runs an EFI program and is skipped.

use super::{is_memtest, BootEntry, ParsedConfig, SkippedEntry};

pub(super) fn parse(path: &str, text: &str) -> ParsedConfig {
    let mut out = ParsedConfig::default();
    let mut title: Option<(String, usize)> = None;
    let mut linux: Option<(String, usize)> = None;
    let mut efi: Option<String> = None;
    let mut options: Vec<(String, usize)> = Vec::new();
    let mut initrd: Vec<String> = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (key, value) = match line.find(char::is_whitespace) {
            Some(p) => (&line[..p], line[p..].trim()),
            None => (line, ""),
        };
        match key {
            "title" => title = Some((value.to_string(), i + 1)),
            "linux" => linux = Some((value.to_string(), i + 1)),
            "efi" => efi = Some(value.to_string()),
            "options" => options.push((value.to_string(), i + 1)),
            "initrd" => initrd.push(value.to_string()),
            _ => {}
        }
    }
    let stem = path
        .rsplit('/')
        .next()
        .unwrap_or(path)
        .trim_end_matches(".conf")
        .to_string();
    let (label, line) = title
        .filter(|(t, _)| !t.is_empty())
        .unwrap_or((stem.clone(), 1));
    let Some((kernel, linux_line)) = linux else {
        out.skipped.push(SkippedEntry {
            config: path.to_string(),
            line,
            label,
            reason: match efi {
                Some(e) if is_memtest(&e) => format!("memtest ({e})"),
                Some(e) => format!("efi {e} (not a Linux entry)"),
                None => "no linux line (not a Linux entry)".into(),
            },
        });
        return out;
    };
    if is_memtest(&kernel) {
        out.skipped.push(SkippedEntry {
            config: path.to_string(),
            line,
            label,
            reason: format!("memtest ({kernel})"),
        });
        return out;
    }
    out.entries.push(BootEntry {
        config: path.to_string(),
        line,
        label,
        name: stem,
        // systemd-boot sorts its entries itself: the position is not known from one file.
        menu_path: Vec::new(),
        kernel,
        initrd,
        cmdline: options
            .iter()
            .map(|o| o.0.as_str())
            .filter(|o| !o.is_empty())
            .collect::<Vec<_>>()
            .join(" "),
        cmdline_line: options.first().map(|o| o.1).unwrap_or(linux_line),
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joins_options_lines() {
        let p = parse(
            "loader/entries/nixos.conf",
            "# generated\ntitle NixOS Installer\nlinux /boot/bzImage\ninitrd /boot/initrd\n\
             options init=/nix/store/x/init console=tty0\noptions console=ttyS0,115200n8\n",
        );
        let e = &p.entries[0];
        assert_eq!(e.label, "NixOS Installer");
        assert_eq!(e.line, 2);
        assert_eq!(e.cmdline_line, 5);
        assert_eq!(
            e.cmdline,
            "init=/nix/store/x/init console=tty0 console=ttyS0,115200n8"
        );
        let p = parse("loader/entries/shell.conf", "efi /EFI/shell.efi\n");
        assert_eq!(p.skipped[0].label, "shell");
    }
}
