//! The `hooklake` binary: the CLI over the library.

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
