//! The `hooklake` binary: the CLI over the library.

mod cli;

/// jemalloc instead of glibc's malloc: the pipeline allocates large short-lived documents on many threads, which
/// glibc's per-thread arenas kept as a growing ~1.3 GiB plateau in the soak benchmark (see BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> std::process::ExitCode {
    cli::main()
}
