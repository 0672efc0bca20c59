//! A hasher for the bus's own handle ids.

/// Hashing for the bus's handle ids: one multiplication instead of SipHash, which showed as
/// a few per cent of `groupd`'s time at 64 bytes (the handle map is looked up several times
/// per message). Sound because the ids are the bus's own, handed out in sequence, never
/// chosen by a client; maps keyed by what a client sends (group names) keep SipHash.
#[derive(Clone, Copy, Default)]
pub(crate) struct IdHash;

impl std::hash::BuildHasher for IdHash {
    type Hasher = IdHasher;
    fn build_hasher(&self) -> IdHasher {
        IdHasher(0)
    }
}

/// The hasher of [`IdHash`]: Fibonacci hashing of one `u64`.
pub(crate) struct IdHasher(u64);

impl std::hash::Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // Only `u64` keys use this hasher; anything else still hashes, byte by byte.
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0 ^ n).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}
