//! The `autoconv` binary: a thin shell over the library.

mod cli;

use std::process::ExitCode;

fn main() -> ExitCode {
    match cli::main() {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("autoconv: error: {e:#}");
            ExitCode::from(cli::exit::ERROR)
        }
    }
}
