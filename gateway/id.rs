//! [`Id`]: the one shape of the ids Doelpoort itself names things by — consumers, partners,
//! purposes, operations and grants — in the configuration and in policy files.
//!
//! These ids appear in URLs (`/<partner>/…`), metric labels, audit records and headers to
//! other organisations, so they are kept boring: 1–64 characters of lowercase ASCII letters,
//! digits and `-`, not starting with `-`. One rule, checked in one place, so that an id the
//! configuration accepts is one a caller can name and a label can carry.
//!
//! What a caller sends is not held to this shape: a purpose or partner it names is looked up
//! (what is not in the catalog is unknown), and ids that are not Doelpoort's own (a
//! case-management system's case ids, an employee's pseudonym) have their own, wider alphabet:
//! see [`crate::context::is_plain_id`].

use std::fmt;

/// A valid id (see the module documentation).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Id(String);

impl Id {
    pub const MAX_LEN: usize = 64;

    /// What an id looks like, for error messages.
    pub const FORM: &'static str =
        "lowercase letters, digits and '-' (at most 64, not starting with '-')";

    pub fn parse(s: &str) -> Result<Self, InvalidId> {
        if Self::is_valid(s) {
            Ok(Self(s.to_string()))
        } else {
            Err(InvalidId)
        }
    }

    /// Whether `s` is a valid id.
    pub fn is_valid(s: &str) -> bool {
        !s.is_empty()
            && s.len() <= Self::MAX_LEN
            && !s.starts_with('-')
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::ops::Deref for Id {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for Id {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl std::borrow::Borrow<str> for Id {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl PartialEq<str> for Id {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for Id {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

impl PartialEq<String> for Id {
    fn eq(&self, other: &String) -> bool {
        &self.0 == other
    }
}

impl PartialEq<Id> for String {
    fn eq(&self, other: &Id) -> bool {
        self == &other.0
    }
}

impl PartialEq<Id> for &str {
    fn eq(&self, other: &Id) -> bool {
        *self == other.0
    }
}

impl serde::Serialize for Id {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

/// A text that is not a valid [`Id`] (the text itself is not repeated: it may be caller input).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("an id is {}", Id::FORM)]
pub struct InvalidId;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_rule_for_every_id() {
        for good in ["uwv", "wams-onderzoek", "a", "x-1", &"a".repeat(64)] {
            assert!(Id::parse(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "-uwv",
            "UWV",
            "Wams-onderzoek",
            "wams_onderzoek",
            "wams.onderzoek",
            "a/b",
            "wijkteam rotterdam",
            "wams\u{a0}onderzoek",
            "\u{430}",
            &"a".repeat(65),
        ] {
            assert_eq!(Id::parse(bad), Err(InvalidId), "{bad:?}");
        }
    }
}
