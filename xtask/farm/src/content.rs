//! What the farm's HTTP server serves: files whose sizes and bytes follow from their number,
//! so the check can recompute every one without keeping a copy.

/// The size of file `i`: mostly small, some tens of KiB, a few of a MiB, like a real site.
pub(crate) fn size(i: usize) -> usize {
    let h = mix(i as u64);
    match h % 100 {
        0..=59 => 200 + (h >> 8) as usize % 4_000,
        60..=94 => 4_000 + (h >> 8) as usize % 60_000,
        95..=98 => 64_000 + (h >> 8) as usize % 200_000,
        _ => 1_000_000 + (h >> 8) as usize % 100_000,
    }
}

/// The bytes of file `i`.
pub(crate) fn body(i: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(size(i));
    let mut x = mix(i as u64 ^ 0x5eed);
    while out.len() < size(i) {
        x = mix(x);
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(size(i));
    out
}

/// Whether file `i` exists: one in a hundred is missing on purpose, so the workers have 404s
/// to report as warnings.
pub(crate) fn exists(i: usize) -> bool {
    i % 100 != 99
}

/// The file number in a URL path `/f/{i}`.
pub(crate) fn index_of(path: &str) -> Option<usize> {
    path.strip_prefix("/f/")?.parse().ok()
}

fn mix(mut x: u64) -> u64 {
    // splitmix64: cheap, and every bit of the input matters.
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}
