//! The `cic-conduit` binary; see [`cic_conduit::cli`].

/// mimalloc instead of the system allocator: the push path allocates many small, short-lived
/// objects across threads, where glibc's malloc spends more time than the work itself.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    cic_conduit::cli::main()
}
