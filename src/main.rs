//! The `cic-conduit` binary; see [`cic_conduit::cli`].

fn main() -> std::process::ExitCode {
    cic_conduit::cli::main()
}
