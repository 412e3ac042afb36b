//! Recovery codes: the way back in when the phone is gone. Ten per set, each 60 random bits
//! written as twelve characters of Crockford's base32 in three groups (`7KQ2-M9XD-4HTC`), so
//! a person can read and type one; typing is forgiven (case, dashes, spaces, `O` for `0`,
//! `I`/`L` for `1`). Stored as an HMAC-SHA256 keyed from the server secret: a database dump
//! alone cannot test a guess. Each is usable once.

use zeroize::Zeroizing;

/// Codes per set.
pub const COUNT: usize = 10;
/// Characters per code (5 bits each: 60 bits).
const CHARS: usize = 12;
/// Crockford's base32 alphabet: no I, L, O or U.
const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// A fresh set, as shown to the user once.
pub fn generate() -> Result<Vec<Zeroizing<String>>, getrandom::Error> {
    let mut codes = Vec::with_capacity(COUNT);
    for _ in 0..COUNT {
        let mut bytes = Zeroizing::new([0u8; CHARS]);
        getrandom::fill(bytes.as_mut())?;
        let mut code = Zeroizing::new(String::with_capacity(CHARS + 2));
        for (i, b) in bytes.iter().enumerate() {
            if i > 0 && i % 4 == 0 {
                code.push('-');
            }
            // 256 is a multiple of 32: the low five bits are uniform.
            code.push(char::from(ALPHABET[usize::from(b & 31)]));
        }
        codes.push(code);
    }
    Ok(codes)
}

/// The canonical form of what a person typed, or `None` if it cannot be a code.
pub fn normalize(typed: &str) -> Option<Zeroizing<String>> {
    let mut out = Zeroizing::new(String::with_capacity(CHARS));
    for c in typed.chars() {
        let c = match c.to_ascii_uppercase() {
            '-' | ' ' => continue,
            'O' => '0',
            'I' | 'L' => '1',
            c if c.is_ascii() && ALPHABET.contains(&(c as u8)) => c,
            _ => return None,
        };
        if out.len() == CHARS {
            return None;
        }
        out.push(c);
    }
    (out.len() == CHARS).then_some(out)
}

/// Whether `typed` has the shape of a recovery code (rather than a TOTP code).
pub fn looks_like_one(typed: &str) -> bool {
    normalize(typed).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_ten_distinct_typable_sixty_bit_strings() {
        let codes = generate().unwrap();
        assert_eq!(codes.len(), COUNT);
        let distinct: std::collections::HashSet<&str> = codes.iter().map(|c| c.as_str()).collect();
        assert_eq!(distinct.len(), COUNT);
        for code in &codes {
            assert_eq!(code.len(), 14, "{}", code.as_str());
            assert_eq!(normalize(code).unwrap().len(), 12);
        }
    }

    #[test]
    fn typing_is_forgiven_but_nothing_else_passes() {
        assert_eq!(
            normalize("7kq2 m9xd 4htc").unwrap().as_str(),
            "7KQ2M9XD4HTC"
        );
        assert_eq!(
            normalize("OIL2-M9XD-4HTC").unwrap().as_str(),
            "0112M9XD4HTC"
        );
        for bad in [
            "",
            "123456",
            "7KQ2-M9XD-4HTU",
            "7KQ2-M9XD-4HTC-1",
            "7KQ2-M9XD-4HT",
            "ÄKQ2-M9XD-4HTC",
        ] {
            assert!(normalize(bad).is_none(), "{bad:?}");
        }
        assert!(!looks_like_one("123456"));
    }
}
