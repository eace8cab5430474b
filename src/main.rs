//! The `autoconv` binary: a thin shell over the library.

use std::process::ExitCode;

fn main() -> ExitCode {
    let code = match autoconv::cli::main() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("autoconv: error: {}", autoconv::cli::one_line(&e));
            autoconv::cli::exit::ERROR
        }
    };
    // The command ran to its end whatever happened to stdout; a closed pipe is the reader's
    // choice and stays quiet, any other lost output (a full disk) is an error.
    if let Err(e) = autoconv::cli::out::finish() {
        eprintln!("autoconv: error: writing standard output: {e}");
        return ExitCode::from(autoconv::cli::exit::ERROR);
    }
    ExitCode::from(code)
}
