//! The canonical form of usernames and emails: NFKC → full Unicode case folding → NFKC.
//!
//! Computed in Rust and stored in its own uniquely indexed column, rather than relying on
//! SQLite's `NOCASE` (ASCII only) or Postgres' `citext` (locale-dependent lowercasing), so
//! both databases agree on what collides: `ᴮᴵᴳᴮᴵᴿᴰ` ≡ `bigbird`, `straße` ≡ `STRASSE`,
//! `e` + U+0301 ≡ `é`.

use unicode_normalization::UnicodeNormalization;

/// Returns the canonical form of `s`. Idempotent: `canonical(&canonical(s)) == canonical(s)`.
pub fn canonical(s: &str) -> String {
    let mut current = once(s);
    // Unicode does not promise that one pass of this composition is a fixpoint for every
    // string, and a canonical form that moves when re-applied would let two spellings of one
    // name both pass the unique index. Iterate until stable; the bound keeps the cost linear.
    // The property tests below check idempotence on arbitrary input.
    for _ in 0..4 {
        let next = once(&current);
        if next == current {
            return current;
        }
        current = next;
    }
    current
}

/// The canonical form an email address would be stored under, for lookups of input that was
/// not validated (a login identifier): the domain IDNA-mapped as [`super::Email`] stores it,
/// then [`canonical`]. Input that is no address at all is simply canonicalized.
pub fn email_canonical(s: &str) -> String {
    match s.rsplit_once('@') {
        Some((local, domain)) => match idna::domain_to_ascii(domain) {
            Ok(ascii) if !ascii.is_empty() => canonical(&format!("{local}@{ascii}")),
            _ => canonical(s),
        },
        None => canonical(s),
    }
}

fn once(s: &str) -> String {
    let nfkc: String = s.nfkc().collect();
    caseless::default_case_fold_str(&nfkc).nfkc().collect()
}

#[cfg(test)]
mod tests {
    use super::canonical;
    use proptest::prelude::*;

    #[test]
    fn known_collisions() {
        let cases = [
            ("ᴮᴵᴳᴮᴵᴿᴰ", "bigbird"),
            ("ß", "ss"),
            ("Straße", "STRASSE"),
            ("e\u{301}", "é"),
            ("ＡＬＩＣＥ", "alice"),
            ("Alice", "alice"),
            ("ﬁne", "fine"),
        ];
        for (a, b) in cases {
            assert_eq!(
                canonical(a),
                canonical(b),
                "{a:?} should collide with {b:?}"
            );
        }
        assert_ne!(canonical("alice"), canonical("alicia"));
    }

    #[test]
    fn email_lookups_match_the_stored_form() {
        let stored = crate::accounts::Email::parse("Alice@BÜCHER.example").unwrap();
        for typed in [
            "alice@bücher.example",
            "ALICE@xn--bcher-kva.example",
            "Alice@BÜCHER.EXAMPLE",
        ] {
            assert_eq!(super::email_canonical(typed), stored.canonical(), "{typed}");
        }
    }

    proptest! {
        #[test]
        fn canonical_is_idempotent(s in "\\PC*") {
            let once = canonical(&s);
            prop_assert_eq!(canonical(&once), once);
        }

        #[test]
        fn canonical_is_idempotent_on_any_scalar_values(s in any::<String>()) {
            let once = canonical(&s);
            prop_assert_eq!(canonical(&once), once);
        }
    }
}
