//! Handing the memory of a burst back to the operating system.
//!
//! glibc's malloc keeps what is freed for reuse and returns only the free
//! top of a heap by itself. After a flood the calls' memory is freed (the
//! proxy core renews its tables when a burst ends: `proxy/limits.rs`) but
//! stays resident: measured with `examples/flood.rs`, 20,000 INVITEs at
//! silent trunks left RSS at ≈100 MiB a minute later against ≈5 MiB idle,
//! with no call held. `malloc_trim(0)` returns every whole free page, in
//! every arena, so RSS goes back near idle. It runs only when the core
//! reports that a burst's memory was freed (at most every
//! [`COMPACT_EVERY`](crate::proxy::COMPACT_EVERY)), and takes milliseconds.
//! Elsewhere (another libc, another allocator) this does nothing.

/// Returns free heap memory to the operating system, where the allocator
/// can be asked to.
pub(super) fn release() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: malloc_trim only walks glibc's own free lists under its
        // arena locks; it takes no pointer and may be called at any time
        // from any thread.
        #[allow(unsafe_code)]
        let trimmed = unsafe { libc::malloc_trim(0) };
        tracing::debug!(trimmed = trimmed != 0, "free memory returned to the OS");
    }
}
