//! The console normaliser (`bootaudit-console`, `normalize.rs`) is split-invariant: feeding
//! the raw bytes in one piece or cut at any points (chosen by the fuzzer through `arbitrary`)
//! gives the same text, also when the finished lines are taken out between pieces as replay
//! does (`take_lines`). `push` reports a change offset that no earlier text moved below.
#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use bootaudit_console::Normalizer;
use libfuzzer_sys::fuzz_target;
use std::time::Duration;
use tokio::time::Instant;

#[derive(Debug)]
struct Input<'a> {
    /// Cut points (taken modulo the input length, sorted).
    cuts: Vec<u16>,
    /// Take the finished lines out after each piece.
    take_lines: bool,
    raw: &'a [u8],
}

impl<'a> Arbitrary<'a> for Input<'a> {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        let n = u.int_in_range(0..=16u8)?;
        let mut cuts = Vec::with_capacity(n.into());
        for _ in 0..n {
            cuts.push(u16::arbitrary(u)?);
        }
        let take_lines = bool::arbitrary(u)?;
        let len = u.len();
        Ok(Input {
            cuts,
            take_lines,
            raw: u.bytes(len)?,
        })
    }
}

fuzz_target!(|input: Input<'_>| {
    let raw = input.raw;
    let whole = Normalizer::normalize_all(raw);

    let mut cuts: Vec<usize> = input
        .cuts
        .iter()
        .map(|&c| usize::from(c) % (raw.len() + 1))
        .collect();
    cuts.push(raw.len());
    cuts.sort_unstable();

    let start = Instant::now();
    let mut n = Normalizer::new();
    let mut taken = String::new();
    let mut from = 0;
    for (i, &to) in cuts.iter().enumerate() {
        let before = n.text().to_string();
        let low = n.push(&raw[from..to], start + Duration::from_millis(i as u64 * 3));
        assert!(
            low <= before.len(),
            "change offset {low} past the old text {}",
            before.len()
        );
        assert_eq!(
            n.text().as_bytes()[..low],
            before.as_bytes()[..low],
            "text before the change offset changed"
        );
        assert!(n.time_at(0).is_some() && n.time_at(n.text().len()).is_some());
        if input.take_lines {
            n.take_lines(&mut taken, false);
        }
        from = to;
    }
    n.finish();
    n.take_lines(&mut taken, true);
    assert_eq!(
        taken, whole,
        "split at {cuts:?} (take_lines: {})",
        input.take_lines
    );
});
