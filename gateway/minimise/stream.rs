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

mod scalar;
mod text;

#[cfg(test)]
mod tests;

use super::shape::{Num, Shape, ANY};
use super::transform::{self, Context};
use super::tree::{self, FieldTree, Log, Node};
use crate::minimise::transform::Transform;
use scalar::{check_leaf, Scalar};
use serde_json::{Number, Value};
use std::borrow::Cow;
use std::collections::HashSet;
use text::{skip_plain, text_of, write_str};

/// The pass stopped: the body is not released (the caller asks the reference path why).
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Stop;

type Step<T = ()> = Result<T, Stop>;

/// What the reference parser (serde_json) allows at most, whatever the configured limit.
const SERDE_JSON_MAX_DEPTH: usize = 127;

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
                        // Every element is the same field (see [`super::PointerList`]).
                        self.log.pointer.push_str("/*");
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
