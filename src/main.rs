use clap::Parser;

fn main() {
    let cli = bootaudit::cli::Cli::parse();
    std::process::exit(bootaudit::app::main(cli));
}
