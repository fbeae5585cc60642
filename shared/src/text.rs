//! Positions in text: characters, bytes and lines.
//!
//! Every position in the product counts Unicode scalar values (Rust `char`s).
//! These helpers convert between character and byte offsets of a `str` with
//! word-at-a-time scans, and give section policies one view of line
//! boundaries ([`Lines`]) over both the browser's `str` and the server's
//! rope, so both sides compute the very same sections.

use ropey::Rope;

/// Number of characters in `s`. Counts the bytes that start a character.
pub fn char_count(s: &str) -> usize {
    count_char_starts(s.as_bytes())
}

fn count_char_starts(bytes: &[u8]) -> usize {
    // A byte starts a character unless it is a continuation byte 0b10xx_xxxx.
    // Written so that LLVM vectorizes it.
    bytes.iter().filter(|&&b| (b as i8) >= -0x40).count()
}

/// Byte offset of character `chars` in `s`, or `None` when `s` is shorter.
/// `chars == char_count(s)` gives `Some(s.len())`.
pub fn byte_offset(s: &str, chars: usize) -> Option<usize> {
    byte_offset_from(s, 0, chars)
}

/// Byte offset reached by walking `chars` characters forward from byte `from`
/// (which must be a character boundary).
pub fn byte_offset_from(s: &str, from: usize, chars: usize) -> Option<usize> {
    let bytes = &s.as_bytes()[from..];
    // Fast path: whole chunks whose characters we can count at once.
    const CHUNK: usize = 64;
    let mut left = chars;
    let mut at = 0;
    while left >= CHUNK && at + CHUNK <= bytes.len() {
        let n = count_char_starts(&bytes[at..at + CHUNK]);
        if n > left {
            break;
        }
        left -= n;
        at += CHUNK;
    }
    // The chunk boundary may split a character: step to the next start.
    while at < bytes.len() && (bytes[at] as i8) < -0x40 {
        at += 1;
    }
    // Remaining characters one by one. Continuation bytes skipped above were
    // counted with their chunk, so we only count starts from here.
    while left > 0 {
        if at >= bytes.len() {
            return None;
        }
        at += 1;
        while at < bytes.len() && (bytes[at] as i8) < -0x40 {
            at += 1;
        }
        left -= 1;
    }
    Some(from + at)
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
        match self.as_bytes()[..byte].iter().rposition(|&b| b == b'\n') {
            Some(nl) => pos - char_count(&self[nl + 1..byte]),
            None => 0,
        }
    }

    fn line_end(&self, pos: usize) -> usize {
        let Some(byte) = byte_offset(self, pos) else {
            return self.len_chars();
        };
        match self.as_bytes()[byte..].iter().position(|&b| b == b'\n') {
            Some(nl) => pos + char_count(&self[byte..byte + nl]),
            None => pos + char_count(&self[byte..]),
        }
    }

    fn line_of(&self, pos: usize) -> usize {
        let byte = byte_offset(self, pos).unwrap_or(self.len());
        self.as_bytes()[..byte].iter().filter(|&&b| b == b'\n').count()
    }
}

/// The server's document text. Lines are split on `'\n'` only (ropey is
/// built without its CR and Unicode line-break features), matching `str`.
impl Lines for Rope {
    fn len_chars(&self) -> usize {
        Rope::len_chars(self)
    }

    fn line_start(&self, pos: usize) -> usize {
        let pos = pos.min(Rope::len_chars(self));
        self.line_to_char(self.char_to_line(pos))
    }

    fn line_end(&self, pos: usize) -> usize {
        let len = Rope::len_chars(self);
        let pos = pos.min(len);
        let line = self.char_to_line(pos);
        if line + 1 < self.len_lines() {
            self.line_to_char(line + 1) - 1
        } else {
            len
        }
    }

    fn line_of(&self, pos: usize) -> usize {
        self.char_to_line(pos.min(Rope::len_chars(self)))
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
    fn str_and_rope_agree_on_lines() {
        for text in [
            "",
            "\n",
            "a",
            "ab\ncd",
            "ab\ncd\n",
            "\n\nx\r\n😀\n",
            "line one\nline two\n\nlast",
        ] {
            let rope = Rope::from_str(text);
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
