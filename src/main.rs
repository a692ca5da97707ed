//! The `ddgsd-bench` binary: the command line lives in the library's `cli`
//! module (flags, commands, exit codes).
fn main() -> std::process::ExitCode {
    ddgsd_bench::cli::main()
}
