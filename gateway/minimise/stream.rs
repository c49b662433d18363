//! The streaming minimiser: one pass over the partner's bytes that parses strictly, checks
//! the schema's [`Shape`] and writes the granted fields as it reads, without building a tree
//! of the whole answer (which cost more than half of minimising; see docs/performance.md).
//!
//! It accepts exactly what the reference path (strict parse → `jsonschema` → rebuild) accepts
//! and releases the same fields with the same pointers: the same strictness (valid UTF-8, no
//! duplicate keys after unescaping, bounded depth, finite numbers, paired surrogates,
//! nothing after the value) and the same release rules as [`super::tree`]. Only the order of
//! object members differs (document order here, sorted there); JSON gives it no meaning.
//! When the pass stops, the caller runs the reference path to name the reason: failures are
//! rare and their wording then stays the same on both paths.
//!
//! Values are never copied through unparsed: a released string without escapes is copied
//! after the pass has checked every byte of it (it then reads the same as its serialisation),
//! a small integer likewise; everything else is serialised from its parsed value.

use super::shape::{types, Bound, LeafChecks, LeafShape, NativeChecks, Num, Shape, ANY};
use super::transform::{self, Context};
use super::tree::{self, FieldTree, Log, Node};
use crate::policy::Transform;
use serde_json::{Number, Value};
use std::borrow::Cow;
use std::collections::HashSet;

/// The pass stopped: the body is not released (the caller asks the reference path why).
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Stop;

type Step<T = ()> = Result<T, Stop>;

/// What the reference parser (serde_json) allows at most, whatever the configured limit.
const SERDE_JSON_MAX_DEPTH: usize = 127;

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

/// Minimises `bytes` in one pass; returns the released body and the pointer log.
pub(super) fn minimise(
    bytes: &[u8],
    shape: &Shape,
    tree: &FieldTree,
    context: &Context<'_>,
    max_depth: usize,
) -> Step<(Vec<u8>, Log)> {
    // One UTF-8 check for the whole body; every slice taken later falls on ASCII bytes.
    let text = std::str::from_utf8(bytes).map_err(|_| Stop)?;
    let mut pass = Pass {
        text,
        bytes,
        pos: 0,
        max_depth: max_depth.min(SERDE_JSON_MAX_DEPTH),
        out: Vec::with_capacity(bytes.len() / 4 + 64),
        // Room for the pointers of a typical answer (a few per 100 bytes), so the lists do
        // not grow step by step.
        log: Log::with_capacity(bytes.len()),
        context,
    };
    pass.ws();
    let written = pass.value(shape, Some(&tree.root), 0)?;
    pass.ws();
    if pass.pos != bytes.len() {
        return Err(Stop);
    }
    if !written {
        pass.out.clear();
        pass.out.extend_from_slice(b"{}");
    }
    Ok((pass.out, pass.log))
}

struct Pass<'a, 'c> {
    text: &'a str,
    bytes: &'a [u8],
    pos: usize,
    max_depth: usize,
    out: Vec<u8>,
    log: Log,
    context: &'c Context<'c>,
}

/// A scalar as read: strings and numbers point into the body.
enum Scalar<'a> {
    /// The text between the quotes, and whether it holds escapes.
    Str(&'a str, bool),
    Num(&'a str, Num),
    Bool(bool),
    Null,
}

impl Scalar<'_> {
    fn to_value(&self) -> Value {
        match self {
            Self::Str(raw, escaped) => Value::String(text_of(raw, *escaped).into_owned()),
            Self::Num(_, Num::Int(i)) => Value::Number((*i).into()),
            Self::Num(_, Num::Other(n)) => Value::Number(n.clone()),
            Self::Bool(b) => Value::Bool(*b),
            Self::Null => Value::Null,
        }
    }
}

impl<'a> Pass<'a, '_> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.pos += 1;
        }
    }

    fn expect(&mut self, byte: u8) -> Step {
        if self.peek() != Some(byte) {
            return Err(Stop);
        }
        self.pos += 1;
        Ok(())
    }

    /// After a member or element: a comma (another follows) or the closing bracket.
    fn another(&mut self, close: u8) -> Step<bool> {
        self.ws();
        match self.peek() {
            Some(b',') => {
                self.pos += 1;
                self.ws();
                Ok(true)
            }
            Some(b) if b == close => {
                self.pos += 1;
                Ok(false)
            }
            _ => Err(Stop),
        }
    }

    /// One value under `plan` (`None`: check only, nothing is written or logged). Returns
    /// whether anything was written, with the release rules of [`super::tree`].
    fn value(&mut self, shape: &Shape, plan: Option<&Node>, depth: usize) -> Step<bool> {
        match (plan, self.peek()) {
            (None, Some(b'{')) => self.object(shape, None, depth),
            (None, Some(b'[')) => self.array(shape, None, depth),
            (None, _) => {
                let scalar = self.scalar()?;
                check_leaf(shape, &scalar)?;
                Ok(false)
            }
            (Some(Node::Release(t)), _) => {
                self.release(shape, t, depth)?;
                Ok(true)
            }
            (Some(Node::Object(children)), Some(b'{')) => self.object(shape, Some(children), depth),
            (Some(Node::Each(child)), Some(b'[')) => self.array(shape, Some(child), depth),
            // The plan descends where the answer has no container: withhold the value whole.
            (Some(_), _) => {
                self.log.withhold();
                self.value(shape, None, depth)
            }
        }
    }

    fn object(
        &mut self,
        shape: &Shape,
        children: Option<&[(String, Node)]>,
        depth: usize,
    ) -> Step<bool> {
        if depth >= self.max_depth {
            return Err(Stop);
        }
        let object = match shape {
            Shape::Object(o) => Some(o),
            Shape::Any => None,
            _ => return Err(Stop),
        };
        self.pos += 1;
        let start = self.out.len();
        if children.is_some() {
            self.out.push(b'{');
        }
        let mut empty = true;
        let mut seen = 0u64;
        let mut extra = KeySet::default();
        self.ws();
        if self.peek() == Some(b'}') {
            self.pos += 1;
        } else {
            loop {
                if self.peek() != Some(b'"') {
                    return Err(Stop);
                }
                // Most keys are schema properties written plainly: recognise them by their
                // bytes, without the general scan (a key with escapes takes the scan).
                let plain = object.and_then(|o| o.plain_key_at(&self.bytes[self.pos + 1..]));
                let (raw, escaped) = match plain {
                    Some(len) => {
                        let raw = &self.text[self.pos + 1..self.pos + 1 + len];
                        self.pos += len + 2;
                        (raw, false)
                    }
                    None => self.string()?,
                };
                let key = text_of(raw, escaped);
                self.ws();
                self.expect(b':')?;
                self.ws();
                // Duplicates are refused whether or not the key is granted: a filter and a
                // consumer that pick different copies is a classic bypass.
                let mut token = None;
                let value_shape = match object {
                    Some(o) => match o.property(&key) {
                        Some((i, s)) => {
                            if seen & (1 << i) != 0 {
                                return Err(Stop);
                            }
                            seen |= 1 << i;
                            token = Some(o.tokens[i].as_str());
                            s
                        }
                        None if o.additional && extra.insert(key.clone()) => &ANY,
                        None => return Err(Stop),
                    },
                    None if extra.insert(key.clone()) => &ANY,
                    None => return Err(Stop),
                };
                match children {
                    None => {
                        self.value(value_shape, None, depth + 1)?;
                    }
                    Some(children) => {
                        let len = self.log.pointer.len();
                        match token {
                            Some(token) => self.log.pointer.push_str(token),
                            None => tree::push_token(&mut self.log.pointer, &key),
                        }
                        match children.iter().find(|(k, _)| *k == *key) {
                            Some((_, child)) => {
                                let mark = self.out.len();
                                if !empty {
                                    self.out.push(b',');
                                }
                                write_str(&mut self.out, raw, escaped, &key);
                                self.out.push(b':');
                                if self.value(value_shape, Some(child), depth + 1)? {
                                    empty = false;
                                } else {
                                    self.out.truncate(mark);
                                }
                            }
                            None => {
                                self.log.withhold();
                                self.value(value_shape, None, depth + 1)?;
                            }
                        }
                        self.log.pointer.truncate(len);
                    }
                }
                if !self.another(b'}')? {
                    break;
                }
            }
        }
        if object.is_some_and(|o| seen & o.required != o.required) {
            return Err(Stop);
        }
        if children.is_none() {
            return Ok(false);
        }
        if empty {
            self.out.truncate(start);
            return Ok(false);
        }
        self.out.push(b'}');
        Ok(true)
    }

    fn array(&mut self, shape: &Shape, child: Option<&Node>, depth: usize) -> Step<bool> {
        if depth >= self.max_depth {
            return Err(Stop);
        }
        let (items, min_items, max_items) = match shape {
            Shape::Array(a) => (&*a.items, a.min_items, a.max_items),
            Shape::Any => (&ANY, 0, u64::MAX),
            _ => return Err(Stop),
        };
        self.pos += 1;
        if child.is_some() {
            self.out.push(b'[');
        }
        let mut count = 0u64;
        let mut empty = true;
        self.ws();
        if self.peek() == Some(b']') {
            self.pos += 1;
        } else {
            loop {
                match child {
                    None => {
                        self.value(items, None, depth + 1)?;
                    }
                    Some(child) => {
                        let len = self.log.pointer.len();
                        push_index(&mut self.log.pointer, count);
                        let mark = self.out.len();
                        if !empty {
                            self.out.push(b',');
                        }
                        if self.value(items, Some(child), depth + 1)? {
                            empty = false;
                        } else {
                            self.out.truncate(mark);
                        }
                        self.log.pointer.truncate(len);
                    }
                }
                count += 1;
                if !self.another(b']')? {
                    break;
                }
            }
        }
        if count < min_items || count > max_items {
            return Err(Stop);
        }
        if child.is_none() {
            return Ok(false);
        }
        self.out.push(b']');
        Ok(true)
    }

    /// Releases the value here through `transform`, after checking all of it.
    fn release(&mut self, shape: &Shape, transform: &Transform, depth: usize) -> Step {
        self.log.released.push(&self.log.pointer);
        let start = self.pos;
        if let Some(b'{' | b'[') = self.peek() {
            // A whole object or list: rare, so it goes through the tree once checked.
            self.value(shape, None, depth)?;
            let value = super::strict::parse(&self.bytes[start..self.pos], self.max_depth)
                .map_err(|_| Stop)?;
            self.write_released(transform, &value);
            return Ok(());
        }
        let scalar = self.scalar()?;
        check_leaf(shape, &scalar)?;
        match (transform, &scalar) {
            (Transform::Keep, Scalar::Str(raw, escaped)) => {
                write_str(&mut self.out, raw, *escaped, &text_of(raw, *escaped));
            }
            (Transform::Keep, Scalar::Num(raw, Num::Int(_))) => {
                self.out.extend_from_slice(raw.as_bytes());
            }
            (Transform::Keep, Scalar::Num(_, Num::Other(n))) => tree::write_json(&mut self.out, n),
            (Transform::Keep, Scalar::Bool(b)) => {
                self.out
                    .extend_from_slice(if *b { b"true" } else { b"false" });
            }
            (Transform::Keep, Scalar::Null) => self.out.extend_from_slice(b"null"),
            // The two transforms of the common grants, without building a value.
            (Transform::Exists, s) => {
                let exists = match s {
                    Scalar::Null => false,
                    Scalar::Str(raw, _) => !raw.is_empty(),
                    Scalar::Num(..) | Scalar::Bool(_) => true,
                };
                self.out
                    .extend_from_slice(if exists { b"true" } else { b"false" });
            }
            (Transform::Year, Scalar::Str(raw, escaped)) => {
                match transform::year_of_text(&text_of(raw, *escaped)) {
                    Some(year) => tree::write_json(&mut self.out, &year),
                    None => self.out.extend_from_slice(b"null"),
                }
            }
            (t, s) => {
                let value = s.to_value();
                self.write_released(t, &value);
            }
        }
        Ok(())
    }

    fn write_released(&mut self, transform: &Transform, value: &Value) {
        match transform {
            Transform::Keep => tree::write_json(&mut self.out, value),
            t => tree::write_json(&mut self.out, &transform::apply(t, value, self.context)),
        }
    }

    fn scalar(&mut self) -> Step<Scalar<'a>> {
        match self.peek() {
            Some(b'"') => {
                let (raw, escaped) = self.string()?;
                Ok(Scalar::Str(raw, escaped))
            }
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(b't') => self.literal(b"true", Scalar::Bool(true)),
            Some(b'f') => self.literal(b"false", Scalar::Bool(false)),
            Some(b'n') => self.literal(b"null", Scalar::Null),
            _ => Err(Stop),
        }
    }

    fn literal(&mut self, word: &[u8], scalar: Scalar<'a>) -> Step<Scalar<'a>> {
        if !self.bytes[self.pos..].starts_with(word) {
            return Err(Stop);
        }
        self.pos += word.len();
        Ok(scalar)
    }

    /// A string at the opening quote; returns the text between the quotes, checked.
    fn string(&mut self) -> Step<(&'a str, bool)> {
        self.pos += 1;
        let start = self.pos;
        let mut escaped = false;
        loop {
            self.pos = skip_plain(self.bytes, self.pos);
            match self.peek() {
                Some(b'"') => break,
                Some(b'\\') => {
                    escaped = true;
                    self.pos += 1;
                    self.escape()?;
                }
                // A control character, or the body ends inside the string.
                _ => return Err(Stop),
            }
        }
        let raw = &self.text[start..self.pos];
        self.pos += 1;
        Ok((raw, escaped))
    }

    /// One escape after its backslash. Surrogates must pair up, as serde_json requires
    /// for text (a lone surrogate is no character).
    fn escape(&mut self) -> Step {
        match self.peek() {
            Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => {
                self.pos += 1;
                Ok(())
            }
            Some(b'u') => {
                let unit = self.hex4(self.pos + 1)?;
                self.pos += 5;
                match unit {
                    0xDC00..=0xDFFF => Err(Stop),
                    0xD800..=0xDBFF => {
                        if !self.bytes[self.pos..].starts_with(b"\\u") {
                            return Err(Stop);
                        }
                        let low = self.hex4(self.pos + 2)?;
                        if !(0xDC00..=0xDFFF).contains(&low) {
                            return Err(Stop);
                        }
                        self.pos += 6;
                        Ok(())
                    }
                    _ => Ok(()),
                }
            }
            _ => Err(Stop),
        }
    }

    fn hex4(&self, at: usize) -> Step<u32> {
        let digits = self.bytes.get(at..at + 4).ok_or(Stop)?;
        digits.iter().try_fold(0u32, |acc, &b| {
            let d = char::from(b).to_digit(16).ok_or(Stop)?;
            Ok(acc * 16 + d)
        })
    }

    /// A number by the JSON grammar. Integers of up to 18 digits and decimals of up to 15
    /// digits without exponent are computed here, the way serde_json computes them (for a
    /// decimal: the digits as an integer divided by a power of ten; below 2^53 both are
    /// exact, so the one division rounds correctly and gives serde_json's value). Every
    /// other number goes through serde_json's parser, so range errors (`1e400`) and rounding
    /// stay the reference path's.
    fn number(&mut self) -> Step<Scalar<'a>> {
        const POW10: [f64; 16] = [
            1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
        ];
        let start = self.pos;
        let negative = self.peek() == Some(b'-');
        if negative {
            self.pos += 1;
        }
        let mut significand = 0u64;
        let mut digits = 0usize;
        match self.peek() {
            Some(b'0') => {
                self.pos += 1;
                digits = 1;
            }
            Some(b'1'..=b'9') => {
                self.take_digits(&mut significand, &mut digits);
            }
            _ => return Err(Stop),
        }
        let mut frac_digits = 0;
        if self.peek() == Some(b'.') {
            self.pos += 1;
            frac_digits = self.take_digits(&mut significand, &mut digits);
            if frac_digits == 0 {
                return Err(Stop);
            }
        }
        let mut exponent = false;
        if let Some(b'e' | b'E') = self.peek() {
            exponent = true;
            self.pos += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.pos += 1;
            }
            self.one_or_more_digits()?;
        }
        let raw = &self.text[start..self.pos];
        if !exponent {
            let negative_zero = negative && significand == 0;
            if frac_digits == 0 && digits <= 18 && !negative_zero {
                let magnitude = significand as i64;
                return Ok(Scalar::Num(
                    raw,
                    Num::Int(if negative { -magnitude } else { magnitude }),
                ));
            }
            if frac_digits > 0 && digits <= 15 {
                let magnitude = significand as f64 / POW10[frac_digits];
                if let Some(n) = Number::from_f64(if negative { -magnitude } else { magnitude }) {
                    return Ok(Scalar::Num(raw, Num::Other(n)));
                }
            }
        }
        let number: Number = serde_json::from_str(raw).map_err(|_| Stop)?;
        Ok(Scalar::Num(raw, Num::Other(number)))
    }

    /// Reads digits into `significand` (its first 19 digits); returns how many were read.
    fn take_digits(&mut self, significand: &mut u64, digits: &mut usize) -> usize {
        let from = self.pos;
        while let Some(d @ b'0'..=b'9') = self.peek() {
            if *digits < 19 {
                *significand = *significand * 10 + u64::from(d - b'0');
            }
            *digits += 1;
            self.pos += 1;
        }
        self.pos - from
    }

    fn digits(&mut self) {
        while self.peek().is_some_and(|b| b.is_ascii_digit()) {
            self.pos += 1;
        }
    }

    fn one_or_more_digits(&mut self) -> Step {
        if !self.peek().is_some_and(|b| b.is_ascii_digit()) {
            return Err(Stop);
        }
        self.digits();
        Ok(())
    }
}

/// The first byte at or after `from` that ends a plain run of string text: a quote, a
/// backslash or a control character. Eight bytes at a time: strings are most of a body.
fn skip_plain(bytes: &[u8], mut from: usize) -> usize {
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
fn text_of(raw: &str, escaped: bool) -> Cow<'_, str> {
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

/// Appends `/index` to a pointer without the formatting machinery (one per list element).
fn push_index(pointer: &mut String, index: u64) {
    let mut digits = [0u8; 20];
    let mut n = index;
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    pointer.push('/');
    for &d in &digits[at..] {
        pointer.push(char::from(d));
    }
}

/// Writes a checked string: without escapes its bytes are already its serialisation.
fn write_str(out: &mut Vec<u8>, raw: &str, escaped: bool, text: &str) {
    if escaped {
        tree::write_json(out, text);
    } else {
        out.push(b'"');
        out.extend_from_slice(raw.as_bytes());
        out.push(b'"');
    }
}

fn check_leaf(shape: &Shape, scalar: &Scalar<'_>) -> Step {
    let leaf = match shape {
        Shape::Any => return Ok(()),
        Shape::Leaf(leaf) => leaf,
        Shape::Object(_) | Shape::Array(_) => return Err(Stop),
    };
    if !type_fits(leaf, scalar) {
        return Err(Stop);
    }
    let ok = match &leaf.checks {
        LeafChecks::None => true,
        LeafChecks::Native(checks) => native_ok(checks, scalar),
        LeafChecks::Validator(v) => v.is_valid(&scalar.to_value()),
    };
    if ok {
        Ok(())
    } else {
        Err(Stop)
    }
}

fn type_fits(leaf: &LeafShape, scalar: &Scalar<'_>) -> bool {
    let t = leaf.types;
    match scalar {
        Scalar::Null => t & types::NULL != 0,
        Scalar::Bool(_) => t & types::BOOLEAN != 0,
        Scalar::Str(..) => t & types::STRING != 0,
        Scalar::Num(_, n) => t & types::NUMBER != 0 || (t & types::INTEGER != 0 && n.is_integer()),
    }
}

fn native_ok(c: &NativeChecks, scalar: &Scalar<'_>) -> bool {
    use std::cmp::Ordering::{Equal, Greater, Less};
    match scalar {
        Scalar::Num(_, n) => {
            let within = |bound: Option<Bound>, allowed: [std::cmp::Ordering; 2]| match bound {
                None => true,
                Some(b) => b.cmp(n).is_some_and(|o| allowed.contains(&o)),
            };
            c.one_of_strings.is_none()
                && within(c.minimum, [Greater, Equal])
                && within(c.maximum, [Less, Equal])
                && within(c.exclusive_minimum, [Greater, Greater])
                && within(c.exclusive_maximum, [Less, Less])
        }
        Scalar::Str(raw, escaped) => {
            let text = text_of(raw, *escaped);
            let needs_length = c.min_length.is_some() || c.max_length.is_some();
            let length = if needs_length {
                text.chars().count() as u64
            } else {
                0
            };
            c.min_length.is_none_or(|m| length >= m)
                && c.max_length.is_none_or(|m| length <= m)
                && c.one_of_strings
                    .as_ref()
                    .is_none_or(|list| list.iter().any(|s| *s == *text))
                && (!c.date || super::shape::is_valid_date(&text))
        }
        Scalar::Bool(_) | Scalar::Null => c.one_of_strings.is_none(),
    }
}

/// Keys of an object outside its schema's properties, to refuse duplicates among them.
/// Small sets are a list; past a few dozen keys a hash set keeps a hostile answer with
/// many keys linear.
#[derive(Default)]
struct KeySet<'k> {
    list: Vec<Cow<'k, str>>,
    set: Option<HashSet<Cow<'k, str>>>,
}

impl<'k> KeySet<'k> {
    /// Adds `key`; false if it was already there.
    fn insert(&mut self, key: Cow<'k, str>) -> bool {
        if let Some(set) = &mut self.set {
            return set.insert(key);
        }
        if self.list.contains(&key) {
            return false;
        }
        self.list.push(key);
        if self.list.len() > 32 {
            self.set = Some(self.list.drain(..).collect());
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plain_text_scan_stops_at_every_special_byte_in_every_lane() {
        for len in 0..24 {
            for filler in [b'a', b' ', 0x21, 0x7f, 0x80, 0xff] {
                let plain = vec![filler; len];
                assert_eq!(skip_plain(&plain, 0), len);
                for at in 0..len {
                    for special in [b'"', b'\\', 0x00, 0x01, 0x1f, b'\n'] {
                        let mut bytes = plain.clone();
                        bytes[at] = special;
                        // A second special byte later must not hide the first.
                        if at + 1 < len {
                            bytes[at + 1] = 0x00;
                        }
                        assert_eq!(
                            skip_plain(&bytes, 0),
                            at,
                            "{filler:#x} {special:#x} at {at}"
                        );
                        assert_eq!(skip_plain(&bytes, at), at);
                    }
                }
            }
        }
    }

    #[test]
    fn numbers_are_serde_json_numbers() {
        for raw in [
            "0",
            "-1",
            "123456789012345678",
            "1234567890123456789",
            "1245.5",
            "-0.1",
            "0.3",
            "987.25",
            "123456789.012345",
            "-0.0",
            "9.007199254740993",
            "1e2",
            "1.5E-3",
            "-0",
            "12345678901234567890",
            "0.000000000000001",
        ] {
            let expected: Number = serde_json::from_str(raw).unwrap();
            let tree = FieldTree::default();
            let mut pass = Pass {
                text: raw,
                bytes: raw.as_bytes(),
                pos: 0,
                max_depth: 8,
                out: Vec::new(),
                log: Log::default(),
                context: &Context::none(),
            };
            let _ = tree;
            let Ok(Scalar::Num(_, n)) = pass.number() else {
                panic!("{raw} is a number");
            };
            assert_eq!(pass.pos, raw.len());
            let got = Scalar::Num(raw, n).to_value();
            assert_eq!(got, Value::Number(expected), "{raw}");
        }
    }

    #[test]
    fn list_indices_are_decimal() {
        let mut p = String::from("/a");
        push_index(&mut p, 0);
        push_index(&mut p, 1_234_567);
        assert_eq!(p, "/a/0/1234567");
    }
}
