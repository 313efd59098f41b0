//! The byte searches that trigger the detectors (`@`, `:`, a digit).
//!
//! memchr's portable search reads a `usize` at a time: four bytes in
//! wasm32, where 64-bit integer arithmetic is native. Without SIMD the wasm
//! build reads eight at a time here instead; native builds use memchr's
//! vectorized search.

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// The eight bytes at `i` as a little-endian word, if there are eight.
fn word_at(b: &[u8], i: usize) -> Option<u64> {
    let chunk = b.get(i..i + 8)?;
    let mut word = [0u8; 8];
    word.copy_from_slice(chunk);
    Some(u64::from_le_bytes(word))
}

/// The index of the lowest byte of `x` below `n` (`n` ≤ 128), if any: the
/// classic "has a byte less than n" test, whose lowest flagged byte is
/// exact.
fn first_below(x: u64, n: u64) -> Option<usize> {
    let found = x.wrapping_sub(ONES * n) & !x & HIGHS;
    (found != 0).then(|| (found.trailing_zeros() / 8) as usize)
}

/// The first `needle` at or after `i`.
pub(super) fn next_byte(b: &[u8], needle: u8, i: usize) -> Option<usize> {
    if cfg!(all(target_family = "wasm", not(target_feature = "simd128"))) {
        next_byte_by_words(b, needle, i)
    } else {
        memchr::memchr(needle, b.get(i..)?).map(|k| i + k)
    }
}

/// [`next_byte`] eight bytes at a time.
fn next_byte_by_words(b: &[u8], needle: u8, mut i: usize) -> Option<usize> {
    while let Some(word) = word_at(b, i) {
        if let Some(k) = first_below(word ^ (ONES * u64::from(needle)), 1) {
            return Some(i + k);
        }
        i += 8;
    }
    (i..b.len()).find(|&j| b[j] == needle)
}

/// The first ASCII digit at or after `i`.
pub(super) fn next_digit(b: &[u8], mut i: usize) -> Option<usize> {
    while let Some(word) = word_at(b, i) {
        // Digits become 0..=9 and everything else >= 10.
        if let Some(k) = first_below(word ^ (ONES * 0x30), 10) {
            return Some(i + k);
        }
        i += 8;
    }
    (i..b.len()).find(|&j| b[j].is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn the_searches_find_the_first_match(
            b in proptest::collection::vec(prop_oneof![Just(b'@'), Just(b'5'), any::<u8>()], 0..40),
            i in 0usize..44,
        ) {
            let first = |f: &dyn Fn(u8) -> bool| (i..b.len()).find(|&j| f(b[j]));
            prop_assert_eq!(next_byte(&b, b'@', i), first(&|c| c == b'@'));
            prop_assert_eq!(next_byte_by_words(&b, b'@', i), first(&|c| c == b'@'));
            prop_assert_eq!(next_digit(&b, i), first(&|c| c.is_ascii_digit()));
        }
    }
}
