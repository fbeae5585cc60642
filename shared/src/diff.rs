//! Computing a delta from an old and a new text.
//!
//! The browser never reports *what* the user did, only what the text is now
//! (typing, paste, cut, IME composition, autocorrect and undo all look the
//! same). As in Neil Fraser's differential synchronization we diff the
//! state: trim the common prefix and suffix (microseconds even on a large
//! document), then run the `similar` crate's Myers diff on what is left,
//! which for a keystroke is nothing at all.

use similar::{Algorithm, DiffOp};

use crate::delta::Delta;
use crate::text::char_count;

/// Middles longer than this (in characters, old and new together) are
/// replaced whole instead of diffed: a paste over a large selection needs no
/// finer delta, and Myers' worst case grows with the square of the length.
const MAX_DIFF_CHARS: usize = 4096;

impl Delta {
    /// The delta that turns `old` into `new`.
    pub fn diff(old: &str, new: &str) -> Delta {
        let (old_b, new_b) = (old.as_bytes(), new.as_bytes());
        let prefix = floor_boundary(old, common_prefix(old_b, new_b));
        let max_suffix = (old_b.len() - prefix).min(new_b.len() - prefix);
        let suffix = common_suffix(&old_b[old_b.len() - max_suffix..], &new_b[new_b.len() - max_suffix..]);
        let suffix = old.len() - ceil_boundary(old, old.len() - suffix);

        let old_mid = &old[prefix..old.len() - suffix];
        let new_mid = &new[prefix..new.len() - suffix];
        let mut delta = Delta::new();
        // Enter at the end of a line inserts "\n" just before the next line,
        // which the trimming above cannot tell from "\n" at the start of
        // that line. Credit it to the line being typed on: slide the
        // insertion back over the newline before it.
        if old_mid.is_empty() && new_mid.ends_with('\n') && old[..prefix].ends_with('\n') {
            delta.retain(char_count(&old[..prefix]) - 1);
            delta.insert("\n").insert(&new_mid[..new_mid.len() - 1]);
            delta.retain(char_count(&old[old.len() - suffix..]) + 1);
            return delta;
        }
        delta.retain(char_count(&old[..prefix]));
        diff_middle(&mut delta, old_mid, new_mid);
        delta.retain(char_count(&old[old.len() - suffix..]));
        delta
    }
}

/// Appends the edit from `old` to `new` (which share no prefix or suffix).
fn diff_middle(delta: &mut Delta, old: &str, new: &str) {
    if old.is_empty() || new.is_empty() || old.len() + new.len() > MAX_DIFF_CHARS * 4 {
        delta.insert(new).delete(char_count(old));
        return;
    }
    let old_chars: Vec<char> = old.chars().collect();
    let new_chars: Vec<char> = new.chars().collect();
    if old_chars.len() + new_chars.len() > MAX_DIFF_CHARS {
        delta.insert(new).delete(old_chars.len());
        return;
    }
    for op in similar::capture_diff_slices(Algorithm::Myers, &old_chars, &new_chars) {
        match op {
            DiffOp::Equal { len, .. } => {
                delta.retain(len);
            }
            DiffOp::Delete { old_len, .. } => {
                delta.delete(old_len);
            }
            DiffOp::Insert { new_index, new_len, .. } => {
                delta.insert(&String::from_iter(&new_chars[new_index..new_index + new_len]));
            }
            DiffOp::Replace {
                old_len,
                new_index,
                new_len,
                ..
            } => {
                delta
                    .insert(&String::from_iter(&new_chars[new_index..new_index + new_len]))
                    .delete(old_len);
            }
        }
    }
}

/// Length in bytes of the common prefix, compared a block at a time.
fn common_prefix(a: &[u8], b: &[u8]) -> usize {
    const BLOCK: usize = 128;
    let n = a.len().min(b.len());
    let mut i = 0;
    while i + BLOCK <= n && a[i..i + BLOCK] == b[i..i + BLOCK] {
        i += BLOCK;
    }
    while i < n && a[i] == b[i] {
        i += 1;
    }
    i
}

/// Length in bytes of the common suffix of two equally long slices.
fn common_suffix(a: &[u8], b: &[u8]) -> usize {
    const BLOCK: usize = 128;
    let n = a.len();
    let mut i = 0;
    while i + BLOCK <= n && a[n - i - BLOCK..n - i] == b[n - i - BLOCK..n - i] {
        i += BLOCK;
    }
    while i < n && a[n - i - 1] == b[n - i - 1] {
        i += 1;
    }
    i
}

/// The largest character boundary of `s` at or before `i`.
fn floor_boundary(s: &str, mut i: usize) -> usize {
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// The smallest character boundary of `s` at or after `i`.
fn ceil_boundary(s: &str, mut i: usize) -> usize {
    while !s.is_char_boundary(i) {
        i += 1;
    }
    i
}
