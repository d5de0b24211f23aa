//! Decoding lowercase hex: the one spelling of nonces, signatures and
//! fingerprints.
//!
//! Table-driven. `base16ct` (still used to encode) decodes in constant time,
//! which measured about three times slower on restore's hot path and buys
//! nothing here: every hex text decoded is either public (a fingerprint) or
//! the caller's own input (a presented `sig_hex`, compared with the expected
//! signature in constant time afterwards).

/// Marks a byte that is not a lowercase hex digit.
const NOT_HEX: u8 = 0x10;

// Built at compile time, where an index out of range fails the build.
#[allow(clippy::indexing_slicing)]
const NIBBLES: [u8; 256] = {
    let mut table = [NOT_HEX; 256];
    let mut digit = 0;
    while digit < 16 {
        let spelled = if digit < 10 {
            b'0' + digit
        } else {
            b'a' + digit - 10
        };
        table[spelled as usize] = digit;
        digit += 1;
    }
    table
};

fn nibble(digit: u8) -> u8 {
    NIBBLES.get(usize::from(digit)).copied().unwrap_or(NOT_HEX)
}

/// The `N` bytes that `text` spells in exactly `2 * N` lowercase hex digits.
pub(crate) fn decode_lower<const N: usize>(text: &str) -> Option<[u8; N]> {
    let digits = text.as_bytes();
    if digits.len() != 2 * N {
        return None;
    }
    let mut bytes = [0u8; N];
    let mut seen = 0u8;
    for (byte, pair) in bytes.iter_mut().zip(digits.chunks_exact(2)) {
        if let [high, low] = *pair {
            let (high, low) = (nibble(high), nibble(low));
            seen |= high | low;
            *byte = ((high & 0x0f) << 4) | (low & 0x0f);
        }
    }
    (seen & NOT_HEX == 0).then_some(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_exactly_what_base16ct_decodes() {
        let mut texts: Vec<String> = (0..=255u8).map(|b| format!("{b:02x}")).collect();
        texts.extend(
            [
                "", "0", "000", "0g", "g0", "AB", "aB", "Ab", "ab", " a", "a ", "é",
            ]
            .map(String::from),
        );
        for text in texts {
            let mut expected = [0u8; 1];
            let expected = base16ct::lower::decode(&text, &mut expected)
                .ok()
                .and_then(|bytes| <[u8; 1]>::try_from(bytes).ok());
            assert_eq!(decode_lower::<1>(&text), expected, "{text:?}");
        }
        assert_eq!(
            decode_lower::<4>("00ff10af"),
            Some([0x00, 0xff, 0x10, 0xaf])
        );
        assert_eq!(decode_lower::<4>("00ff10a"), None);
        assert_eq!(decode_lower::<4>("00ff10afe"), None);
        // Every byte value outside 0-9a-f is refused in every position.
        for bad in (0..=255u8).filter(|b| !b.is_ascii_digit() && !(b'a'..=b'f').contains(b)) {
            for at in 0..4 {
                let mut text = *b"0a1b";
                text[at] = bad;
                if let Ok(text) = core::str::from_utf8(&text) {
                    assert_eq!(decode_lower::<2>(text), None, "{text:?}");
                }
            }
        }
    }
}
