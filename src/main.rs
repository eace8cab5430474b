//! The `autoconv` binary: a thin shell over the library.

mod cli;

use cli::out::errln;

use std::process::ExitCode;

fn main() -> ExitCode {
    let code = match cli::main() {
        Ok(code) => code,
        Err(e) => {
            errln!("autoconv: error: {}", cli::one_line(&e));
            cli::exit::ERROR
        }
    };
    // The command ran to its end whatever happened to stdout; a closed pipe is the reader's
    // choice and stays quiet, any other lost output (a full disk) is an error.
    if let Err(e) = cli::out::finish() {
        errln!("autoconv: error: writing standard output: {e}");
        return ExitCode::from(cli::exit::ERROR);
    }
    ExitCode::from(code)
}
