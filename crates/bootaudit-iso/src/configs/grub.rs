//! GRUB 2 scripts (`grub.cfg`, `loopback.cfg`).
//!
//! A small lexer that follows GRUB's shell-like rules closely enough for boot menus: `#`
//! comments, `'…'` literal quotes, `"…"` quotes with `\` escapes, backslash-newline
//! continuations, `;` and newlines as separators, and stand-alone `{` / `}` as block braces
//! (so `menuentry 'x' { linux /k a b }` on one line works). `$var` / `${var}` are kept as
//! written: we do not evaluate the script, and a variable can hide a `console=` (the verdict
//! then fails on the literal text, which is the safe side).
//!
//! Each `linux`/`linuxefi`/`linux16` command inside a `menuentry` (or `hiddenentry`) is a
//! Linux entry; a `menuentry` without one (chainloader, memtest via multiboot, reboot, fwsetup) is skipped.

use super::{is_memtest, BootEntry, ConfigWarning, ParsedConfig, SkippedEntry};

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    /// A word: its unquoted text, its line, and whether any part was quoted.
    Word(String, usize, bool),
    /// `;` or newline.
    Sep,
}

/// The word being built by [`lex`].
struct WordBuf {
    text: String,
    active: bool,
    quoted: bool,
    line: usize,
}

impl WordBuf {
    fn start(&mut self, line: usize) {
        if !self.active {
            self.active = true;
            self.quoted = false;
            self.line = line;
        }
    }
    fn flush(&mut self, toks: &mut Vec<Tok>) {
        if self.active {
            toks.push(Tok::Word(
                std::mem::take(&mut self.text),
                self.line,
                self.quoted,
            ));
            self.active = false;
        }
    }
}

fn lex(text: &str, path: &str, warnings: &mut Vec<ConfigWarning>) -> Vec<Tok> {
    let chars: Vec<char> = text.chars().collect();
    let mut toks = Vec::new();
    let mut line = 1usize;
    let mut i = 0usize;
    let mut w = WordBuf {
        text: String::new(),
        active: false,
        quoted: false,
        line: 1,
    };

    while i < chars.len() {
        let c = chars[i];
        match c {
            '\n' => {
                w.flush(&mut toks);
                toks.push(Tok::Sep);
                line += 1;
                i += 1;
            }
            ' ' | '\t' | '\r' => {
                w.flush(&mut toks);
                i += 1;
            }
            ';' => {
                w.flush(&mut toks);
                toks.push(Tok::Sep);
                i += 1;
            }
            '#' if !w.active => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
            }
            '\\' => {
                match chars.get(i + 1) {
                    Some('\n') => line += 1, // continuation: the word goes on
                    Some(&n) => {
                        w.start(line);
                        w.text.push(n);
                    }
                    None => {}
                }
                i += 2;
            }
            '\'' => {
                w.start(line);
                w.quoted = true;
                let open_line = line;
                i += 1;
                loop {
                    match chars.get(i) {
                        None => {
                            warnings.push(ConfigWarning {
                                config: path.to_string(),
                                line: Some(open_line),
                                message: "unterminated ' quote".into(),
                            });
                            break;
                        }
                        Some('\'') => {
                            i += 1;
                            break;
                        }
                        Some(&ch) => {
                            if ch == '\n' {
                                line += 1;
                            }
                            w.text.push(ch);
                            i += 1;
                        }
                    }
                }
            }
            '"' => {
                w.start(line);
                w.quoted = true;
                let open_line = line;
                i += 1;
                loop {
                    match chars.get(i) {
                        None => {
                            warnings.push(ConfigWarning {
                                config: path.to_string(),
                                line: Some(open_line),
                                message: "unterminated \" quote".into(),
                            });
                            break;
                        }
                        Some('"') => {
                            i += 1;
                            break;
                        }
                        Some('\\') => match chars.get(i + 1) {
                            Some('\n') => {
                                line += 1;
                                i += 2;
                            }
                            Some(&n @ ('$' | '"' | '\\')) => {
                                w.text.push(n);
                                i += 2;
                            }
                            _ => {
                                w.text.push('\\');
                                i += 1;
                            }
                        },
                        Some(&ch) => {
                            if ch == '\n' {
                                line += 1;
                            }
                            w.text.push(ch);
                            i += 1;
                        }
                    }
                }
            }
            other => {
                w.start(line);
                w.text.push(other);
                i += 1;
            }
        }
    }
    w.flush(&mut toks);
    toks
}

/// An open `{ … }` block.
enum Block {
    Menu(MenuEntry),
    Submenu,
    /// Any other braced block (`function`, `if` bodies do not brace).
    Other,
}

struct Linux {
    kernel: String,
    args: Vec<String>,
    line: usize,
}

struct MenuEntry {
    line: usize,
    title: String,
    menu_path: Vec<usize>,
    linux: Vec<Linux>,
    initrd: Vec<String>,
    other: Option<String>,
}

fn title_of(header: &[(String, usize, bool)]) -> String {
    // GRUB puts the title first; tolerate options before it.
    let mut skip_next = false;
    for (w, _, _) in header.iter().skip(1) {
        if skip_next {
            skip_next = false;
            continue;
        }
        if w.starts_with("--") {
            skip_next = !w.contains('=')
                && matches!(
                    w.as_str(),
                    "--class" | "--users" | "--hotkey" | "--id" | "--source"
                );
            continue;
        }
        if w == "{" {
            break;
        }
        return w.clone();
    }
    "(untitled)".into()
}

pub(super) fn parse(path: &str, text: &str) -> ParsedConfig {
    let mut out = ParsedConfig::default();
    let toks = lex(text, path, &mut out.warnings);
    let mut stack: Vec<Block> = Vec::new();
    let mut cmd: Vec<(String, usize, bool)> = Vec::new();
    let mut top_level: Option<MenuEntry> = None;
    // Items shown so far in each open menu level, and the open submenus' positions.
    let mut shown: Vec<usize> = vec![0];
    let mut submenus: Vec<usize> = Vec::new();

    for tok in toks.into_iter().chain(std::iter::once(Tok::Sep)) {
        match tok {
            Tok::Word(w, line, false) if w == "{" => {
                let header = std::mem::take(&mut cmd);
                let name = header.first().map(|h| h.0.as_str()).unwrap_or("");
                let mut next_item = || {
                    let level = shown.last_mut().expect("the top level is never closed");
                    *level += 1;
                    *level - 1
                };
                stack.push(match name {
                    "menuentry" | "hiddenentry" => {
                        // A hidden entry is not in the menu: it has no position.
                        let menu_path = match name {
                            "menuentry" => {
                                let at = next_item();
                                submenus.iter().copied().chain([at]).collect()
                            }
                            _ => Vec::new(),
                        };
                        Block::Menu(MenuEntry {
                            line: header.first().map(|h| h.1).unwrap_or(line),
                            title: title_of(&header),
                            menu_path,
                            linux: Vec::new(),
                            initrd: Vec::new(),
                            other: None,
                        })
                    }
                    "submenu" => {
                        let at = next_item();
                        submenus.push(at);
                        shown.push(0);
                        Block::Submenu
                    }
                    _ => Block::Other,
                });
            }
            Tok::Word(w, line, false) if w == "}" => {
                let c = std::mem::take(&mut cmd);
                command(&c, &mut stack, &mut top_level, &mut out);
                match stack.pop() {
                    Some(Block::Menu(m)) => finish(path, m, &mut out),
                    Some(Block::Submenu) => {
                        submenus.pop();
                        shown.pop();
                    }
                    Some(Block::Other) => {}
                    None => out.warnings.push(ConfigWarning {
                        config: path.to_string(),
                        line: Some(line),
                        message: "'}' without a matching '{'".into(),
                    }),
                }
            }
            Tok::Word(w, line, q) => cmd.push((w, line, q)),
            Tok::Sep => {
                let c = std::mem::take(&mut cmd);
                command(&c, &mut stack, &mut top_level, &mut out);
            }
        }
    }
    if !stack.is_empty() {
        out.warnings.push(ConfigWarning {
            config: path.to_string(),
            line: None,
            message: format!(
                "{} block(s) not closed with '}}' at end of file",
                stack.len()
            ),
        });
    }
    while let Some(b) = stack.pop() {
        if let Block::Menu(m) = b {
            finish(path, m, &mut out);
        }
    }
    if let Some(m) = top_level {
        finish(path, m, &mut out);
    }
    out
}

fn command(
    words: &[(String, usize, bool)],
    stack: &mut [Block],
    top_level: &mut Option<MenuEntry>,
    out: &mut ParsedConfig,
) {
    // Shell keywords that may precede a command on the same logical line.
    let mut words = words;
    while let Some((w, _, false)) = words.first() {
        if matches!(w.as_str(), "then" | "else" | "do") {
            words = &words[1..];
        } else {
            break;
        }
    }
    let Some((name, line, _)) = words.first() else {
        return;
    };
    let args: Vec<String> = words[1..].iter().map(|w| w.0.clone()).collect();
    let at_top = stack.is_empty();
    let menu = stack.iter_mut().rev().find_map(|b| match b {
        Block::Menu(m) => Some(m),
        Block::Submenu | Block::Other => None,
    });
    match name.as_str() {
        "set" if at_top => {
            if let Some(v) = args.first().and_then(|a| a.strip_prefix("default=")) {
                out.default = Some(v.trim_matches(['"', '\'']).to_string());
            }
        }
        "source" | "configfile" => {
            if let Some(target) = args.first() {
                if !target.contains('$') {
                    out.includes.push((*line, target.clone()));
                }
            }
        }
        "linux" | "linuxefi" | "linux16" => {
            let m = match menu {
                Some(m) => m,
                None => top_level.get_or_insert_with(|| MenuEntry {
                    line: *line,
                    title: "(outside any menuentry)".into(),
                    menu_path: Vec::new(),
                    linux: Vec::new(),
                    initrd: Vec::new(),
                    other: None,
                }),
            };
            m.linux.push(Linux {
                kernel: args.first().cloned().unwrap_or_default(),
                args: args.iter().skip(1).cloned().collect(),
                line: *line,
            });
        }
        "initrd" | "initrdefi" | "initrd16" => {
            if let Some(m) = menu {
                m.initrd.extend(args);
            }
        }
        other @ ("chainloader" | "multiboot" | "multiboot2" | "kfreebsd" | "knetbsd"
        | "appleloader" | "reboot" | "halt" | "fwsetup" | "exit" | "efi") => {
            if let Some(m) = menu {
                if m.other.is_none() {
                    m.other = Some(match args.first() {
                        Some(a) => format!("{other} {a}"),
                        None => other.to_string(),
                    });
                }
            }
        }
        _ => {}
    }
}

fn finish(path: &str, m: MenuEntry, out: &mut ParsedConfig) {
    let skip = |reason: String| SkippedEntry {
        config: path.to_string(),
        line: m.line,
        label: m.title.clone(),
        reason,
    };
    if m.linux.is_empty() {
        out.skipped.push(skip(match &m.other {
            Some(o) if is_memtest(o) => format!("memtest ({o})"),
            Some(o) => format!("{o} (not a Linux entry)"),
            None => "no linux command (not a Linux entry)".into(),
        }));
        return;
    }
    for l in &m.linux {
        if is_memtest(&l.kernel) {
            out.skipped.push(skip(format!("memtest ({})", l.kernel)));
            continue;
        }
        out.entries.push(BootEntry {
            config: path.to_string(),
            line: m.line,
            label: m.title.clone(),
            name: m.title.clone(),
            menu_path: m.menu_path.clone(),
            kernel: l.kernel.clone(),
            initrd: m.initrd.clone(),
            cmdline: l.args.join(" "),
            cmdline_line: l.line,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_menuentry_and_blocks() {
        let text = "\
set timeout=10
# menuentry 'commented' { linux /no console=ttyS0 }
menuentry 'NixOS 25.05 Installer' --class nixos { linux /boot/bzImage ${isoboot} init=/nix/store/abc/init console=ttyS0,115200n8 console=tty0 }
submenu 'More' {
  menuentry \"NixOS (debug)\" --class nixos {
    linux /boot/bzImage \\
      init=/nix/store/abc/init \\
      console=ttyS0,115200n8 'boot.shell_on_fail'
    initrd /boot/initrd
  }
  menuentry 'Memtest86+' { linux /boot/memtest.bin }
  menuentry 'Windows' { chainloader /EFI/Microsoft/bootmgfw.efi }
  menuentry 'Firmware' { fwsetup }
  menuentry 'Serial console=ttyS0,115200n8' --class terminal {
    serial --unit=0 --speed=115200; terminal_output serial
  }
}
source /EFI/BOOT/grub.cfg
";
        let p = parse("boot/grub/loopback.cfg", text);
        assert!(p.warnings.is_empty(), "{:?}", p.warnings);
        assert_eq!(p.entries.len(), 2, "{p:#?}");
        let a = &p.entries[0];
        assert_eq!(a.label, "NixOS 25.05 Installer");
        assert_eq!(a.line, 3);
        assert_eq!(a.kernel, "/boot/bzImage");
        assert_eq!(
            a.cmdline,
            "${isoboot} init=/nix/store/abc/init console=ttyS0,115200n8 console=tty0"
        );
        let b = &p.entries[1];
        assert_eq!(b.label, "NixOS (debug)");
        assert_eq!(b.line, 5);
        assert_eq!(b.cmdline_line, 6);
        assert_eq!(
            b.cmdline,
            "init=/nix/store/abc/init console=ttyS0,115200n8 boot.shell_on_fail"
        );
        assert_eq!(b.initrd, vec!["/boot/initrd"]);
        let reasons: Vec<&str> = p.skipped.iter().map(|s| s.reason.as_str()).collect();
        assert_eq!(reasons.len(), 4, "{reasons:?}");
        assert!(reasons[0].starts_with("memtest"));
        assert!(reasons[1].starts_with("chainloader"));
        assert!(reasons[2].starts_with("fwsetup"));
        // A title naming the serial console is no kernel command line.
        assert_eq!(reasons[3], "no linux command (not a Linux entry)");
        assert_eq!(p.includes, vec![(18, "/EFI/BOOT/grub.cfg".to_string())]);
    }

    #[test]
    fn unbalanced_input_warns() {
        let p = parse("g.cfg", "}\nmenuentry 'x' {\n linux /k console=ttyS0\n");
        assert_eq!(p.warnings.len(), 2, "{:?}", p.warnings);
        assert_eq!(p.entries.len(), 1);
        let p = parse("g.cfg", "menuentry 'x\n");
        assert_eq!(p.warnings.len(), 1);
    }
}
