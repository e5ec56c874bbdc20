//! End-to-end tests on ISOs built with xorriso from small trees.

mod common;

use bootaudit_iso::{
    boot_configs, console, ConsoleStatus, IsoError, IsoImage, MediaType, Namespace, Platform,
    VolumeDescriptorKind,
};
use common::*;
use std::path::PathBuf;
use std::sync::OnceLock;

/// The two NixOS-like images are shared by the tests of this file (xorriso runs twice in all).
struct Fixtures {
    _dir: tempfile::TempDir,
    serial: PathBuf,
    no_serial: PathBuf,
    no_catalog: PathBuf,
}

fn fixtures() -> &'static Fixtures {
    static F: OnceLock<Fixtures> = OnceLock::new();
    F.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let serial = nixos_tree(true).build(dir.path(), "serial.iso", BOOT_ARGS);
        let no_serial = nixos_tree(false).build(dir.path(), "no-serial.iso", BOOT_ARGS);
        let no_catalog = nixos_tree(true).build(dir.path(), "plain.iso", &["-R", "-J"]);
        Fixtures {
            _dir: dir,
            serial,
            no_serial,
            no_catalog,
        }
    })
}

#[test]
fn reads_volume_and_tree_of_a_nixos_like_image() {
    let img = IsoImage::open(&fixtures().serial).unwrap();
    assert_eq!(img.volume_id(), "NIXOS_ISO");
    assert_eq!(img.namespace(), Namespace::RockRidge);
    assert!(img.has_joliet());
    let d = img.descriptors();
    assert_eq!(d.first(), Some(&VolumeDescriptorKind::Primary));
    assert!(d.contains(&VolumeDescriptorKind::BootRecord { el_torito: true }));
    assert!(d.contains(&VolumeDescriptorKind::Supplementary { joliet: true }));
    assert_eq!(d.last(), Some(&VolumeDescriptorKind::Terminator));

    let paths: Vec<String> = img
        .walk()
        .unwrap()
        .iter()
        .map(|e| e.path().to_string())
        .collect();
    for want in [
        "EFI/BOOT/grub.cfg",
        "EFI/BOOT/BOOTX64.EFI",
        "boot/bzImage",
        "boot/grub/loopback.cfg",
        "isolinux/isolinux.cfg",
        "loader/entries/nixos.conf",
    ] {
        assert!(
            paths.iter().any(|p| p == want),
            "{want} missing from {paths:?}"
        );
    }

    // Rock Ridge names, looked up ignoring case.
    let e = img.find("/efi/boot/GRUB.CFG").unwrap();
    assert_eq!(e.path(), "EFI/BOOT/grub.cfg");
    assert!(!e.is_dir());
    let text = String::from_utf8(img.read_file("efi/boot/grub.cfg").unwrap()).unwrap();
    assert!(text.starts_with("set timeout=10"));
    assert_eq!(img.read_file("boot/bzImage").unwrap(), vec![0x4d; 3000]);
    assert!(matches!(
        img.find("boot/nope"),
        Err(IsoError::NotFound { .. })
    ));
    assert!(matches!(
        img.read_file("boot"),
        Err(IsoError::NotAFile { .. })
    ));
    let listed = img.list_dir("/Boot/Grub").unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].path(), "boot/grub/loopback.cfg");
    let big = img.find("boot/efi.img").unwrap();
    assert!(matches!(
        img.read_entry(&big, 1024),
        Err(IsoError::TooLarge { .. })
    ));
}

#[test]
fn boot_catalog_lists_bios_and_uefi_entries() {
    let img = IsoImage::open(&fixtures().serial).unwrap();
    let cat = img.boot_catalog().unwrap().expect("catalog");
    assert!(cat.has_bios() && cat.has_uefi(), "{cat:#?}");
    let bios = cat.entries_for(Platform::Bios).next().unwrap();
    assert!(bios.bootable);
    assert_eq!(bios.media, MediaType::NoEmulation);
    assert_eq!(bios.sector_count, 4);
    assert_eq!(bios.section, 0);
    assert_eq!(bios.image_path.as_deref(), Some("isolinux/isolinux.bin"));
    let uefi = cat.entries_for(Platform::Uefi).next().unwrap();
    assert!(uefi.bootable);
    assert!(uefi.section >= 1);
    assert_eq!(uefi.image_path.as_deref(), Some("boot/efi.img"));
    assert_eq!(Some(cat.sector), img.boot_catalog_sector());
    let line = bios.to_string();
    assert!(
        line.starts_with("BIOS, bootable, no emulation, isolinux/isolinux.bin at sector "),
        "{line}"
    );
    assert!(line.ends_with(" (4 × 512 bytes loaded)"), "{line}");
}

#[test]
fn image_without_boot_record_has_no_catalog() {
    let img = IsoImage::open(&fixtures().no_catalog).unwrap();
    assert!(img.boot_catalog().unwrap().is_none());
    assert!(bootaudit_iso::NO_BOOT_CATALOG.starts_with("no El Torito boot catalog"));
    // The configs are still readable.
    assert!(!boot_configs(&img).unwrap().entries().is_empty());
}

#[test]
fn serial_console_everywhere_passes_with_a_warning_for_loopback() {
    let img = IsoImage::open(&fixtures().serial).unwrap();
    let scan = boot_configs(&img).unwrap();
    assert!(scan.warnings.is_empty(), "{:?}", scan.warnings);
    let mut paths: Vec<&str> = scan.configs.iter().map(|c| c.path.as_str()).collect();
    paths.sort();
    assert_eq!(
        paths,
        vec![
            "EFI/BOOT/grub.cfg",
            "boot/grub/loopback.cfg",
            "boot/menus/extra.cfg",
            "isolinux/isolinux.cfg",
            "loader/entries/nixos.conf"
        ]
    );
    let entries = scan.entries();
    assert_eq!(entries.len(), 6, "{entries:#?}");
    let skipped: Vec<String> = scan.skipped().iter().map(|s| s.reason.clone()).collect();
    assert_eq!(skipped.len(), 3, "{skipped:?}");
    assert!(skipped.iter().any(|r| r.starts_with("memtest")));
    assert!(skipped
        .iter()
        .any(|r| r.starts_with("COM32 module hdt.c32")));
    assert!(skipped.iter().any(|r| r.starts_with("fwsetup")));

    let grub = entries
        .iter()
        .find(|e| e.config == "EFI/BOOT/grub.cfg")
        .unwrap();
    assert_eq!((grub.line, grub.cmdline_line), (5, 6));
    assert_eq!(grub.kernel, "/boot/bzImage");
    assert!(grub.cmdline.starts_with("${isoboot} init=/nix/store/"));
    assert!(grub.cmdline.ends_with("console=ttyS0,115200n8 loglevel=4"));
    let sd = entries
        .iter()
        .find(|e| e.config.starts_with("loader/"))
        .unwrap();
    assert_eq!(sd.cmdline_line, 4);
    assert!(console::analyse(&sd.cmdline, "ttyS0").port_last);

    let v = console::judge(&entries, "ttyS0");
    assert_eq!(v.status, ConsoleStatus::Pass, "{v:#?}");
    assert!(v.is_pass());
    assert_eq!(v.checked, 6);
    assert_eq!(v.warnings.len(), 1, "{v:#?}");
    let w = v.warnings[0].to_string();
    assert!(
        w.starts_with("boot/grub/loopback.cfg:1 'NixOS 25.05 Installer (loopback)': ttyS0 is not the last console="),
        "{w}"
    );
    assert!(w.contains("tty0 /dev/console"), "{w}");
}

#[test]
fn missing_serial_console_fails_naming_each_entry() {
    let img = IsoImage::open(&fixtures().no_serial).unwrap();
    let scan = boot_configs(&img).unwrap();
    let v = console::judge(&scan.entries(), "ttyS0");
    assert_eq!(v.status, ConsoleStatus::Fail);
    let failures: Vec<String> = v.failures.iter().map(|f| f.to_string()).collect();
    assert_eq!(failures.len(), 3, "{failures:#?}");
    assert!(failures[0].starts_with("isolinux/isolinux.cfg:11 'NixOS 25.05 Installer': kernel command line has no console=ttyS0 (console=tty0)"), "{}", failures[0]);
    // The trap: its menu label mentions console=ttyS0, its command line does not.
    assert!(
        failures[1].starts_with(
            "isolinux/isolinux.cfg:17 'NixOS 25.05 Installer (serial console=ttyS0,115200n8)'"
        ),
        "{}",
        failures[1]
    );
    assert!(
        failures[2].starts_with("boot/menus/extra.cfg:4 "),
        "{}",
        failures[2]
    );
    // The GRUB and systemd-boot entries are fine; loopback still warns.
    assert_eq!(v.warnings.len(), 1);
}

#[test]
fn no_linux_entries_is_not_a_pass() {
    let v = console::judge(&[], "ttyS0");
    assert_eq!(v.status, ConsoleStatus::NoEntries);
    assert!(!v.is_pass());
}

fn bytes_of(path: &PathBuf) -> Vec<u8> {
    std::fs::read(path).unwrap()
}

#[test]
fn truncated_images_fail_with_a_cut_short_message() {
    let full = bytes_of(&fixtures().serial);
    let dir = tempfile::tempdir().unwrap();
    for len in [full.len() / 2, 40 * 1024] {
        let p = dir.path().join(format!("cut-{len}.iso"));
        std::fs::write(&p, &full[..len]).unwrap();
        let err = IsoImage::open(&p).unwrap_err();
        assert!(matches!(err, IsoError::VolumeTruncated { .. }), "{err:?}");
        let msg = err.to_string();
        assert!(
            msg.starts_with("truncated: ") && msg.contains("cut short"),
            "{msg}"
        );
    }
    // Cut inside the volume descriptors.
    let err = IsoImage::from_bytes(full[..17 * 2048 + 100].to_vec()).unwrap_err();
    assert!(matches!(err, IsoError::Truncated { .. }), "{err:?}");
}

#[test]
fn truncated_directory_extent_names_the_sector() {
    // Keep the file consistent with its volume size but cut the directories off.
    let mut bytes = bytes_of(&fixtures().serial);
    let pvd = 16 * 2048;
    let root = u32::from_le_bytes(bytes[pvd + 158..pvd + 162].try_into().unwrap()) as usize;
    bytes.truncate(root * 2048);
    let sectors = (root as u32).to_le_bytes();
    bytes[pvd + 80..pvd + 84].copy_from_slice(&sectors);
    bytes[pvd + 84..pvd + 88].copy_from_slice(&(root as u32).to_be_bytes());
    let msg = IsoImage::from_bytes(bytes).unwrap_err().to_string();
    assert_eq!(
        msg,
        format!(
            "truncated: root directory at sector {root} beyond end of file ({} bytes) — the \
             download or build was cut short",
            root * 2048
        )
    );
}

#[test]
fn non_iso_inputs_fail_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.iso");
    std::fs::write(&empty, b"").unwrap();
    let err = IsoImage::open(&empty).unwrap_err();
    assert!(matches!(err, IsoError::Empty), "{err:?}");
    assert!(err.to_string().contains("empty"));

    let text = dir.path().join("notes.iso");
    std::fs::write(&text, "not an image\n".repeat(5000)).unwrap();
    let msg = IsoImage::open(&text).unwrap_err().to_string();
    assert!(
        msg.starts_with("not an ISO 9660 image: no CD001 at sector 16"),
        "{msg}"
    );
    assert!(msg.ends_with("is this the right file?"), "{msg}");

    let zeros = dir.path().join("zeros.iso");
    std::fs::write(&zeros, vec![0u8; 1 << 20]).unwrap();
    assert!(matches!(
        IsoImage::open(&zeros),
        Err(IsoError::NotIso { .. })
    ));

    let small = dir.path().join("small.iso");
    std::fs::write(&small, [1u8, 2, 3]).unwrap();
    assert!(matches!(
        IsoImage::open(&small),
        Err(IsoError::TooSmall { .. })
    ));

    let missing = dir.path().join("missing.iso");
    let msg = IsoImage::open(&missing).unwrap_err().to_string();
    assert!(
        msg.starts_with("cannot read ") && msg.contains("missing.iso"),
        "{msg}"
    );
    assert!(matches!(
        IsoImage::open(dir.path()),
        Err(IsoError::Io { .. })
    ));
}

#[test]
fn joliet_only_and_plain_iso9660_names() {
    let t = Tree::new();
    t.file(
        "isolinux/isolinux.cfg",
        "LABEL a\nLINUX /boot/vmlinuz\nAPPEND console=ttyS0\n",
    );
    t.file("Docs/A Long Mixed-Case Name.txt", "hello");
    t.file(
        "EFI/boot/grub.cfg",
        "menuentry x { linux /k console=ttyS0 }\n",
    );
    let dir = tempfile::tempdir().unwrap();

    let joliet =
        IsoImage::open(t.build(dir.path(), "j.iso", &["--norock", "-J", "-joliet-long"])).unwrap();
    assert_eq!(joliet.namespace(), Namespace::Joliet);
    assert!(joliet
        .walk()
        .unwrap()
        .iter()
        .any(|e| e.path() == "Docs/A Long Mixed-Case Name.txt"));
    assert_eq!(
        joliet.read_file("docs/a long mixed-case name.TXT").unwrap(),
        b"hello"
    );
    let scan = boot_configs(&joliet).unwrap();
    assert_eq!(scan.entries().len(), 2);
    assert!(console::judge(&scan.entries(), "ttyS0").is_pass());

    let plain = IsoImage::open(t.build(dir.path(), "p.iso", &["--norock"])).unwrap();
    assert_eq!(plain.namespace(), Namespace::Iso9660);
    let paths: Vec<String> = plain
        .walk()
        .unwrap()
        .iter()
        .map(|e| e.path().to_string())
        .collect();
    assert!(
        paths.contains(&"ISOLINUX/ISOLINUX.CFG".to_string()),
        "{paths:?}"
    );
    assert_eq!(
        plain.read_file("isolinux/isolinux.cfg").unwrap(),
        b"LABEL a\nLINUX /boot/vmlinuz\nAPPEND console=ttyS0\n"
    );
    assert_eq!(boot_configs(&plain).unwrap().entries().len(), 2);
}

#[test]
fn deep_directories_are_walked() {
    let t = Tree::new();
    let deep = "l1/l2/l3/l4/l5/l6/l7/l8/l9/l10/l11/l12";
    t.file(&format!("{deep}/Leaf.cfg"), "deep");
    let dir = tempfile::tempdir().unwrap();
    let no_native: &[&str] = &[];
    // The last one relocates the levels past 8 into RR_MOVED, as ISO 9660 demands, so the
    // Rock Ridge view is stitched together from CL/RE entries.
    let relocate: &[&str] = &["-compliance", "deep_paths_off"];
    for (name, native, args) in [
        ("rr.iso", no_native, &["-R"][..]),
        ("j.iso", no_native, &["--norock", "-J"][..]),
        ("plain.iso", no_native, &["--norock"][..]),
        (
            "reloc.iso",
            relocate,
            &["-R", "-rr_reloc_dir", "RR_MOVED"][..],
        ),
    ] {
        let img = IsoImage::open(t.build_with(native, dir.path(), name, args)).unwrap();
        let want = format!("{deep}/Leaf.cfg");
        let files = img.walk().unwrap();
        assert!(
            files.iter().any(|e| e.path().eq_ignore_ascii_case(&want)),
            "{name}: {files:#?}"
        );
        assert_eq!(img.read_file(&want).unwrap(), b"deep", "{name}");
        if name == "reloc.iso" {
            // The relocated directories appear only at their real place.
            assert!(
                files.iter().all(|e| !e.path().contains("RR_MOVED")),
                "{files:#?}"
            );
            assert_eq!(files.len(), 13, "{files:#?}");
        }
    }
}

#[test]
fn directory_cycles_terminate() {
    let t = Tree::new();
    t.file("boot/x/y.cfg", "y");
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = std::fs::read(t.build(dir.path(), "c.iso", &["-R"])).unwrap();
    let pvd = 16 * 2048;
    let root = u32::from_le_bytes(bytes[pvd + 158..pvd + 162].try_into().unwrap());
    // Point the "BOOT" record in the root directory back at the root itself.
    let start = root as usize * 2048;
    let mut off = start;
    let mut patched = false;
    while off < start + 2048 && bytes[off] != 0 {
        let len = bytes[off] as usize;
        let name_len = bytes[off + 32] as usize;
        if &bytes[off + 33..off + 33 + name_len] == b"BOOT" {
            bytes[off + 2..off + 6].copy_from_slice(&root.to_le_bytes());
            bytes[off + 6..off + 10].copy_from_slice(&root.to_be_bytes());
            patched = true;
        }
        off += len;
    }
    assert!(patched);
    let img = IsoImage::from_bytes(bytes).unwrap();
    let files = img.walk().unwrap();
    assert!(files.len() < 20, "{files:#?}");
    // A lookup through the loop is bounded by the path length.
    let _ = img.find("boot/boot/boot/boot/boot/x");
}

/// Cross-check against xorriso's own reader: the same files and the same El Torito images.
#[test]
fn walk_and_catalog_agree_with_xorriso() {
    let path = &fixtures().serial;
    let img = IsoImage::open(path).unwrap();
    let out = std::process::Command::new(xorriso())
        .arg("-indev")
        .arg(path)
        .args(["-find", "/", "--", "-report_el_torito", "plain"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let mut theirs: Vec<String> = stdout
        .lines()
        .filter(|l| l.starts_with("'/") && l.len() > 3)
        .map(|l| l.trim_matches('\'').trim_start_matches('/').to_string())
        .collect();
    theirs.sort();
    let ours: Vec<String> = img
        .walk()
        .unwrap()
        .iter()
        .map(|e| e.path().to_string())
        .collect();
    assert_eq!(ours, theirs);

    // "El Torito boot img :   1  BIOS  y   none  0x0000  0x00      4        2007"
    let theirs: Vec<(String, u16, u32)> = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("El Torito boot img :"))
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (
                f[1].to_string(),
                f[6].parse().unwrap(),
                f[7].parse().unwrap(),
            )
        })
        .collect();
    let cat = img.boot_catalog().unwrap().unwrap();
    let ours: Vec<(String, u16, u32)> = cat
        .entries
        .iter()
        .map(|e| (e.platform.to_string(), e.sector_count, e.load_rba))
        .collect();
    assert_eq!(ours, theirs);
}
