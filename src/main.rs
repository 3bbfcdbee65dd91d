//! The `cic-conduit` binary; see [`cic_conduit::cli`].

/// mimalloc instead of the system allocator: the push path allocates many small, short-lived
/// objects across threads, where glibc's malloc spends more time than the work itself.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    cic_conduit::cli::main()
}

/// mimalloc asks for transparent huge pages on its arenas (`madvise`), and where the kernel
/// grants them (`transparent_hugepage=madvise`, the usual default) a heap of a few MiB sits in
/// 2 MiB pages: measured, 14 of an idle conduit's 31 MiB resident were huge pages. The heap is
/// small and its objects short-lived, so huge pages buy no TLB reach worth that; they are
/// switched off for the process as it is loaded, before the first allocation touches the heap
/// (the runtime allocates before `main`).
#[cfg(target_os = "linux")]
#[used]
#[unsafe(link_section = ".init_array")]
static WITHOUT_HUGE_PAGES: extern "C" fn() = {
    extern "C" fn without_huge_pages() {
        // SAFETY: PR_SET_THP_DISABLE only sets a flag on this process's memory map; a kernel
        // without it refuses the call, which changes nothing.
        unsafe {
            libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
        }
    }
    without_huge_pages
};
