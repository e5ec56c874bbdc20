//! Driving a boot loader's menu over the serial console, as a person would: wait until the
//! menu shows, then move the highlight from the default entry to the chosen one and press
//! Enter (GRUB, ISOLINUX/SYSLINUX with `UI menu.c32`), or type the entry's label at
//! ISOLINUX's `boot:` prompt. The loaders read the serial line as a keyboard when their
//! config enables it (`serial 0 115200`, GRUB's `terminal_input serial`).

use super::{Dialogue, WaitError};
use regex::Regex;
use std::time::Duration;
use tokio::time::Instant;

/// Which loader draws the menu.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Loader {
    Syslinux,
    Grub,
}

/// The entry to start, as the menu knows it.
#[derive(Debug, Clone)]
pub struct MenuTarget {
    /// What the menu shows (menu label or title).
    pub label: String,
    /// What ISOLINUX's `boot:` prompt takes (the `LABEL`).
    pub name: String,
    /// Its position: an index per menu level (GRUB submenus).
    pub path: Vec<usize>,
    /// Where the highlight starts: the default entry's position.
    pub default_path: Vec<usize>,
}

const DOWN: &[u8] = b"\x1b[B";
const UP: &[u8] = b"\x1b[A";
/// Between keys: a loader polling a 115200-baud line under emulation drops keys sent at once.
const KEY_GAP: Duration = Duration::from_millis(150);

/// What the console showed when the menu was found, and what was typed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Driven {
    pub how: String,
}

/// Drive the menu to `target`. Errors: the menu never showed before `deadline`, or the
/// console failed.
pub async fn choose(
    d: &mut Dialogue,
    loader: Loader,
    target: &MenuTarget,
    deadline: Instant,
) -> Result<Driven, WaitError> {
    // A prefix of a label is enough to know the menu is drawn (it may be cut at the width).
    let prefix = |label: &str| regex::escape(&label.chars().take(24).collect::<String>());
    let mut shown = vec![Regex::new(&prefix(&target.label)).expect("escaped")];
    let boot_prompt = Regex::new(r"(?m)^boot: ?$").expect("static regex");
    if loader == Loader::Syslinux {
        shown.push(boot_prompt.clone());
    }
    shown.push(
        Regex::new(
            r"GNU GRUB|Press \[Tab\] to edit|Automatic boot in|will be booted automatically",
        )
        .expect("static regex"),
    );
    let m = d.expect(&shown, deadline).await?;
    // Let the loader finish drawing before typing.
    let _ = d
        .quiet(
            Duration::from_millis(400),
            Instant::now() + Duration::from_secs(2),
        )
        .await;
    if loader == Loader::Syslinux && m.pattern == 1 {
        d.send(format!("{}\r", target.name).as_bytes()).await?;
        return Ok(Driven {
            how: format!("typed `{}` at the boot: prompt", target.name),
        });
    }
    let mut typed = Vec::new();
    let levels = target.path.len().max(1);
    for level in 0..levels {
        let from = if level == 0 {
            target.default_path.first().copied().unwrap_or(0)
        } else {
            0
        };
        let to = target.path.get(level).copied().unwrap_or(0);
        let (key, name, n) = if to >= from {
            (DOWN, "Down", to - from)
        } else {
            (UP, "Up", from - to)
        };
        for _ in 0..n {
            d.send(key).await?;
            tokio::time::sleep(KEY_GAP).await;
        }
        d.send(b"\r").await?;
        typed.push(format!("{n}× {name}, Enter"));
        if level + 1 < levels {
            // The submenu draws before it takes keys.
            let _ = d
                .quiet(
                    Duration::from_millis(600),
                    Instant::now() + Duration::from_secs(3),
                )
                .await;
        }
    }
    Ok(Driven {
        how: format!(
            "chose '{}' in the {} menu ({})",
            target.label,
            match loader {
                Loader::Syslinux => "ISOLINUX",
                Loader::Grub => "GRUB",
            },
            typed.join("; ")
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signal::Cancel;
    use bootaudit_console::{Console, ConsoleConfig, NoiseFilter};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A scripted loader: draws its menu, then reports the keys it got.
    async fn drive(loader: Loader, screen: &'static [u8], target: MenuTarget) -> (Driven, Vec<u8>) {
        let (harness, mut guest) = tokio::io::duplex(4096);
        let console = Console::from_stream(harness, ConsoleConfig::default());
        let mut d = Dialogue::new(console, vec![], NoiseFilter::none(), Cancel::new());
        let guest_task = tokio::spawn(async move {
            guest.write_all(screen).await.unwrap();
            let mut got = Vec::new();
            let mut buf = [0u8; 64];
            while !got.ends_with(b"\r") {
                let n = guest.read(&mut buf).await.unwrap();
                got.extend_from_slice(&buf[..n]);
            }
            got
        });
        let driven = choose(
            &mut d,
            loader,
            &target,
            Instant::now() + Duration::from_secs(5),
        )
        .await
        .unwrap();
        (driven, guest_task.await.unwrap())
    }

    fn target(path: Vec<usize>, default_path: Vec<usize>) -> MenuTarget {
        MenuTarget {
            label: "installer (serial console=ttyS0,115200n8)".into(),
            name: "serial".into(),
            path,
            default_path,
        }
    }

    #[tokio::test]
    async fn moves_the_isolinux_highlight_from_the_default() {
        let screen = b"\x1b[2J\x1b[1;1H  installer\r\n  installer (serial console=ttyS0,115200n8)\r\n  Press [Tab] to edit options\r\n";
        let (driven, keys) = drive(Loader::Syslinux, screen, target(vec![1], vec![0])).await;
        assert_eq!(keys, b"\x1b[B\r");
        assert!(driven.how.contains("1× Down"), "{driven:?}");
    }

    #[tokio::test]
    async fn types_the_label_at_the_boot_prompt() {
        let (driven, keys) = drive(
            Loader::Syslinux,
            b"ISOLINUX 6.04\r\nboot: ",
            target(vec![1], vec![0]),
        )
        .await;
        assert_eq!(keys, b"serial\r");
        assert!(driven.how.contains("boot: prompt"), "{driven:?}");
    }

    #[tokio::test]
    async fn goes_up_when_the_default_is_below() {
        let screen = b"GNU GRUB  version 2.06\r\n installer\r\n";
        let (_, keys) = drive(Loader::Grub, screen, target(vec![0], vec![2])).await;
        assert_eq!(keys, b"\x1b[A\x1b[A\r");
    }
}
