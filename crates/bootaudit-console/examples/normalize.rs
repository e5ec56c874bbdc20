//! Print the normalised text of raw serial logs: `cargo run -p bootaudit-console --example
//! normalize -- FILE…` — handy to see what `expect` patterns will be matched against.

fn main() {
    for path in std::env::args().skip(1) {
        match std::fs::read(&path) {
            Ok(raw) => print!("{}", bootaudit_console::Normalizer::normalize_all(&raw)),
            Err(e) => eprintln!("{path}: {e}"),
        }
    }
}
