//! The `autoconv` binary: a thin shell over the library.

use std::process::ExitCode;

fn main() -> ExitCode {
    match autoconv::cli::main() {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("autoconv: error: {e:#}");
            ExitCode::from(autoconv::cli::exit::ERROR)
        }
    }
}
