//! The `bootaudit` binary: parse the command line, run, exit with SPEC's code.

use clap::Parser;

fn main() {
    let cli = bootaudit::cli::Cli::parse();
    std::process::exit(bootaudit::app::main(cli));
}
