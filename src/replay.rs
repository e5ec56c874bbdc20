//! `bootaudit replay`: judge a captured serial log offline (placeholder until replay lands).

use crate::cli::ReplayArgs;
use crate::exit_codes;

pub async fn run(args: ReplayArgs) -> i32 {
    eprintln!(
        "bootaudit: replay of {} is not implemented yet",
        args.serial_log.display()
    );
    exit_codes::HARNESS
}
