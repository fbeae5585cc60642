//! Caret positions: the browser counts UTF-16 code units, the product
//! counts characters.

/// The character position of UTF-16 offset `units` in `text` (an offset
/// inside a surrogate pair rounds down).
pub fn utf16_to_char(text: &str, units: usize) -> usize {
    let mut seen = 0;
    for (chars, c) in text.chars().enumerate() {
        if seen >= units {
            return chars;
        }
        seen += c.len_utf16();
        if seen > units {
            return chars;
        }
    }
    text.chars().count()
}

/// The UTF-16 offset of character position `chars` in `text`.
pub fn char_to_utf16(text: &str, chars: usize) -> usize {
    text.chars().take(chars).map(char::len_utf16).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let text = "a😀b\né";
        // a=1 unit, 😀=2, b=1, \n=1, é=1
        assert_eq!(char_to_utf16(text, 0), 0);
        assert_eq!(char_to_utf16(text, 2), 3);
        assert_eq!(char_to_utf16(text, 5), 6);
        assert_eq!(utf16_to_char(text, 3), 2);
        assert_eq!(utf16_to_char(text, 2), 1);
        assert_eq!(utf16_to_char(text, 6), 5);
        assert_eq!(utf16_to_char(text, 99), 5);
        for chars in 0..=5 {
            assert_eq!(utf16_to_char(text, char_to_utf16(text, chars)), chars);
        }
    }
}
