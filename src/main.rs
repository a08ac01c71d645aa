// jemalloc rather than glibc's malloc: under an archive write load glibc's per-thread
// arenas held 4x the memory in use (639 MB mapped for 145 MB) and the archive cost 1.56x
// the CPU per message of no archive; with jemalloc 1.47x and less than half the memory,
// no change with the archive off (docs/performance.md, issue 15).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> std::process::ExitCode {
    stanzad::cli::run()
}
