//! String text for the streaming pass: the fast scan over plain string bytes, resolving
//! escapes of a checked string, and writing strings and list indices.

use crate::minimise::tree;
use std::borrow::Cow;

/// Bytes that end the fast scan of a string: the quote, the backslash, control characters.
const STRING_SPECIAL: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 0x20 {
        t[i] = true;
        i += 1;
    }
    t[b'"' as usize] = true;
    t[b'\\' as usize] = true;
    t
};
/// The first byte at or after `from` that ends a plain run of string text: a quote, a
/// backslash or a control character. Eight bytes at a time: strings are most of a body.
pub(super) fn skip_plain(bytes: &[u8], mut from: usize) -> usize {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    // A lane of `x` is zero iff `(x - ONES) & !x & HIGHS` marks it (exact for the lowest
    // marked lane, which is all that is needed to stop in time).
    let zero_lane = |x: u64| x.wrapping_sub(ONES) & !x & HIGHS;
    while let Some(chunk) = bytes.get(from..from + 8) {
        let x = u64::from_le_bytes(chunk.try_into().unwrap_or([0; 8]));
        let quote = zero_lane(x ^ (ONES * u64::from(b'"')));
        let backslash = zero_lane(x ^ (ONES * u64::from(b'\\')));
        // Lanes below 0x20: subtracting 0x20 borrows into the high bit of plain ASCII lanes;
        // lanes with the high bit set (UTF-8 continuation/lead bytes) are never below 0x20.
        let control = x.wrapping_sub(ONES * 0x20) & !x & HIGHS;
        let hit = quote | backslash | control;
        if hit != 0 {
            return from + (hit.trailing_zeros() / 8) as usize;
        }
        from += 8;
    }
    while bytes
        .get(from)
        .is_some_and(|&b| !STRING_SPECIAL[usize::from(b)])
    {
        from += 1;
    }
    from
}

/// The text of a checked string (escapes resolved).
pub(super) fn text_of(raw: &str, escaped: bool) -> Cow<'_, str> {
    if !escaped {
        return Cow::Borrowed(raw);
    }
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('b') => out.push('\u{8}'),
            Some('f') => out.push('\u{c}'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('t') => out.push('\t'),
            Some('u') => {
                let high = hex_unit(&mut chars);
                let code = if (0xD800..=0xDBFF).contains(&high) {
                    chars.next(); // '\\'
                    chars.next(); // 'u'
                    let low = hex_unit(&mut chars);
                    0x10000 + ((high - 0xD800) << 10) + (low.wrapping_sub(0xDC00) & 0x3FF)
                } else {
                    high
                };
                // The pass checked the escape; a replacement character cannot occur.
                out.push(char::from_u32(code).unwrap_or('\u{FFFD}'));
            }
            Some(c) => out.push(c), // '"', '\\', '/'
            None => {}
        }
    }
    Cow::Owned(out)
}

/// Four hex digits of a checked `\\u` escape.
fn hex_unit(chars: &mut std::str::Chars<'_>) -> u32 {
    chars
        .take(4)
        .fold(0, |acc, c| acc * 16 + c.to_digit(16).unwrap_or(0))
}

/// Writes a checked string: without escapes its bytes are already its serialisation.
pub(super) fn write_str(out: &mut Vec<u8>, raw: &str, escaped: bool, text: &str) {
    if escaped {
        tree::write_json(out, text);
    } else {
        out.push(b'"');
        out.extend_from_slice(raw.as_bytes());
        out.push(b'"');
    }
}
