//! Positions in text: characters, bytes and lines.
//!
//! Every position in the product counts Unicode scalar values (Rust `char`s).
//! These helpers convert between character and byte offsets of a `str` with
//! word-at-a-time scans, and give section policies one view of line
//! boundaries ([`Lines`]) over both the browser's `str` and the server's
//! `JumpRope`, so both sides compute the very same sections.

use std::cell::Cell;

use jumprope::{JumpRope, JumpRopeBuf};

use crate::delta::{Delta, Op};

/// Number of characters in `s`.
pub fn char_count(s: &str) -> usize {
    // ASCII is checked many bytes at a time, and counting is the standard
    // library's word-at-a-time count.
    if s.is_ascii() {
        s.len()
    } else {
        s.chars().count()
    }
}

/// Byte offset of character `chars` in `s`, or `None` when `s` is shorter.
/// `chars == char_count(s)` gives `Some(s.len())`.
pub fn byte_offset(s: &str, chars: usize) -> Option<usize> {
    byte_offset_from(s, 0, chars)
}

/// Byte offset reached by walking `chars` characters forward from byte `from`
/// (which must be a character boundary).
pub fn byte_offset_from(s: &str, from: usize, chars: usize) -> Option<usize> {
    let rest = &s.as_bytes()[from..];
    if chars <= rest.len() && rest[..chars].is_ascii() {
        return Some(from + chars);
    }
    // A window of `left` bytes holds at most `left` characters: count the
    // ones in it (finishing a character cut by its end), skip them, repeat.
    let mut at = from;
    let mut left = chars;
    while left > 0 {
        if at == s.len() {
            return None;
        }
        let mut end = (at + left).min(s.len());
        while !s.is_char_boundary(end) {
            end += 1;
        }
        left -= s[at..end].chars().count();
        at = end;
    }
    Some(at)
}

/// Line boundaries of a text, as section policies need them.
///
/// A line's extent is the closed range of positions from its first character
/// to its terminating `'\n'` (or the end of the text): the positions
/// `start..=end`. Every position of a text lies in exactly one line.
pub trait Lines {
    /// Length in characters.
    fn len_chars(&self) -> usize;
    /// First position of the line that contains position `pos`.
    fn line_start(&self, pos: usize) -> usize;
    /// Last position of the line that contains position `pos`: the position
    /// of its `'\n'`, or the end of the text for the last line.
    fn line_end(&self, pos: usize) -> usize;
    /// Zero-based number of the line that contains position `pos`.
    fn line_of(&self, pos: usize) -> usize;
}

impl Lines for str {
    fn len_chars(&self) -> usize {
        char_count(self)
    }

    fn line_start(&self, pos: usize) -> usize {
        let Some(byte) = byte_offset(self, pos) else {
            return self.len_chars();
        };
        match memchr::memrchr(b'\n', &self.as_bytes()[..byte]) {
            Some(nl) => pos - char_count(&self[nl + 1..byte]),
            None => 0,
        }
    }

    fn line_end(&self, pos: usize) -> usize {
        let Some(byte) = byte_offset(self, pos) else {
            return self.len_chars();
        };
        match memchr::memchr(b'\n', &self.as_bytes()[byte..]) {
            Some(nl) => pos + char_count(&self[byte..byte + nl]),
            None => pos + char_count(&self[byte..]),
        }
    }

    fn line_of(&self, pos: usize) -> usize {
        let byte = byte_offset(self, pos).unwrap_or(self.len());
        memchr::memchr_iter(b'\n', &self.as_bytes()[..byte]).count()
    }
}

/// The server's document text. Lines are found by scanning for `'\n'`
/// outwards from the position in growing windows: a line costs its length.
/// (Typing along a line costs nothing: see [`LineCache`].)
impl Lines for JumpRope {
    fn len_chars(&self) -> usize {
        JumpRope::len_chars(self)
    }

    fn line_start(&self, pos: usize) -> usize {
        let pos = pos.min(JumpRope::len_chars(self));
        let mut window = 256;
        loop {
            let from = pos.saturating_sub(window);
            let mut found = None;
            let mut at = from;
            for (chunk, chars) in self.slice_substrings_with_len(from..pos) {
                if let Some(nl) = memchr::memrchr(b'\n', chunk.as_bytes()) {
                    found = Some(at + char_count(&chunk[..=nl]));
                }
                at += chars;
            }
            match found {
                Some(start) => return start,
                None if from == 0 => return 0,
                None => window *= 4,
            }
        }
    }

    fn line_end(&self, pos: usize) -> usize {
        let len = JumpRope::len_chars(self);
        let mut from = pos.min(len);
        let mut window = 256;
        loop {
            let to = (from + window).min(len);
            let mut at = from;
            for (chunk, chars) in self.slice_substrings_with_len(from..to) {
                if let Some(nl) = memchr::memchr(b'\n', chunk.as_bytes()) {
                    return at + char_count(&chunk[..nl]);
                }
                at += chars;
            }
            if to == len {
                return len;
            }
            from = to;
            window *= 4;
        }
    }

    fn line_of(&self, pos: usize) -> usize {
        let pos = pos.min(JumpRope::len_chars(self));
        self.slice_substrings(0..pos)
            .map(|chunk| memchr::memchr_iter(b'\n', chunk.as_bytes()).count())
            .sum()
    }
}

/// One line of the server's text whose extent is known, kept up to date across edits,
/// so that typing along a line (the common case) computes its section with
/// no look-up at all. The line's extent is `start..=end`, as in [`Lines`].
#[derive(Clone, Debug, Default)]
pub struct LineCache(Cell<Option<(usize, usize)>>);

impl LineCache {
    /// A view of `text` that answers from the cache where it can and
    /// remembers the last line it looked up.
    pub fn lines<'a>(&'a self, text: &'a JumpRopeBuf) -> CachedLines<'a> {
        CachedLines { text, cache: self }
    }

    fn line(&self, pos: usize, text: &JumpRopeBuf) -> (usize, usize) {
        if let Some((start, end)) = self.0.get() {
            if start <= pos && pos <= end {
                #[cfg(debug_assertions)]
                {
                    let text = text.borrow();
                    assert_eq!(
                        (start, end),
                        (text.line_start(pos), text.line_end(pos)),
                        "stale line cache"
                    );
                }
                return (start, end);
            }
        }
        // A miss reads the rope: the keystrokes buffered go in first.
        let text = text.borrow();
        let line = (text.line_start(pos), text.line_end(pos));
        self.0.set(Some(line));
        line
    }

    /// Follows an edit of the text: the cached line moves with edits before
    /// it and grows or shrinks with edits inside it that add or remove no
    /// line break; anything else forgets it.
    pub fn edit(&self, delta: &Delta) {
        let Some((start, end)) = self.0.get() else { return };
        let (mut shift, mut growth) = (0isize, 0isize);
        let mut pos = 0;
        for op in delta.ops() {
            match op {
                Op::Retain(n) => pos += n,
                Op::Delete(n) => {
                    // Deleting the newline before the line or the line's
                    // own newline (at `end`) joins lines: forget it.
                    if pos + n < start {
                        shift -= *n as isize;
                    } else if start <= pos && pos + n <= end {
                        growth -= *n as isize;
                    } else if pos <= end {
                        self.0.set(None);
                        return;
                    }
                    pos += n;
                }
                Op::Insert(text) => {
                    if pos < start {
                        shift += char_count(text) as isize;
                    } else if pos > end {
                    } else if !text.contains('\n') {
                        growth += char_count(text) as isize;
                    } else {
                        self.0.set(None);
                        return;
                    }
                }
            }
        }
        let start = start as isize + shift;
        self.0
            .set(Some((start as usize, (end as isize + shift + growth) as usize)));
    }
}

/// The server's text seen through a [`LineCache`].
pub struct CachedLines<'a> {
    text: &'a JumpRopeBuf,
    cache: &'a LineCache,
}

impl Lines for CachedLines<'_> {
    fn len_chars(&self) -> usize {
        self.text.len_chars()
    }

    fn line_start(&self, pos: usize) -> usize {
        self.cache.line(pos, self.text).0
    }

    fn line_end(&self, pos: usize) -> usize {
        self.cache.line(pos, self.text).1
    }

    fn line_of(&self, pos: usize) -> usize {
        Lines::line_of(&*self.text.borrow(), pos)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasm_bindgen_test::wasm_bindgen_test;

    #[wasm_bindgen_test(unsupported = test)]
    fn byte_offsets_count_chars() {
        let s = "aé😀b\n".repeat(40);
        let chars: Vec<(usize, char)> = s.char_indices().collect();
        for (n, (byte, _)) in chars.iter().enumerate() {
            assert_eq!(byte_offset(&s, n), Some(*byte), "char {n}");
        }
        assert_eq!(byte_offset(&s, chars.len()), Some(s.len()));
        assert_eq!(byte_offset(&s, chars.len() + 1), None);
        assert_eq!(char_count(&s), chars.len());
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn str_and_jumprope_agree_on_lines() {
        for text in [
            "",
            "\n",
            "a",
            "ab\ncd",
            "ab\ncd\n",
            "\n\nx\r\n😀\n",
            "line one\nline two\n\nlast",
        ] {
            let rope = JumpRope::from(text);
            for pos in 0..=char_count(text) {
                assert_eq!(text.line_start(pos), rope.line_start(pos), "{text:?} start {pos}");
                assert_eq!(text.line_end(pos), rope.line_end(pos), "{text:?} end {pos}");
                assert_eq!(text.line_of(pos), Lines::line_of(&rope, pos), "{text:?} line {pos}");
            }
        }
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn line_extents() {
        let text = "ab\ncd\n";
        // positions 0,1,2 are line 0 (2 is its '\n'); 3,4,5 line 1; 6 line 2.
        assert_eq!((text.line_start(2), text.line_end(2)), (0, 2));
        assert_eq!((text.line_start(3), text.line_end(3)), (3, 5));
        assert_eq!((text.line_start(6), text.line_end(6)), (6, 6));
    }
}
