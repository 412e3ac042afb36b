//! Look-alike detection with Unicode TR39 skeletons.
//!
//! Two strings are confusable when their skeletons are equal: each character is mapped to the
//! prototype it is easily mistaken for (Cyrillic `А` → Latin `A`, `Ѕ` → `S`, `m` → `rn`, `I` →
//! `l`). The skeleton is case-sensitive, as looks are (`I` resembles `l`, `i` does not), so it
//! is kept exactly as TR39 defines it — folding case afterwards would merge `ALI` with
//! `ALL`. Case is handled by comparing a name's lower- and upper-case spellings as well:
//! usernames are unique ignoring case, so `АРІ` (looks like `API`) must not sit beside `api`.

use unicode_security::confusable_detection::skeleton;

/// The TR39 skeleton of a (NFKC-normalized) username as written; stored, uniquely indexed.
pub fn skeleton_key(name: &str) -> String {
    skeleton(name).collect()
}

/// The skeletons of `name` as written, lower-cased and upper-cased (deduplicated).
pub fn case_variants(name: &str) -> Vec<String> {
    let mut keys = vec![
        skeleton_key(name),
        skeleton_key(&name.to_lowercase()),
        skeleton_key(&name.to_uppercase()),
    ];
    keys.sort();
    keys.dedup();
    keys
}

#[cfg(test)]
mod tests {
    use super::{case_variants, skeleton_key};

    /// `a` is judged a look-alike of an existing `b` when one of `a`'s case variants has
    /// `b`'s stored skeleton.
    fn looks_like(a: &str, b: &str) -> bool {
        case_variants(a).contains(&skeleton_key(b))
    }

    #[test]
    fn look_alikes_are_caught_and_different_names_are_not() {
        let same = [
            ("АРІ", "API"),       // Cyrillic А Р І
            ("АРІ", "api"),       // … and in any case, as uniqueness ignores case
            ("ΑΡΙ", "API"),       // Greek Alpha Rho Iota
            ("ЅУЅТЕМ", "SYSTEM"), // Cyrillic
            ("ѕсоре", "scope"),   // lowercase Cyrillic
            ("Iuke", "luke"),     // capital i and small L
            ("rnoney", "money"),  // rn and m
        ];
        for (a, b) in same {
            assert!(looks_like(a, b), "{a} should look like {b}");
        }
        for (a, b) in [
            ("alice", "alicia"),
            ("ali", "all"),
            ("ALI", "ALL"),
            ("Вера", "bepa1"),
        ] {
            assert!(!looks_like(a, b), "{a} vs {b}");
        }
    }
}
