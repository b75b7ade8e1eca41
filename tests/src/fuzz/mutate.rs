//! Byte-level mutation of genuine inputs, and purely random inputs.
//!
//! An input is a list of fields (a header value, a body, a query string, a token): the
//! mutator picks one field (the last, usually the body, more often) and applies one to eight
//! stacked mutations: bit flips, byte set/insert/delete, truncation, splicing in bytes of
//! another genuine input, duplicating or swapping chunks, dictionary tokens (JSON and form
//! syntax, percent escapes, path tricks, odd Unicode, huge and negative numbers) and
//! replacing a run of digits with an extreme number.

use super::rng::Rng;
use super::Input;

/// Tokens that mean something to at least one of the parsers under test.
#[rustfmt::skip]
pub const DICTIONARY: &[&[u8]] = &[
    b"\"", b"{", b"}", b"[", b"]", b":", b",", b"\\", b"\\\"", b"\\u0000", b"\\ud800",
    b"\\u00e9", b"null", b"true", b"false", b"{}", b"[]", b"\"\"", b"%", b"%0", b"%00", b"%ZZ",
    b"%26", b"%3D", b"%2B", b"%20", b"%25", b"%E9", b"%C0%AF", b"=", b"&", b"+", b"?", b"#",
    b";", b"/", b"..", b"../", b"./", b"//", b".", b" ", b"\t", b"\n", b"\r\n", b"\0",
    "\u{e9}".as_bytes(), "\u{9891}\u{9053}".as_bytes(), "\u{feff}".as_bytes(),
    "\u{202e}".as_bytes(), "\u{1f600}".as_bytes(), b"\xc0\xaf", b"\xff", b"\xed\xa0\x80",
    b"\xe9", b"-", b"-0", b"-1", b"0", b"1e999", b"1E-9", b"0.000", b"9223372036854775807",
    b"9223372036854775808", b"-9223372036854775809", b"18446744073709551616",
    b"99999999999999999999999999999999", b"NaN", b"Infinity", b"==", b"=", b"_",
    b"Bearer ", b"bearer ", b"v1.", b"RSA2", b"utf-8", b"gbk", b"charset=", b"token=", b"alg",
    b"none", b"HS256", b"RS256", b"ES256", b"x5c", b"kid",
];

/// Numbers that overflow, underflow or sit on a boundary.
#[rustfmt::skip]
const NUMBERS: &[&[u8]] = &[
    b"0", b"-1", b"1", b"00", b"2147483647", b"2147483648", b"4294967296",
    b"9223372036854775807", b"9223372036854775808", b"-9223372036854775808",
    b"18446744073709551615", b"18446744073709551616", b"1e308", b"1e999", b"0.0000001",
    b"99999999999999999999999999999999999999",
];

/// A field of purely random content: random bytes, printable noise or dictionary tokens.
fn random_field(rng: &mut Rng) -> Vec<u8> {
    let len = match rng.below(4) {
        0 => rng.below(8),
        1 | 2 => rng.below(128),
        _ => rng.below(1024),
    };
    let mut out = Vec::with_capacity(len);
    match rng.below(3) {
        0 => out.extend((0..len).map(|_| rng.byte())),
        1 => out.extend((0..len).map(|_| b' ' + (rng.byte() % 95))),
        _ => {
            while out.len() < len {
                if rng.chance(1, 2) {
                    let word: &&[u8] = rng.pick(DICTIONARY);
                    out.extend_from_slice(word);
                } else {
                    out.push(b' ' + (rng.byte() % 95));
                }
            }
        }
    }
    out
}

/// An input with every field random.
pub fn random_input(rng: &mut Rng, fields: usize) -> Input {
    Input((0..fields).map(|_| random_field(rng)).collect())
}

/// A random range `start..end` inside `len` (empty when `len` is 0).
fn range(rng: &mut Rng, len: usize) -> (usize, usize) {
    if len == 0 {
        return (0, 0);
    }
    let start = rng.below(len);
    let cap = if rng.chance(1, 4) { len } else { 16 };
    let max = (len - start).min(cap);
    (start, start + 1 + rng.below(max))
}

/// Applies one mutation to `field`; `donors` are the genuine seeds, to splice from.
fn mutate_once(rng: &mut Rng, field: &mut Vec<u8>, donors: &[Input]) {
    let len = field.len();
    match rng.below(14) {
        0 if len > 0 => {
            let i = rng.below(len);
            field[i] ^= 1 << rng.below(8);
        }
        1 if len > 0 => {
            let i = rng.below(len);
            field[i] = rng.byte();
        }
        2 => {
            let i = rng.below(len + 1);
            field.insert(i, rng.byte());
        }
        3 if len > 0 => {
            let (a, b) = range(rng, len);
            field.drain(a..b);
        }
        4 if len > 0 => field.truncate(rng.below(len)),
        5 => {
            // Splice: bytes of some genuine input's field replace a range here.
            let donor = rng.pick(donors);
            let from = rng.pick(&donor.0);
            if !from.is_empty() {
                let (da, db) = range(rng, from.len());
                let (a, b) = range(rng, len);
                field.splice(a..b, from[da..db].iter().copied());
            }
        }
        6 if len > 0 => {
            let (a, b) = range(rng, len);
            let chunk = field[a..b].to_vec();
            let at = rng.below(field.len() + 1);
            field.splice(at..at, chunk);
        }
        7 => {
            let token = rng.pick(DICTIONARY);
            let at = rng.below(len + 1);
            field.splice(at..at, token.iter().copied());
        }
        8 if len > 0 => {
            let token = rng.pick(DICTIONARY);
            let (a, b) = range(rng, len);
            field.splice(a..b, token.iter().copied());
        }
        9 => {
            // A run of digits becomes an extreme number.
            let starts: Vec<usize> = (0..len)
                .filter(|&i| {
                    field[i].is_ascii_digit() && (i == 0 || !field[i - 1].is_ascii_digit())
                })
                .collect();
            if !starts.is_empty() {
                let a = *rng.pick(&starts);
                let b = (a..len)
                    .find(|&i| !field[i].is_ascii_digit())
                    .unwrap_or(len);
                field.splice(a..b, rng.pick(NUMBERS).iter().copied());
            }
        }
        10 if len > 1 => {
            let (a, b) = range(rng, len);
            let (c, d) = range(rng, len);
            if b <= c || d <= a {
                let (first, second) = if b <= c {
                    ((a, b), (c, d))
                } else {
                    ((c, d), (a, b))
                };
                let x = field[first.0..first.1].to_vec();
                let y = field[second.0..second.1].to_vec();
                field.splice(second.0..second.1, x);
                field.splice(first.0..first.1, y);
            }
        }
        11 if len > 0 => {
            let i = rng.below(len);
            if field[i].is_ascii_alphabetic() {
                field[i] ^= 0x20;
            }
        }
        12 if len > 0 => {
            let i = rng.below(len);
            field[i] = if rng.chance(1, 2) {
                field[i].wrapping_add(1)
            } else {
                field[i].wrapping_sub(1)
            };
        }
        13 => field.extend_from_slice(&random_field(rng)),
        _ => {
            let i = rng.below(len + 1);
            field.insert(i, *rng.pick(b"\"{}[]:,%=&+./\\ 0"));
        }
    }
}

/// A mutant of a random genuine seed: sometimes a whole field is swapped with the same field
/// of another seed, then one to eight byte mutations hit one or more fields.
pub fn mutant(rng: &mut Rng, seeds: &[Input]) -> Input {
    let mut input = rng.pick(seeds).clone();
    let fields = input.0.len();
    if fields == 0 {
        return input;
    }
    if seeds.len() > 1 && rng.chance(1, 8) {
        let f = rng.below(fields);
        input.0[f] = rng.pick(seeds).0[f].clone();
    }
    let rounds = 1 + rng.below(8);
    for _ in 0..rounds {
        // The last field (body, token, query) carries most of the structure.
        let f = if rng.chance(2, 3) {
            fields - 1
        } else {
            rng.below(fields)
        };
        mutate_once(rng, &mut input.0[f], seeds);
    }
    input
}
