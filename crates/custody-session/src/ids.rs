//! Id material: a fast per-process id generator, the stable MurmurHash3 used in
//! session ids and derived trace ids, the per-process keyed hashes behind the
//! tables, and lowercase hex.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};

/// A fast, non-cryptographic generator of span ids, trace ids and session nonces.
///
/// Output `n` is SplitMix64 of `seed + n·φ`: a bijection of a 64-bit counter, so no
/// value repeats within a process before 2⁶⁴ draws, and drawing is one atomic add
/// (no system call, no lock). [`IdGen::new`] seeds from std's per-process random
/// keys; [`IdGen::from_seed`] gives a reproducible sequence for tests.
#[derive(Debug)]
pub struct IdGen {
    seed: u64,
    counter: AtomicU64,
}

const GOLDEN: u64 = 0x9e37_79b9_7f4a_7c15;

impl IdGen {
    /// A generator seeded from the process's random hash keys.
    pub fn new() -> Self {
        let mut h = RandomState::new().build_hasher();
        h.write_u64(0x6375_7374_6f64_7921);
        Self::from_seed(h.finish())
    }

    /// A generator with a fixed seed (reproducible; for tests and benches).
    pub fn from_seed(seed: u64) -> Self {
        Self {
            seed,
            counter: AtomicU64::new(0),
        }
    }

    /// The next 64 random-looking bits.
    pub fn next_u64(&self) -> u64 {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        splitmix64(self.seed.wrapping_add(n.wrapping_mul(GOLDEN)))
    }

    /// The next non-zero 64 bits (a valid W3C span id).
    pub fn next_nonzero_u64(&self) -> u64 {
        loop {
            let v = self.next_u64();
            if v != 0 {
                return v;
            }
        }
    }
}

impl Default for IdGen {
    fn default() -> Self {
        Self::new()
    }
}

fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(GOLDEN);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Streaming MurmurHash3 x64-128 (seed 0): stable across processes, versions and
/// machines, so ids derived from it can be recomputed by anyone (e.g. Python
/// `mmh3.hash128(data, 0, True)`). Not collision resistant against an adversary:
/// used only where the inputs are not chosen by someone who gains from a collision.
#[derive(Clone)]
pub(crate) struct Murmur3 {
    h1: u64,
    h2: u64,
    buf: [u8; 16],
    buf_len: usize,
    total: u64,
}

const C1: u64 = 0x87c3_7b91_1142_53d5;
const C2: u64 = 0x4cf5_ad43_2745_937f;

impl Murmur3 {
    pub(crate) fn with_seed(seed: u32) -> Self {
        Self {
            h1: u64::from(seed),
            h2: u64::from(seed),
            buf: [0; 16],
            buf_len: 0,
            total: 0,
        }
    }

    pub(crate) fn new() -> Self {
        Self::with_seed(0)
    }

    fn block(&mut self, block: &[u8; 16]) {
        let (a, b) = block.split_at(8);
        let k1 = u64::from_le_bytes(a.try_into().unwrap_or([0; 8]));
        let k2 = u64::from_le_bytes(b.try_into().unwrap_or([0; 8]));
        self.h1 = mix_h(self.h1 ^ mix_k1(k1), self.h2, 27, 0x52dc_e729);
        self.h2 = mix_h(self.h2 ^ mix_k2(k2), self.h1, 31, 0x3849_5ab5);
    }

    pub(crate) fn write(&mut self, mut data: &[u8]) {
        self.total += data.len() as u64;
        if self.buf_len > 0 {
            let take = (16 - self.buf_len).min(data.len());
            self.buf[self.buf_len..self.buf_len + take].copy_from_slice(&data[..take]);
            self.buf_len += take;
            data = &data[take..];
            if self.buf_len < 16 {
                return;
            }
            let block = self.buf;
            self.block(&block);
            self.buf_len = 0;
        }
        let mut chunks = data.chunks_exact(16);
        for chunk in &mut chunks {
            let mut block = [0u8; 16];
            block.copy_from_slice(chunk);
            self.block(&block);
        }
        let rest = chunks.remainder();
        self.buf[..rest.len()].copy_from_slice(rest);
        self.buf_len = rest.len();
    }

    pub(crate) fn finish(mut self) -> u128 {
        let tail = &self.buf[..self.buf_len];
        let mut k1 = 0u64;
        let mut k2 = 0u64;
        for (i, &b) in tail.iter().enumerate() {
            if i < 8 {
                k1 |= u64::from(b) << (8 * i);
            } else {
                k2 |= u64::from(b) << (8 * (i - 8));
            }
        }
        if tail.len() > 8 {
            self.h2 ^= mix_k2(k2);
        }
        if !tail.is_empty() {
            self.h1 ^= mix_k1(k1);
        }
        let (mut h1, mut h2) = (self.h1 ^ self.total, self.h2 ^ self.total);
        h1 = h1.wrapping_add(h2);
        h2 = h2.wrapping_add(h1);
        h1 = fmix64(h1);
        h2 = fmix64(h2);
        h1 = h1.wrapping_add(h2);
        h2 = h2.wrapping_add(h1);
        // Little-endian bytes h1 then h2, read as one big-endian number, so the
        // hex of the result is the hex of the canonical digest bytes.
        let mut out = [0u8; 16];
        out[..8].copy_from_slice(&h1.to_le_bytes());
        out[8..].copy_from_slice(&h2.to_le_bytes());
        u128::from_be_bytes(out)
    }
}

fn mix_k1(k1: u64) -> u64 {
    k1.wrapping_mul(C1).rotate_left(31).wrapping_mul(C2)
}

fn mix_k2(k2: u64) -> u64 {
    k2.wrapping_mul(C2).rotate_left(33).wrapping_mul(C1)
}

/// One half of a block's mixing: `h` rotated left by `r`, plus the other half,
/// times 5, plus `c`.
fn mix_h(h: u64, other: u64, r: u32, c: u64) -> u64 {
    h.rotate_left(r)
        .wrapping_add(other)
        .wrapping_mul(5)
        .wrapping_add(c)
}

fn fmix64(mut k: u64) -> u64 {
    k ^= k >> 33;
    k = k.wrapping_mul(0xff51_afd7_ed55_8ccd);
    k ^= k >> 33;
    k = k.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    k ^ (k >> 33)
}

/// MurmurHash3 x64-128 of `domain` followed by `data`.
pub(crate) fn stable_hash(domain: &[u8], data: &[u8]) -> u128 {
    let mut h = Murmur3::new();
    h.write(domain);
    h.write(data);
    h.finish()
}

/// A 128-bit table key: two independent keyed SipHash values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub(crate) struct Key(pub(crate) u64, pub(crate) u64);

/// Per-process secret hash keys: table keys, tool-name hashes and argument digests
/// cannot be predicted (so not collided on purpose) by clients.
#[derive(Debug)]
pub(crate) struct Keys {
    a: RandomState,
    b: RandomState,
}

impl Keys {
    pub(crate) fn new() -> Self {
        Self {
            a: RandomState::new(),
            b: RandomState::new(),
        }
    }

    pub(crate) fn pair(&self) -> Pair {
        Pair(self.a.build_hasher(), self.b.build_hasher())
    }

    /// A keyed 64-bit hash.
    pub(crate) fn hash64(&self, domain: u8, data: &[u8]) -> u64 {
        let mut h = self.a.build_hasher();
        h.write_u8(domain);
        h.write(data);
        h.finish()
    }
}

/// Two keyed hashers fed the same input: a 128-bit keyed digest.
pub(crate) struct Pair(
    std::collections::hash_map::DefaultHasher,
    std::collections::hash_map::DefaultHasher,
);

impl Pair {
    pub(crate) fn write(&mut self, data: &[u8]) {
        self.0.write(data);
        self.1.write(data);
    }

    pub(crate) fn write_u8(&mut self, v: u8) {
        self.0.write_u8(v);
        self.1.write_u8(v);
    }

    pub(crate) fn write_u64(&mut self, v: u64) {
        self.0.write_u64(v);
        self.1.write_u64(v);
    }

    /// Writes `data` preceded by its length (so consecutive fields cannot run together).
    pub(crate) fn write_field(&mut self, data: &[u8]) {
        self.write_u64(data.len() as u64);
        self.write(data);
    }

    pub(crate) fn finish(&self) -> Key {
        Key(self.0.finish(), self.1.finish())
    }
}

/// A hasher for maps keyed by [`Key`]: the key is already a keyed random value, so
/// its first word is used as is.
#[derive(Default, Clone, Copy)]
pub(crate) struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Not reached for `Key` (it hashes as two u64s); a fallback that still mixes.
        for &b in bytes {
            self.0 = (self.0.rotate_left(5) ^ u64::from(b)).wrapping_mul(GOLDEN);
        }
    }

    fn write_u64(&mut self, v: u64) {
        if self.0 == 0 {
            self.0 = v;
        }
    }
}

/// `BuildHasher` for maps keyed by [`Key`].
pub(crate) type KeyBuild = std::hash::BuildHasherDefault<KeyHasher>;

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Appends the lowercase hex of `bytes`.
pub(crate) fn push_hex(out: &mut String, bytes: &[u8]) {
    // The digits go to a byte buffer and are appended as one string: pushing
    // them one `char` at a time encodes and bounds-checks each of them.
    let mut buf = [0u8; 64];
    for chunk in bytes.chunks(buf.len() / 2) {
        for (pair, &b) in buf.chunks_exact_mut(2).zip(chunk) {
            pair[0] = HEX[usize::from(b >> 4)];
            pair[1] = HEX[usize::from(b & 0xf)];
        }
        // Always ASCII, so always UTF-8.
        if let Ok(digits) = std::str::from_utf8(&buf[..2 * chunk.len()]) {
            out.push_str(digits);
        }
    }
}

/// Lowercase hex of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    push_hex(&mut s, bytes);
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn murmur(data: &[u8], seed: u32) -> [u8; 16] {
        let mut h = Murmur3::with_seed(seed);
        h.write(data);
        h.finish().to_be_bytes()
    }

    /// SMHasher's verification value for MurmurHash3_x64_128: hash keys
    /// {}, {0}, {0,1}, ... {0..254} with seed 256 - len, hash the concatenated
    /// digests with seed 0; the first four bytes, little-endian, are 0x6384BA69.
    #[test]
    fn murmur3_matches_smhasher_verification() {
        let mut key = Vec::new();
        let mut all = Vec::new();
        for i in 0..256u32 {
            all.extend_from_slice(&murmur(&key, 256 - i));
            key.push(u8::try_from(i).unwrap_or(0));
        }
        let fin = murmur(&all, 0);
        let v = u32::from_le_bytes([fin[0], fin[1], fin[2], fin[3]]);
        assert_eq!(v, 0x6384_BA69);
    }

    #[test]
    fn murmur3_streaming_equals_one_shot() {
        let data: Vec<u8> = (0..200u8).collect();
        for split in [0, 1, 7, 15, 16, 17, 33, 199, 200] {
            let mut h = Murmur3::new();
            h.write(&data[..split]);
            h.write(&data[split..]);
            assert_eq!(h.finish().to_be_bytes(), murmur(&data, 0), "split {split}");
        }
        assert_eq!(murmur(b"", 0), [0; 16]);
    }

    #[test]
    fn idgen_is_reproducible_and_distinct() {
        let a = IdGen::from_seed(7);
        let b = IdGen::from_seed(7);
        let xs: Vec<u64> = (0..1000).map(|_| a.next_u64()).collect();
        let ys: Vec<u64> = (0..1000).map(|_| b.next_u64()).collect();
        assert_eq!(xs, ys);
        let set: std::collections::HashSet<u64> = xs.into_iter().collect();
        assert_eq!(set.len(), 1000);
        assert_ne!(IdGen::new().next_u64(), IdGen::new().next_u64());
    }

    #[test]
    fn hex_is_lowercase() {
        assert_eq!(hex(&[0x00, 0xab, 0x9f]), "00ab9f");
        let long: Vec<u8> = (0..70).collect();
        let expect: String = long.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex(&long), expect);
        let mut appended = "x".to_owned();
        push_hex(&mut appended, &long);
        assert_eq!(appended, format!("x{expect}"));
    }
}
