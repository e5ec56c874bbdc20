//! Test fixtures: small trees turned into ISOs with `xorriso -as mkisofs` at test time.
//!
//! xorriso is a test-time tool only (the library never runs it). When it is missing the tests
//! fail loudly instead of passing without having checked anything.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

pub fn xorriso() -> PathBuf {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("xorriso"))
            .find(|p| p.is_file())
    });
    found.unwrap_or_else(|| {
        panic!(
            "xorriso is not installed, and these tests build their ISO images with it: \
             install it (Debian/Ubuntu: `apt-get install xorriso`) and run the tests again"
        )
    })
}

/// A directory tree to be made into an ISO.
pub struct Tree {
    pub dir: tempfile::TempDir,
}

impl Tree {
    pub fn new() -> Tree {
        Tree {
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    pub fn file(&self, rel: &str, content: impl AsRef<[u8]>) -> &Self {
        let p = self.dir.path().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, content).unwrap();
        self
    }

    /// Runs `xorriso -as mkisofs ARGS -o OUT TREE` and returns the image bytes' path.
    pub fn build(&self, out_dir: &Path, name: &str, args: &[&str]) -> PathBuf {
        self.build_with(&[], out_dir, name, args)
    }

    /// Like [`Tree::build`], with native xorriso options before `-as mkisofs`.
    pub fn build_with(
        &self,
        native: &[&str],
        out_dir: &Path,
        name: &str,
        args: &[&str],
    ) -> PathBuf {
        let out = out_dir.join(name);
        let res = Command::new(xorriso())
            .args(native)
            .arg("-as")
            .arg("mkisofs")
            .arg("-quiet")
            .args(args)
            .arg("-o")
            .arg(&out)
            .arg(self.dir.path())
            .output()
            .expect("run xorriso");
        assert!(
            res.status.success(),
            "xorriso failed: {}\n{}",
            res.status,
            String::from_utf8_lossy(&res.stderr)
        );
        out
    }
}

/// isolinux.bin from the isolinux package when installed; any 2 KiB file otherwise (xorriso
/// does not look inside it, and we never boot it).
pub fn isolinux_bin() -> Vec<u8> {
    std::fs::read("/usr/lib/ISOLINUX/isolinux.bin").unwrap_or_else(|_| vec![0x90; 2048])
}

pub const STORE: &str = "/nix/store/0123456789abcdfghijklmnpqrsvwxyz-nixos-system-nixos-25.05";

/// A NixOS-installer-like tree. `serial`: whether the isolinux entries send the console to
/// ttyS0 (the GRUB and systemd-boot configs always do; loopback.cfg has ttyS0 *not last*).
pub fn nixos_tree(serial: bool) -> Tree {
    let t = Tree::new();
    let consoles = if serial {
        "console=tty0 console=ttyS0,115200n8"
    } else {
        "console=tty0"
    };
    t.file("isolinux/isolinux.bin", isolinux_bin());
    t.file(
        "isolinux/isolinux.cfg",
        format!(
            "SERIAL 0 115200
TIMEOUT 100
UI vesamenu.c32
MENU TITLE NixOS
DEFAULT boot

# Menu entries
LABEL boot
MENU LABEL NixOS 25.05 Installer
LINUX /boot/bzImage
APPEND init={STORE}/init root=LABEL=nixos-minimal {consoles} loglevel=4
INITRD /boot/initrd

LABEL boot-serial
MENU LABEL NixOS 25.05 Installer (serial console=ttyS0,115200n8)
LINUX /boot/bzImage
APPEND init={STORE}/init root=LABEL=nixos-minimal {consoles} loglevel=4
INITRD /boot/initrd

LABEL memtest
MENU LABEL Memtest86+
LINUX /boot/memtest.bin

LABEL hdt
MENU LABEL Hardware Detection Tool
COM32 hdt.c32

INCLUDE /boot/menus/extra.cfg
"
        ),
    );
    // Reached only through INCLUDE; includes isolinux.cfg back (a loop to survive).
    t.file(
        "boot/menus/extra.cfg",
        format!(
            "LABEL nomodeset
MENU LABEL NixOS 25.05 Installer (nomodeset)
LINUX /boot/bzImage
APPEND init={STORE}/init nomodeset {consoles}
INITRD /boot/initrd
INCLUDE /isolinux/isolinux.cfg
"
        ),
    );
    t.file(
        "EFI/BOOT/grub.cfg",
        format!(
            "set timeout=10
insmod all_video
if [ \"$grub_platform\" = efi ]; then set isoboot=findiso; fi

menuentry 'NixOS 25.05 Installer' --class installer {{
  linux /boot/bzImage ${{isoboot}} init={STORE}/init \\
    root=LABEL=nixos-minimal console=tty0 console=ttyS0,115200n8 loglevel=4
  initrd /boot/initrd
}}
menuentry 'UEFI Firmware Settings' --class settings {{
  fwsetup
}}
"
        ),
    );
    t.file("EFI/BOOT/BOOTX64.EFI", vec![0u8; 4096]);
    t.file(
        "boot/grub/loopback.cfg",
        format!(
            "menuentry 'NixOS 25.05 Installer (loopback)' {{ linux /boot/bzImage ${{isoboot}} init={STORE}/init console=ttyS0,115200n8 console=tty0 }}\n"
        ),
    );
    t.file(
        "loader/entries/nixos.conf",
        format!(
            "title NixOS 25.05 Installer\nlinux /boot/bzImage\ninitrd /boot/initrd\n\
             options init={STORE}/init\noptions console=tty0 console=ttyS0,115200n8\n"
        ),
    );
    t.file("boot/bzImage", vec![0x4d; 3000]);
    t.file("boot/initrd", vec![0x1f; 5000]);
    t.file("boot/memtest.bin", vec![0u8; 100]);
    t.file("boot/efi.img", vec![0u8; 64 * 1024]);
    t
}

pub const BOOT_ARGS: &[&str] = &[
    "-R",
    "-J",
    "-V",
    "NIXOS_ISO",
    "-b",
    "isolinux/isolinux.bin",
    "-c",
    "isolinux/boot.cat",
    "-no-emul-boot",
    "-boot-load-size",
    "4",
    "-boot-info-table",
    "-eltorito-alt-boot",
    "-e",
    "boot/efi.img",
    "-no-emul-boot",
];
