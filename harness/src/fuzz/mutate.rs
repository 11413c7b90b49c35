//! Seeded byte mutations of a real file: what a torn write, a stale page, a bit flip or a hostile hand does.
//!
//! Why not random bytes: parsers reject random bytes at the first magic number; a real file with a few
//! fields changed reaches the walks, counts and offsets behind it. Every input is a pure function of
//! (seed, index), so a crash is reproduced from the two numbers alone.

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// 32-bit values that break bounds checks: zero, one, all ones, sign boundaries, a page number past any file.
const INTERESTING: &[u32] =
    &[0, 1, 2, 0x7f, 0x80, 0xff, 0x100, 0xffff, 0x1_0000, 0xf_ffff, 0x7fff_ffff, 0x8000_0000, 0xffff_ffff, 0xffff_fffe];

/// The `index`-th input of a run with `seed`: which of `seeds` it was mutated from, and the bytes.
pub fn input(seeds: &[Vec<u8>], seed: u64, index: u64) -> (usize, Vec<u8>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ index.wrapping_mul(0x9e37_79b9_7f4a_7c15));
    let from = rng.random_range(0..seeds.len());
    let mut v = seeds[from].clone();
    let ops = 1 + rng.random_range(0..8u32).min(rng.random_range(0..8u32));
    for _ in 0..ops {
        mutate(&mut v, &mut rng);
    }
    (from, v)
}

fn mutate(v: &mut Vec<u8>, rng: &mut ChaCha8Rng) {
    if v.is_empty() {
        v.push(rng.random());
        return;
    }
    let len = v.len();
    let at = rng.random_range(0..len);
    match rng.random_range(0..9u32) {
        0 => v[at] ^= 1 << rng.random_range(0..8u32),
        1 => v[at] = [0, 0xff, 0x7f, 0x80][rng.random_range(0..4usize)],
        2 | 3 => {
            // A 32-bit field, aligned as headers and pages align them, set to a boundary value.
            let at = at & !3;
            if at + 4 <= len {
                let x = INTERESTING[rng.random_range(0..INTERESTING.len())];
                let bytes = if rng.random() { x.to_be_bytes() } else { x.to_le_bytes() };
                v[at..at + 4].copy_from_slice(&bytes);
            }
        }
        4 => {
            // Increment or decrement a field by a little (an off-by-one count or offset).
            let at = at & !3;
            if at + 4 <= len {
                let x = u32::from_be_bytes(v[at..at + 4].try_into().expect("4 bytes"));
                let d = rng.random_range(1..16u32);
                let x = if rng.random() { x.wrapping_add(d) } else { x.wrapping_sub(d) };
                v[at..at + 4].copy_from_slice(&x.to_be_bytes());
            }
        }
        5 => {
            // Copy a chunk elsewhere (a stale or misplaced page).
            let n = rng.random_range(1..=(len - at).min(4096));
            let to = rng.random_range(0..len);
            let chunk = v[at..at + n].to_vec();
            let end = (to + n).min(len);
            v[to..end].copy_from_slice(&chunk[..end - to]);
        }
        6 => {
            // Zero a run (a torn write).
            let n = rng.random_range(1..=(len - at).min(4096));
            v[at..at + n].fill(0);
        }
        7 => v.truncate(at),
        _ => {
            let n = rng.random_range(1..=(len - at).min(64));
            let chunk = v[at..at + n].to_vec();
            v.splice(at..at, chunk);
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn inputs_are_a_function_of_seed_and_index_and_differ_from_the_seed() {
        let seeds = vec![(0..4096u32).map(|i| (i * 7) as u8).collect::<Vec<u8>>()];
        let a: Vec<_> = (0..50).map(|i| super::input(&seeds, 9, i).1).collect();
        let b: Vec<_> = (0..50).map(|i| super::input(&seeds, 9, i).1).collect();
        assert_eq!(a, b);
        assert!(a.iter().filter(|x| **x != seeds[0]).count() >= 45);
        assert_ne!(super::input(&seeds, 10, 0).1, a[0]);
    }
}
