//! What every backend computes the same way, with no I/O: where a windowed MO
//! key is stored, and where a destination's references start (SPEC M8, M16).

/// Where a windowed dedupe key's copies are stored: `identity@<20-digit time>`,
/// so the newest copy of an identity is one step down its unique index.
pub(crate) fn windowed_key(identity: &str, received_at_ms: i64) -> String {
    format!("{identity}@{:020}", received_at_ms.max(0))
}

/// The reference a destination starts from when it has none within the window:
/// spread by destination and time, so that a restart of the sequence after the
/// window does not begin where a provider with a longer memory remembers it.
pub(crate) fn reference_seed(destination: &str, at_ms: i64) -> i64 {
    let hash = destination
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
            (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
        });
    ((hash ^ (at_ms as u64 / 1000)) & 0xFFFF) as i64
}

/// The range of stored keys holding the copies of a windowed `identity`
/// (exclusive bounds): every `identity@<digits>` sorts between them byte-wise.
pub(crate) fn windowed_range(identity: &str) -> (String, String) {
    (format!("{identity}@"), format!("{identity}@~"))
}

/// The next reference of a destination for a message at `at_ms` (SPEC M16): one
/// after `last` while the destination had a message within `window_ms`, else a
/// fresh start. `last` is the destination's `(last_ref, updated_at_ms)`, if any.
/// Answers the reference and the destination's new `(last_ref, updated_at_ms)`.
pub(crate) fn next_reference(
    destination: &str,
    last: Option<(i64, i64)>,
    at_ms: i64,
    window_ms: i64,
) -> (i64, i64) {
    match last {
        Some((last_ref, updated_at_ms)) if updated_at_ms >= at_ms.saturating_sub(window_ms) => {
            ((last_ref + 1) % 65_536, updated_at_ms.max(at_ms))
        }
        Some((_, updated_at_ms)) => (reference_seed(destination, at_ms), updated_at_ms.max(at_ms)),
        None => (reference_seed(destination, at_ms), at_ms),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// SPEC M16: a sequence runs on within the window, starts afresh after it.
    #[test]
    fn references_run_on_within_the_window() {
        let (first, updated) = next_reference("+46", None, 1_000, 10_000);
        assert_eq!(updated, 1_000);
        assert_eq!(first, reference_seed("+46", 1_000));
        assert_eq!(next_reference("+46", Some((65_535, 1_000)), 5_000, 10_000), (0, 5_000));
        let (fresh, updated) = next_reference("+46", Some((7, 1_000)), 11_001, 10_000);
        assert_eq!((fresh, updated), (reference_seed("+46", 11_001), 11_001));
        // An older message of a batch never moves the time back.
        assert_eq!(next_reference("+46", Some((7, 9_000)), 8_000, 10_000), (8, 9_000));
    }

    #[test]
    fn windowed_keys_sort_inside_their_range() {
        let (low, high) = windowed_range("id");
        let key = windowed_key("id", 42);
        assert_eq!(key, "id@00000000000000000042");
        assert!(low < key && key < high);
        assert!(!(low < windowed_key("id2", 1) && windowed_key("id2", 1) < high));
    }
}
