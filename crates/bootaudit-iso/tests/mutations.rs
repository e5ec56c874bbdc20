//! Hostile input: thousands of damaged variants of a real image must give errors or
//! (possibly odd) results — never a panic, never a hang.
//!
//! A deterministic xorshift generator rather than proptest keeps the run short and the failing
//! case reproducible from the printed seed.

mod common;

use bootaudit_iso::{boot_configs, console, parse_config, ConfigKind, IsoImage};
use std::panic::{catch_unwind, AssertUnwindSafe};

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Everything the audit does with an image.
/// Returns how far it got: 0 = open failed, 1 = opened, 2 = configs scanned.
fn exercise(bytes: Vec<u8>) -> usize {
    let Ok(img) = IsoImage::from_bytes(bytes) else {
        return 0;
    };
    let _ = img.boot_catalog();
    if let Ok(files) = img.walk() {
        for f in files.iter().take(50) {
            let _ = img.read_entry(f, 1 << 20);
        }
    }
    let _ = img.find("EFI/BOOT/grub.cfg");
    let _ = img.list_dir("isolinux");
    match boot_configs(&img) {
        Ok(scan) => {
            let _ = console::judge(&scan.entries(), "ttyS0");
            2
        }
        Err(_) => 1,
    }
}

fn image() -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let path = common::nixos_tree(true).build(dir.path(), "m.iso", common::BOOT_ARGS);
    std::fs::read(path).unwrap()
}

#[test]
fn mutated_images_never_panic() {
    let original = image();
    // Metadata (descriptors, path tables, directories, catalog, configs) sits in the first
    // sectors after the system area; mutate there, where the parser looks.
    let hot = original.len().min(80 * 2048);
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    // BOOTAUDIT_FUZZ_ROUNDS=100000 for a long run; the default keeps `cargo test` quick.
    let rounds: usize = std::env::var("BOOTAUDIT_FUZZ_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    let mut reached = [0usize; 3];
    for round in 0..rounds {
        let seed = rng.0;
        let mut bytes = original.clone();
        match round % 4 {
            // Scattered byte changes.
            0 | 1 => {
                for _ in 0..1 + rng.below(24) {
                    let pos = 16 * 2048 + rng.below(hot - 16 * 2048);
                    bytes[pos] = rng.next() as u8;
                }
            }
            // Extreme values in 32-bit fields (sizes, extents).
            2 => {
                for _ in 0..1 + rng.below(4) {
                    let pos = 16 * 2048 + rng.below(hot - 16 * 2048 - 4);
                    let v: u32 = [0, 1, 0xFFFF_FFFF, 0x8000_0000, 16, 0x7FFF][rng.below(6)];
                    bytes[pos..pos + 4].copy_from_slice(&v.to_le_bytes());
                }
            }
            // Truncation, keeping or faking the declared volume size.
            _ => {
                let len = rng.below(original.len());
                bytes.truncate(len);
            }
        }
        let r = catch_unwind(AssertUnwindSafe(|| exercise(bytes)));
        match r {
            Ok(depth) => reached[depth] += 1,
            Err(_) => panic!("panic in round {round} (rng state {seed:#x})"),
        }
    }
    // The mutations must exercise the deep parsers, not only the first sanity check.
    eprintln!(
        "rounds: {rounds}; open failed {}, opened {}, configs scanned {}",
        reached[0], reached[1], reached[2]
    );
    assert!(reached[2] > rounds / 4, "{reached:?}");
}

#[test]
fn mutated_configs_never_panic() {
    let samples = [
        "LABEL a\nMENU LABEL x\nLINUX /k\nAPPEND console=ttyS0\nINITRD /i\nTEXT HELP\nx\nENDTEXT\nINCLUDE b.cfg\n",
        "menuentry 'x' --class y { linux /k ${v} \"a b\" console=ttyS0 \\\n c }\nsubmenu s {\n}\n",
        "title t\nlinux /k\noptions console=ttyS0\noptions x\n",
    ];
    let alphabet = b"{}'\"\\\n;# $=abLK";
    let mut rng = Rng(42);
    for round in 0..3000 {
        let base = samples[round % 3].as_bytes();
        let mut b = base.to_vec();
        for _ in 0..1 + rng.below(6) {
            let pos = rng.below(b.len());
            match rng.below(3) {
                0 => b[pos] = alphabet[rng.below(alphabet.len())],
                1 => {
                    b.remove(pos);
                }
                _ => b.insert(pos, alphabet[rng.below(alphabet.len())]),
            }
        }
        let text = String::from_utf8_lossy(&b);
        for kind in [
            ConfigKind::Syslinux,
            ConfigKind::Grub,
            ConfigKind::SystemdBoot,
        ] {
            let p = parse_config(kind, "x.cfg", &text);
            let _ = console::judge(&p.entries, "ttyS0");
        }
    }
}
