//! Aligning the cloud recording to the edge's timeline (SPEC R2): the
//! sidecar's start time is the coarse anchor; cross-correlation of a
//! stretch where both have audio refines it. Pure, over slices; FFT-free:
//! a search on a 4:1 decimated copy, then ±4 samples at the full rate.

/// Samples of the decimated search per full-rate sample.
const DECIMATE: usize = 4;

/// Where an edge stretch matches in a cloud stretch.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Match {
    /// `edge[i]` matches `cloud[i + search + lag]`.
    pub lag: i64,
    /// Normalized cross-correlation at `lag`, −1 to 1.
    pub score: f32,
    /// Another lag at least 5 ms away scored within the tolerance of the
    /// best (a periodic signal): the one nearest the coarse anchor was kept.
    pub ambiguous: bool,
}

/// Finds `edge` in `cloud`, which starts `search` samples before the
/// coarse position and runs `search` samples past the stretch's end
/// (`cloud.len() == edge.len() + 2 * search`). Among lags scoring within
/// `tolerance` of the best, the one nearest 0 wins. `None` if either side
/// is silent (nothing to correlate).
pub fn find(edge: &[f32], cloud: &[f32], search: usize, tolerance: f32) -> Option<Match> {
    let search = search / DECIMATE * DECIMATE;
    if edge.is_empty() || cloud.len() < edge.len() + 2 * search {
        return None;
    }
    let coarse_edge = decimate(edge);
    let coarse_cloud = decimate(&cloud[..edge.len() + 2 * search]);
    let coarse_search = search / DECIMATE;
    let scores = ncc(&coarse_edge, &coarse_cloud, coarse_search)?;
    let best = scores.iter().copied().fold(f32::MIN, f32::max);
    let near = |s: f32| s >= best - tolerance;
    let lag_of = |i: usize| i as i64 - coarse_search as i64;
    let chosen = (0..scores.len())
        .filter(|&i| near(scores[i]))
        .min_by_key(|&i| lag_of(i).abs())?;
    // 5 ms is 10 samples at the decimated 2 kHz.
    let ambiguous =
        (0..scores.len()).any(|i| near(scores[i]) && (lag_of(i) - lag_of(chosen)).abs() >= 10);
    // Refine at the full rate around the chosen coarse lag.
    let centre = lag_of(chosen) * DECIMATE as i64;
    let mut refined: Option<(i64, f32)> = None;
    for lag in centre - DECIMATE as i64..=centre + DECIMATE as i64 {
        if lag.unsigned_abs() as usize > search {
            continue;
        }
        let at = (search as i64 + lag) as usize;
        let score = ncc_at(edge, &cloud[at..at + edge.len()]);
        if refined.is_none_or(|(_, s)| score > s) {
            refined = Some((lag, score));
        }
    }
    let (lag, score) = refined?;
    Some(Match {
        lag,
        score,
        ambiguous,
    })
}

/// Sums of `DECIMATE` samples: a box low-pass and 4:1 decimation.
fn decimate(x: &[f32]) -> Vec<f32> {
    x.chunks(DECIMATE).map(|c| c.iter().sum()).collect()
}

/// Normalized cross-correlation of `e` with `c` at lags `-search..=search`
/// (`e[i]` against `c[i + search + lag]`); `None` if `e` is silent.
fn ncc(e: &[f32], c: &[f32], search: usize) -> Option<Vec<f32>> {
    let n = e.len();
    let ee = dot(e, e);
    if ee <= 0.0 {
        return None;
    }
    // Energy of every window of `c` by prefix sums (in f64: long sums).
    let mut prefix = Vec::with_capacity(c.len() + 1);
    prefix.push(0f64);
    for &v in c {
        prefix.push(prefix[prefix.len() - 1] + f64::from(v) * f64::from(v));
    }
    let scores = (0..=2 * search)
        .map(|at| {
            let cc = prefix[at + n] - prefix[at];
            if cc <= 0.0 {
                return 0.0;
            }
            (f64::from(dot(e, &c[at..at + n])) / (f64::from(ee) * cc).sqrt()) as f32
        })
        .collect();
    Some(scores)
}

fn ncc_at(e: &[f32], c: &[f32]) -> f32 {
    let (ee, cc) = (dot(e, e), dot(c, c));
    if ee <= 0.0 || cc <= 0.0 {
        return 0.0;
    }
    (f64::from(dot(e, c)) / (f64::from(ee) * f64::from(cc)).sqrt()) as f32
}

/// A dot product in eight lanes, so that it vectorizes (a plain float sum
/// cannot be reordered by the compiler).
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut lanes = [0f32; 8];
    let mut ca = a.chunks_exact(8);
    let mut cb = b.chunks_exact(8);
    for (x, y) in (&mut ca).zip(&mut cb) {
        for k in 0..8 {
            lanes[k] += x[k] * y[k];
        }
    }
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    lanes.iter().sum::<f32>() + tail
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Noise-like test audio from a small LCG: one clear peak.
    fn noise(n: usize, seed: u32) -> Vec<f32> {
        let mut x = seed;
        (0..n)
            .map(|_| {
                x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                ((x >> 16) as i16 as f32) / 4.0
            })
            .collect()
    }

    #[test]
    fn finds_the_offset_of_a_copy_r2() {
        let search = 4000;
        let signal = noise(40_000 + 2 * search, 1);
        for lag in [-3999i64, -1234, -1, 0, 7, 321, 3999] {
            let at = (search as i64 + lag) as usize;
            let edge = &signal[at..at + 40_000];
            let m = find(edge, &signal, search, 0.02).unwrap();
            assert_eq!(m.lag, lag);
            assert!(m.score > 0.99, "{m:?}");
            assert!(!m.ambiguous);
        }
    }

    #[test]
    fn unrelated_audio_scores_low_and_silence_is_none_r2() {
        let search = 400;
        let cloud = noise(8000 + 2 * search, 2);
        let edge = noise(8000, 3);
        let m = find(&edge, &cloud, search, 0.02).unwrap();
        assert!(m.score < 0.2, "{m:?}");
        assert_eq!(find(&vec![0.0; 8000], &cloud, search, 0.02), None);
    }

    #[test]
    fn a_periodic_signal_is_ambiguous_and_keeps_the_nearest_lag_r2() {
        // A 400 Hz tone (period 20 samples) shifted by 3 samples: every
        // period matches; the lag nearest the coarse anchor is kept.
        let search = 400;
        let tone: Vec<f32> = (0..8000 + 2 * search)
            .map(|i| (i as f32 * std::f32::consts::TAU * 400.0 / 8000.0).sin() * 1000.0)
            .collect();
        let edge = &tone[search + 3..search + 3 + 8000];
        let m = find(edge, &tone, search, 0.02).unwrap();
        assert!(m.ambiguous);
        assert_eq!(m.lag, 3);
    }
}
