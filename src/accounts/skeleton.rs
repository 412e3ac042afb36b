//! Look-alike detection with Unicode TR39 skeletons.
//!
//! Two strings are confusable when their skeletons are equal: each character is mapped to the
//! prototype it is easily mistaken for (Cyrillic `А` → Latin `A`, `Ѕ` → `S`, `m` → `rn`, `I` →
//! `l`). The skeleton is case-sensitive, as looks are (`I` resembles `l`, `i` does not), so it
//! is kept exactly as TR39 defines it — folding case afterwards would merge `ALI` with
//! `ALL`. Usernames are unique ignoring case, so a name is compared in three spellings — as
//! written, lower-cased, upper-cased — each against the same spelling of every existing name,
//! with a unique index per spelling: `АРІ` must not sit beside `api` (lower: `api` = `api`),
//! `ЅУЅТЕМ` not beside `system` (upper: `SYSTEM` = `SYSTEM`), `Iuke` not beside `luke` (as
//! written: `luke` = `luke`).

use unicode_security::confusable_detection::skeleton;

/// The TR39 skeleton of a (NFKC-normalized) username as written; stored, uniquely indexed.
pub fn skeleton_key(name: &str) -> String {
    skeleton(name).collect()
}

/// The look-alike keys of a name: skeletons of it as written, lower-cased and upper-cased.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keys {
    pub written: String,
    pub lower: String,
    pub upper: String,
}

impl Keys {
    pub fn of(name: &str) -> Self {
        Self {
            written: skeleton_key(name),
            lower: skeleton_key(&name.to_lowercase()),
            upper: skeleton_key(&name.to_uppercase()),
        }
    }

    /// Whether two names look alike in some spelling.
    pub fn collide(&self, other: &Keys) -> bool {
        self.written == other.written || self.lower == other.lower || self.upper == other.upper
    }
}

#[cfg(test)]
mod tests {
    use super::Keys;

    fn looks_like(a: &str, b: &str) -> bool {
        Keys::of(a).collide(&Keys::of(b))
    }

    #[test]
    fn look_alikes_are_caught_and_different_names_are_not() {
        let same = [
            ("АРІ", "API"),       // Cyrillic А Р І
            ("АРІ", "api"),       // … and in any case, as uniqueness ignores case
            ("ΑΡΙ", "API"),       // Greek Alpha Rho Iota
            ("ЅУЅТЕМ", "SYSTEM"), // Cyrillic
            ("ѕсоре", "scope"),   // lowercase Cyrillic
            ("ѕсоре", "Scope"),   // … beside a mixed-case existing name
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
