//! The process's memory: how many malloc arenas glibc may make.
//!
//! glibc gives each thread that allocates while another holds the lock an arena of its own, up
//! to eight per core. A stage has a dozen threads (librdkafka's broker and internal threads,
//! the loop, the metrics server), and what a fetch response or a produce batch leaves behind
//! in one thread's arena is not reused by another's. Two arenas kept a stage's peak RSS in
//! `scripts/bench` about 2 MB lower than glibc's default on the same settings, with no
//! measurable change in throughput.

/// Arenas glibc may create for this process.
const MALLOC_ARENAS: i32 = 2;

/// Caps glibc's malloc arenas (see the module's docs). Call first thing in `main`, before any
/// thread starts. An explicit `MALLOC_ARENA_MAX` in the environment wins. A no-op elsewhere
/// than glibc.
pub fn cap_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: mallopt only sets an allocator parameter; called before other threads exist.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, MALLOC_ARENAS);
        }
    }
}
