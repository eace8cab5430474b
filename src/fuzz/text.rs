//! Mutations of line-oriented text (TOML scenarios, CSV profiles): numbers swapped for
//! boundary values, lines dropped, duplicated or swapped, tokens from a dictionary inserted.

use rand_chacha::rand_core::Rng;
use rand_chacha::ChaCha8Rng;

/// Values that break number parsing and the arithmetic after it.
const NUMBERS: [&str; 18] = [
    "0",
    "-1",
    "1",
    "0.5",
    "-0.0",
    "1e308",
    "1e-308",
    "nan",
    "inf",
    "-inf",
    "18446744073709551615",
    "18446744073709551616",
    "9223372036854775807",
    "4294967296",
    "2500GiB",
    "1KiB",
    "4097",
    "",
];

fn pick(rng: &mut ChaCha8Rng, n: usize) -> usize {
    (rng.next_u64() % n.max(1) as u64) as usize
}

/// Byte ranges of the numbers in `text`.
fn numbers(text: &[u8]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < text.len() {
        if text[i].is_ascii_digit() {
            let s = i;
            while i < text.len() && (text[i].is_ascii_alphanumeric() || text[i] == b'.') {
                i += 1;
            }
            out.push((s, i));
        } else {
            i += 1;
        }
    }
    out
}

/// One format-aware mutation of `input`, using `dictionary` (keys, values, separators of
/// the format). Returns false if there was nothing to do.
pub fn mutate(input: &mut Vec<u8>, rng: &mut ChaCha8Rng, dictionary: &[&str]) -> bool {
    match pick(rng, 5) {
        0 => {
            let nums = numbers(input);
            if nums.is_empty() {
                return false;
            }
            let (a, b) = nums[pick(rng, nums.len())];
            let v = NUMBERS[pick(rng, NUMBERS.len())].as_bytes().to_vec();
            input.splice(a..b, v);
            true
        }
        1..=3 => {
            let mut lines: Vec<Vec<u8>> =
                input.split(|&c| c == b'\n').map(<[u8]>::to_vec).collect();
            if lines.is_empty() {
                return false;
            }
            let i = pick(rng, lines.len());
            match pick(rng, 3) {
                0 => {
                    lines.remove(i);
                }
                1 => {
                    let l = lines[i].clone();
                    lines.insert(pick(rng, lines.len() + 1), l);
                }
                _ => {
                    let j = pick(rng, lines.len());
                    lines.swap(i, j);
                }
            }
            *input = lines.join(&b'\n');
            true
        }
        _ => {
            if dictionary.is_empty() {
                return false;
            }
            let word = dictionary[pick(rng, dictionary.len())].as_bytes();
            let at = pick(rng, input.len() + 1);
            input.splice(at..at, word.iter().copied());
            true
        }
    }
}
