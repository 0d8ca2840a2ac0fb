//! Handing the memory of a burst back to the operating system.
//!
//! glibc's malloc keeps what is freed for reuse. Measured with
//! `crates/bench/src/bin/voice_flood.rs` (20,000 INVITEs at silent trunks, `max_calls`
//! 10,000): RSS went from ≈5 MiB idle to ≈100 MiB and stayed there a minute
//! later with no call held. Two things keep it:
//!
//! - Freed chunks inside a heap are returned only by `malloc_trim`, which
//!   [`release`] calls when the proxy core reports that a burst's memory was
//!   freed (`Proxy::take_released`, at most every
//!   [`COMPACT_EVERY`](crate::proxy::COMPACT_EVERY); it takes milliseconds).
//! - The free top of a thread's arena (the proxy runs on tokio's workers) is
//!   returned only by `free` itself, once it exceeds `M_TRIM_THRESHOLD`; and
//!   glibc raises that threshold on its own (up to 64 MiB) each time a large
//!   mmapped block is freed, such as a grown table. `malloc_trim` does not
//!   touch arena tops. Measured: with the dynamic threshold ≈3 MiB more
//!   stayed after each flood (5.8, 8.2, 10.4 MiB after three), with the
//!   threshold fixed at glibc's own default of 128 KiB ([`configure`]) it
//!   stayed at ≈5.5 MiB flood after flood. Fixing it also stops the dynamic
//!   raise of the mmap threshold, so blocks of 128 KiB and more are always
//!   mapped and unmapped on their own: those are rare here (tables, large
//!   buffers).
//!
//! Elsewhere (another libc, another allocator) both do nothing.

/// Fixes glibc's trim threshold at its default, so a thread arena's free
/// top goes back to the OS as it frees (see the module docs). Idempotent;
/// process-wide.
pub(super) fn configure() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallopt only sets glibc's tuning parameters under its
        // lock; it takes no pointer and may be called at any time.
        #[allow(unsafe_code)]
        let ok = unsafe { libc::mallopt(libc::M_TRIM_THRESHOLD, 128 * 1024) };
        if ok != 1 {
            tracing::debug!("mallopt(M_TRIM_THRESHOLD) refused");
        }
    }
}

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
