//! Deltas: how one text becomes another.
//!
//! A [`Delta`] is a sequence of `retain n`, `insert "text"` and `delete n`
//! operations that walks over a whole text, start to end. Lengths count
//! characters. A delta knows the length of the text it applies to
//! ([`Delta::base_len`]) and of the text it produces ([`Delta::target_len`]),
//! so applying it to a text of the wrong length is an error, never a guess.
//!
//! Deltas are kept canonical: no zero-length operations, neighbours of the
//! same kind merged, and an insert always before a delete at the same place.
//! Two deltas with the same effect are therefore equal.
//!
//! On the wire a delta is a JSON array, as in ot.js: a positive number
//! retains, a negative number deletes, a string inserts:
//! `[12, "hello", -3, 40]`.

use std::fmt;

use jumprope::JumpRopeBuf;
use serde::de::{self, SeqAccess, Visitor};
use serde::ser::SerializeSeq;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use smallvec::SmallVec;

use crate::error::Error;
use crate::text::{byte_offset_from, char_count};

/// One step of a delta.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// Keep the next `n` characters.
    Retain(usize),
    /// Insert this text here.
    Insert(String),
    /// Remove the next `n` characters.
    Delete(usize),
}

/// A change from one text to another. See the module documentation.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Delta {
    /// A keystroke is three operations: kept inline, no allocation.
    ops: SmallVec<[Op; 3]>,
    base_len: usize,
    target_len: usize,
}

/// Which way a position sticks when text is inserted exactly there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bias {
    /// Stay before the inserted text.
    Left,
    /// Move past the inserted text.
    Right,
}

/// A contiguous edit inside a delta: at base position `start`, `deleted`
/// characters removed and `inserted` characters put in their place.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hunk {
    /// Position in the base text.
    pub start: usize,
    /// Characters removed from the base text.
    pub deleted: usize,
    /// Characters inserted.
    pub inserted: usize,
}

impl Delta {
    /// The empty delta: applies to the empty text only.
    pub fn new() -> Self {
        Self::default()
    }

    /// The delta that changes nothing in a text of `len` characters.
    pub fn identity(len: usize) -> Self {
        let mut d = Self::new();
        d.retain(len);
        d
    }

    /// Builds a delta from operations, rejecting zero-length ones and
    /// merging neighbours into canonical form.
    pub fn from_ops(ops: impl IntoIterator<Item = Op>) -> Result<Self, Error> {
        let mut d = Self::new();
        for op in ops {
            let len = match &op {
                Op::Retain(n) | Op::Delete(n) => *n,
                Op::Insert(s) => s.len(),
            };
            if d.base_len.max(d.target_len) + len > MAX_LEN {
                return Err(Error::TooLong { max: MAX_LEN });
            }
            match op {
                Op::Retain(0) | Op::Delete(0) => return Err(Error::ZeroLengthOp),
                Op::Insert(s) if s.is_empty() => return Err(Error::ZeroLengthOp),
                Op::Retain(n) => d.retain(n),
                Op::Delete(n) => d.delete(n),
                Op::Insert(s) => d.insert(&s),
            };
        }
        Ok(d)
    }

    /// The delta that replaces `deleted` characters at `pos` with `inserted`,
    /// in a text of `len` characters.
    pub fn splice(len: usize, pos: usize, deleted: usize, inserted: &str) -> Result<Self, Error> {
        if pos + deleted > len {
            return Err(Error::BaseLength {
                expected: pos + deleted,
                actual: len,
            });
        }
        let mut d = Self::new();
        d.retain(pos)
            .insert(inserted)
            .delete(deleted)
            .retain(len - pos - deleted);
        Ok(d)
    }

    /// Appends "keep `n` characters".
    pub fn retain(&mut self, n: usize) -> &mut Self {
        if n == 0 {
            return self;
        }
        self.base_len += n;
        self.target_len += n;
        if let Some(Op::Retain(last)) = self.ops.last_mut() {
            *last += n;
        } else {
            self.ops.push(Op::Retain(n));
        }
        self
    }

    /// Appends "insert `text`". An insert goes before a delete at the same place.
    pub fn insert(&mut self, text: &str) -> &mut Self {
        if text.is_empty() {
            return self;
        }
        self.target_len += char_count(text);
        let len = self.ops.len();
        match self.ops.as_mut_slice() {
            [.., Op::Insert(last)] => last.push_str(text),
            [.., Op::Insert(before), Op::Delete(_)] => before.push_str(text),
            [.., Op::Delete(_)] => self.ops.insert(len - 1, Op::Insert(text.to_owned())),
            _ => self.ops.push(Op::Insert(text.to_owned())),
        }
        self
    }

    /// Appends "remove `n` characters".
    pub fn delete(&mut self, n: usize) -> &mut Self {
        if n == 0 {
            return self;
        }
        self.base_len += n;
        if let Some(Op::Delete(last)) = self.ops.last_mut() {
            *last += n;
        } else {
            self.ops.push(Op::Delete(n));
        }
        self
    }

    /// The operations, canonical.
    pub fn ops(&self) -> &[Op] {
        &self.ops
    }

    /// Length in characters of the text this delta applies to.
    pub fn base_len(&self) -> usize {
        self.base_len
    }

    /// Length in characters of the text this delta produces.
    pub fn target_len(&self) -> usize {
        self.target_len
    }

    /// True when applying the delta changes nothing.
    pub fn is_noop(&self) -> bool {
        self.ops.iter().all(|op| matches!(op, Op::Retain(_)))
    }

    /// The contiguous edits of this delta, in base order.
    pub fn hunks(&self) -> impl Iterator<Item = Hunk> + '_ {
        let mut pos = 0;
        let mut ops = self.ops.as_slice();
        std::iter::from_fn(move || {
            while let [Op::Retain(n), rest @ ..] = ops {
                pos += n;
                ops = rest;
            }
            let mut hunk = Hunk {
                start: pos,
                deleted: 0,
                inserted: 0,
            };
            loop {
                match ops {
                    [Op::Insert(s), rest @ ..] => {
                        hunk.inserted += char_count(s);
                        ops = rest;
                    }
                    [Op::Delete(n), rest @ ..] => {
                        hunk.deleted += n;
                        ops = rest;
                    }
                    _ => break,
                }
            }
            pos += hunk.deleted;
            (hunk.deleted + hunk.inserted > 0).then_some(hunk)
        })
    }

    /// All inserted text, hunks separated by `separator`.
    pub fn inserted_text(&self, separator: &str) -> String {
        let mut out = String::new();
        let mut retained = false;
        for op in &self.ops {
            match op {
                Op::Retain(_) => retained = true,
                Op::Insert(s) => {
                    if retained && !out.is_empty() {
                        out.push_str(separator);
                    }
                    out.push_str(s);
                    retained = false;
                }
                Op::Delete(_) => {}
            }
        }
        out
    }

    /// All text of `base` that this delta removes, hunks separated by `separator`.
    pub fn removed_text(&self, base: &str, separator: &str) -> Result<String, Error> {
        self.check_base(base)?;
        let mut byte = 0;
        let mut out = String::new();
        let mut retained = false;
        for op in &self.ops {
            match op {
                Op::Retain(n) => {
                    byte = advance(base, byte, *n, self.base_len)?;
                    retained = true;
                }
                Op::Insert(_) => {}
                Op::Delete(n) => {
                    let end = advance(base, byte, *n, self.base_len)?;
                    if retained && !out.is_empty() {
                        out.push_str(separator);
                    }
                    out.push_str(&base[byte..end]);
                    byte = end;
                    retained = false;
                }
            }
        }
        Ok(out)
    }

    fn check_base(&self, text: &str) -> Result<(), Error> {
        // Cheap check first; the exact count only when the bytes allow it.
        let bytes = text.len();
        if bytes < self.base_len || bytes > self.base_len.saturating_mul(4) {
            return Err(Error::BaseLength {
                expected: self.base_len,
                actual: char_count(text),
            });
        }
        let actual = char_count(text);
        if actual != self.base_len {
            return Err(Error::BaseLength {
                expected: self.base_len,
                actual,
            });
        }
        Ok(())
    }

    /// Applies the delta to `text`, returning the new text.
    pub fn apply(&self, text: &str) -> Result<String, Error> {
        let mut out = String::with_capacity(text.len() + self.insert_bytes());
        let mut byte = 0;
        for op in &self.ops {
            match op {
                Op::Retain(n) => {
                    let end = advance(text, byte, *n, self.base_len)?;
                    out.push_str(&text[byte..end]);
                    byte = end;
                }
                Op::Insert(s) => out.push_str(s),
                Op::Delete(n) => byte = advance(text, byte, *n, self.base_len)?,
            }
        }
        if byte != text.len() {
            return Err(Error::BaseLength {
                expected: self.base_len,
                actual: char_count(text),
            });
        }
        Ok(out)
    }

    /// Applies the delta to `text` in place: only the bytes after the first
    /// edit move. On error the text is unchanged.
    pub fn apply_in_place(&self, text: &mut String) -> Result<(), Error> {
        // First the byte offset where each operation starts, which checks
        // that the delta fits the text; then the edits, back to front, so
        // the offsets of earlier ones stay valid.
        let mut starts: SmallVec<[usize; 4]> = SmallVec::with_capacity(self.ops.len() + 1);
        let mut byte = 0;
        for op in &self.ops {
            starts.push(byte);
            if let Op::Retain(n) | Op::Delete(n) = op {
                byte = advance(text, byte, *n, self.base_len)?;
            }
        }
        if byte != text.len() {
            return Err(Error::BaseLength {
                expected: self.base_len,
                actual: char_count(text),
            });
        }
        starts.push(byte);
        for (i, op) in self.ops.iter().enumerate().rev() {
            match op {
                Op::Retain(_) => {}
                Op::Insert(s) => text.insert_str(starts[i], s),
                Op::Delete(_) => text.replace_range(starts[i]..starts[i + 1], ""),
            }
        }
        Ok(())
    }

    fn insert_bytes(&self) -> usize {
        self.ops
            .iter()
            .map(|op| match op {
                Op::Insert(s) => s.len(),
                _ => 0,
            })
            .sum()
    }

    /// Applies the delta to the server's text, in place. On error the text
    /// is unchanged.
    pub fn apply_to_rope(&self, rope: &mut JumpRopeBuf) -> Result<(), Error> {
        if rope.len_chars() != self.base_len {
            return Err(Error::BaseLength {
                expected: self.base_len,
                actual: rope.len_chars(),
            });
        }
        self.edit_rope(rope);
        Ok(())
    }

    /// [`Delta::apply_to_rope`] on a rope whose length the caller checked.
    pub(crate) fn edit_rope(&self, rope: &mut JumpRopeBuf) {
        let mut pos = 0;
        for op in &self.ops {
            match op {
                Op::Retain(n) => pos += n,
                Op::Insert(s) => {
                    rope.insert(pos, s);
                    pos += char_count(s);
                }
                Op::Delete(n) => rope.remove(pos..pos + n),
            }
        }
    }

    /// The delta that undoes this one: applied to the result of this delta on
    /// `base`, it gives `base` back.
    pub fn invert(&self, base: &str) -> Result<Delta, Error> {
        self.check_base(base)?;
        let mut inv = Delta::new();
        let mut byte = 0;
        for op in &self.ops {
            match op {
                Op::Retain(n) => {
                    inv.retain(*n);
                    byte = advance(base, byte, *n, self.base_len)?;
                }
                Op::Insert(s) => {
                    inv.delete(char_count(s));
                }
                Op::Delete(n) => {
                    let end = advance(base, byte, *n, self.base_len)?;
                    inv.insert(&base[byte..end]);
                    byte = end;
                }
            }
        }
        Ok(inv)
    }

    /// This delta followed by `next`, as one delta.
    pub fn compose(&self, next: &Delta) -> Result<Delta, Error> {
        if self.target_len != next.base_len {
            return Err(Error::Mismatch {
                left: self.target_len,
                right: next.base_len,
            });
        }
        let mut out = Delta::new();
        let mut a = Cursor::new(&self.ops);
        let mut b = Cursor::new(&next.ops);
        loop {
            match (a.peek(), b.peek()) {
                (None, None) => break,
                // Deletes of the first and inserts of the second come first.
                (Some(Step::Delete(n)), _) => {
                    out.delete(n);
                    a.take(n);
                }
                (_, Some(Step::Insert(s))) => {
                    out.insert(s);
                    b.take_insert();
                }
                (Some(Step::Retain(x)), Some(Step::Retain(y))) => {
                    let n = x.min(y);
                    out.retain(n);
                    a.take(n);
                    b.take(n);
                }
                (Some(Step::Retain(x)), Some(Step::Delete(y))) => {
                    let n = x.min(y);
                    out.delete(n);
                    a.take(n);
                    b.take(n);
                }
                (Some(Step::Insert(_)), Some(Step::Retain(y))) => {
                    let (piece, n) = a.take_insert_prefix(y);
                    out.insert(piece);
                    b.take(n);
                }
                (Some(Step::Insert(_)), Some(Step::Delete(y))) => {
                    let (_, n) = a.take_insert_prefix(y);
                    b.take(n);
                }
                (None, Some(_)) | (Some(_), None) => unreachable!("lengths were checked"),
            }
        }
        Ok(out)
    }

    /// Rebases two deltas made on the same text over each other.
    ///
    /// Returns `(self', other')` such that `self` then `other'` and `other`
    /// then `self'` give the same text. `other` is the one committed first:
    /// where both insert at the same place, its text comes first.
    pub fn transform(&self, other: &Delta) -> Result<(Delta, Delta), Error> {
        if self.base_len != other.base_len {
            return Err(Error::Mismatch {
                left: self.base_len,
                right: other.base_len,
            });
        }
        let mut a_prime = Delta::new();
        let mut b_prime = Delta::new();
        let mut a = Cursor::new(&self.ops);
        let mut b = Cursor::new(&other.ops);
        loop {
            match (a.peek(), b.peek()) {
                (None, None) => break,
                (_, Some(Step::Insert(s))) => {
                    let n = char_count(s);
                    a_prime.retain(n);
                    b_prime.insert(s);
                    b.take_insert();
                }
                (Some(Step::Insert(s)), _) => {
                    let n = char_count(s);
                    a_prime.insert(s);
                    b_prime.retain(n);
                    a.take_insert();
                }
                (Some(x), Some(y)) => {
                    let n = x.len().min(y.len());
                    match (x, y) {
                        (Step::Retain(_), Step::Retain(_)) => {
                            a_prime.retain(n);
                            b_prime.retain(n);
                        }
                        (Step::Delete(_), Step::Retain(_)) => {
                            a_prime.delete(n);
                        }
                        (Step::Retain(_), Step::Delete(_)) => {
                            b_prime.delete(n);
                        }
                        (Step::Delete(_), Step::Delete(_)) => {}
                        _ => unreachable!("inserts handled above"),
                    }
                    a.take(n);
                    b.take(n);
                }
                (None, Some(_)) | (Some(_), None) => unreachable!("lengths were checked"),
            }
        }
        Ok((a_prime, b_prime))
    }

    /// Only the first half of [`Delta::transform`]: this delta rebased to
    /// apply after `other`.
    pub fn rebase(&self, other: &Delta) -> Result<Delta, Error> {
        Ok(self.transform(other)?.0)
    }

    /// Where base position `pos` ends up in the target text.
    pub fn map_position(&self, pos: usize, bias: Bias) -> usize {
        let mut base = 0;
        let mut target = 0;
        for op in &self.ops {
            match op {
                Op::Retain(n) => {
                    if pos < base + n {
                        return target + (pos - base);
                    }
                    base += n;
                    target += n;
                }
                Op::Insert(s) => {
                    if pos == base && bias == Bias::Left {
                        return target;
                    }
                    target += char_count(s);
                }
                Op::Delete(n) => {
                    if pos < base + n {
                        return target;
                    }
                    base += n;
                }
            }
        }
        target + pos.saturating_sub(base)
    }

    /// Where target position `pos` came from in the base text. Inserted
    /// text maps to the place it was inserted at.
    pub fn map_position_back(&self, pos: usize) -> usize {
        let mut base = 0;
        let mut target = 0;
        for op in &self.ops {
            match op {
                Op::Retain(n) => {
                    if pos < target + n {
                        return base + (pos - target);
                    }
                    base += n;
                    target += n;
                }
                Op::Insert(s) => {
                    let n = char_count(s);
                    if pos < target + n {
                        return base;
                    }
                    target += n;
                }
                Op::Delete(n) => base += n,
            }
        }
        base + pos.saturating_sub(target)
    }
}

/// Byte offset `chars` characters after `byte`; a text too short for a delta
/// expecting `expected` characters is an error.
fn advance(text: &str, byte: usize, chars: usize, expected: usize) -> Result<usize, Error> {
    byte_offset_from(text, byte, chars).ok_or_else(|| Error::BaseLength {
        expected,
        actual: char_count(text),
    })
}

/// What is left of the current operation under a [`Cursor`].
#[derive(Clone, Copy)]
enum Step<'a> {
    Retain(usize),
    Insert(&'a str),
    Delete(usize),
}

impl Step<'_> {
    fn len(&self) -> usize {
        match self {
            Step::Retain(n) | Step::Delete(n) => *n,
            Step::Insert(s) => char_count(s),
        }
    }
}

/// Walks a delta's operations, taking parts of them.
struct Cursor<'a> {
    ops: &'a [Op],
    index: usize,
    /// Characters already taken from `ops[index]` (for inserts: bytes).
    offset: usize,
}

impl<'a> Cursor<'a> {
    fn new(ops: &'a [Op]) -> Self {
        Self {
            ops,
            index: 0,
            offset: 0,
        }
    }

    fn peek(&self) -> Option<Step<'a>> {
        Some(match self.ops.get(self.index)? {
            Op::Retain(n) => Step::Retain(n - self.offset),
            Op::Delete(n) => Step::Delete(n - self.offset),
            Op::Insert(s) => Step::Insert(&s[self.offset..]),
        })
    }

    /// Takes `n` characters of the current retain or delete.
    fn take(&mut self, n: usize) {
        if let Some(Op::Retain(len) | Op::Delete(len)) = self.ops.get(self.index) {
            self.offset += n;
            if self.offset >= *len {
                self.index += 1;
                self.offset = 0;
            }
        }
    }

    /// Takes the rest of the current insert.
    fn take_insert(&mut self) {
        self.index += 1;
        self.offset = 0;
    }

    /// Takes up to `max` characters of the current insert; returns them and their count.
    fn take_insert_prefix(&mut self, max: usize) -> (&'a str, usize) {
        let Some(Op::Insert(s)) = self.ops.get(self.index) else {
            return ("", 0);
        };
        let rest = &s[self.offset..];
        match byte_offset_from(rest, 0, max) {
            Some(end) if end < rest.len() => {
                self.offset += end;
                (&rest[..end], max)
            }
            _ => {
                self.index += 1;
                self.offset = 0;
                (rest, char_count(rest))
            }
        }
    }
}

impl Serialize for Delta {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(self.ops.len()))?;
        for op in &self.ops {
            match op {
                Op::Retain(n) => seq.serialize_element(&(*n as u64))?,
                Op::Delete(n) => seq.serialize_element(&-(*n as i64))?,
                Op::Insert(s) => seq.serialize_element(s)?,
            }
        }
        seq.end()
    }
}

/// The longest text a delta may describe, in characters: far beyond any
/// document limit, and small enough that no length sum overflows, even in
/// the browser's 32-bit WebAssembly.
pub const MAX_LEN: usize = 1 << 30;

struct WireOp(Op);

impl<'de> Deserialize<'de> for WireOp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct OpVisitor;
        impl Visitor<'_> for OpVisitor {
            type Value = WireOp;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(
                    "a delta operation: a positive number (retain), a negative number (delete) or a string (insert)",
                )
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<WireOp, E> {
                if n > MAX_LEN as u64 {
                    return Err(E::custom(Error::TooLong { max: MAX_LEN }));
                }
                Ok(WireOp(Op::Retain(n as usize)))
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<WireOp, E> {
                if n >= 0 {
                    return self.visit_u64(n as u64);
                }
                let len = n.unsigned_abs();
                if len > MAX_LEN as u64 {
                    return Err(E::custom(Error::TooLong { max: MAX_LEN }));
                }
                Ok(WireOp(Op::Delete(len as usize)))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<WireOp, E> {
                Ok(WireOp(Op::Insert(s.to_owned())))
            }
            fn visit_string<E: de::Error>(self, s: String) -> Result<WireOp, E> {
                Ok(WireOp(Op::Insert(s)))
            }
        }
        deserializer.deserialize_any(OpVisitor)
    }
}

impl<'de> Deserialize<'de> for Delta {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct DeltaVisitor;
        impl<'de> Visitor<'de> for DeltaVisitor {
            type Value = Delta;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a delta: an array of numbers and strings")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Delta, A::Error> {
                let mut ops = Vec::with_capacity(seq.size_hint().unwrap_or(3).min(64));
                while let Some(WireOp(op)) = seq.next_element()? {
                    ops.push(op);
                }
                Delta::from_ops(ops).map_err(de::Error::custom)
            }
        }
        deserializer.deserialize_seq(DeltaVisitor)
    }
}
