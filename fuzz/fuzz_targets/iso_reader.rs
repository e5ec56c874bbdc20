//! The ISO 9660 / El Torito reader of `bootaudit-iso` over arbitrary bytes: opening, the boot
//! catalog, the directory tree, lookups, file contents and the boot-config scan must end in a
//! value or an `IsoError`, never a panic, a hang or an unbounded allocation.
//!
//! The input is the image *from sector 16 on*: the system area (sectors 0–15) is only sniffed
//! for a friendlier error, so the target prepends 32 KiB of zeros and the fuzzer spends its
//! mutations on the descriptors, directories, catalog and files the reader parses.
#![no_main]

use bootaudit_iso::{boot_configs, console, IsoImage};
use libfuzzer_sys::fuzz_target;

const SYSTEM_AREA: usize = 16 * 2048;

fuzz_target!(|data: &[u8]| {
    let mut bytes = vec![0u8; SYSTEM_AREA];
    bytes.extend_from_slice(data);
    let Ok(image) = IsoImage::from_bytes(bytes) else {
        return;
    };
    let _ = format!("{image:?} {:?}", image.descriptors());
    if let Ok(Some(catalog)) = image.boot_catalog() {
        for e in &catalog.entries {
            let _ = e.to_string();
        }
        let _ = (catalog.has_bios(), catalog.has_uefi());
    }
    if let Ok(files) = image.walk() {
        for f in files.iter().take(64) {
            if f.is_dir() {
                let _ = image.list_dir(f.path());
                continue;
            }
            let read = image.read_entry(f, 1 << 20);
            // A file's declared size can exceed what one copy should take in a fuzz run.
            if f.size() <= 1 << 20 {
                let mut out = Vec::new();
                let copied = image.copy_entry(f, &mut out);
                if let (Ok(read), Ok(n)) = (&read, copied) {
                    assert_eq!(n as usize, out.len());
                    assert_eq!(read, &out, "read_entry and copy_entry disagree");
                }
            }
            // Lookups ignore case.
            let _ = image.find(&f.path().to_uppercase());
        }
    }
    for path in [
        "EFI/BOOT/grub.cfg",
        "isolinux/isolinux.cfg",
        "/",
        "a/../b/./c",
    ] {
        let _ = image.read_file(path);
    }
    let _ = image.list_dir("");
    if let Ok(scan) = boot_configs(&image) {
        let entries = scan.entries();
        for port in ["ttyS0", "hvc0"] {
            let verdict = console::judge(&entries, port);
            for f in verdict.failures.iter().chain(&verdict.warnings) {
                let _ = f.to_string();
            }
        }
        let _ = scan.skipped();
        for w in &scan.warnings {
            let _ = w.to_string();
        }
    }
});
