//! The unified social credit code (统一社会信用代码, GB 32100-2015).
//!
//! 18 characters: registration authority, organisation type, 6-digit division code, 9-character
//! organisation code, and a check character over the first 17 (weights 3^(i-1) mod 31 over a
//! 31-character alphabet without I, O, S, V, Z).

use std::fmt;

const ALPHABET: &[u8; 31] = b"0123456789ABCDEFGHJKLMNPQRTUWXY";
const WEIGHTS: [u32; 17] = [
    1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28,
];

/// A validated, normalised (upper-case, trimmed) unified social credit code.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(try_from = "String", into = "String")]
pub struct CreditCode(String);

/// Why a string is not a unified social credit code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CreditCodeError {
    #[error("must be 18 characters, got {0}")]
    Length(usize),
    #[error("character {ch:?} at position {position} is not allowed (no I, O, S, V, Z)")]
    Character { position: usize, ch: char },
    #[error("division code (positions 3-8) must be 6 digits")]
    Division,
    #[error("check character is {found:?}, expected {expected:?}")]
    Check { found: char, expected: char },
}

fn value(c: u8) -> Option<u32> {
    ALPHABET.iter().position(|&a| a == c).map(|p| p as u32)
}

impl CreditCode {
    /// Normalises (trim, upper-case) and validates `input`.
    pub fn parse(input: &str) -> Result<Self, CreditCodeError> {
        let s = input.trim().to_ascii_uppercase();
        let n = s.chars().count();
        if n != 18 {
            return Err(CreditCodeError::Length(n));
        }
        let bytes = s.as_bytes();
        let mut sum = 0u32;
        for (i, &b) in bytes.iter().enumerate() {
            let v = value(b).ok_or(CreditCodeError::Character {
                position: i + 1,
                ch: b as char,
            })?;
            if i < 17 {
                sum += v * WEIGHTS[i];
            }
        }
        if !bytes[2..8].iter().all(u8::is_ascii_digit) {
            return Err(CreditCodeError::Division);
        }
        let expected = ALPHABET[((31 - sum % 31) % 31) as usize] as char;
        let found = bytes[17] as char;
        if found != expected {
            return Err(CreditCodeError::Check { found, expected });
        }
        Ok(Self(s))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The 6-digit administrative division of the registering authority.
    pub fn division(&self) -> &str {
        &self.0[2..8]
    }
}

impl fmt::Display for CreditCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for CreditCode {
    type Error = CreditCodeError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<CreditCode> for String {
    fn from(c: CreditCode) -> String {
        c.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_known_valid_codes() {
        for code in [
            "91350100M000100Y43",
            "91440300708461136T",
            "  91350100m000100y43 ",
        ] {
            let parsed = CreditCode::parse(code);
            assert!(parsed.is_ok(), "{code}: {parsed:?}");
        }
        assert_eq!(
            CreditCode::parse(" 91350100m000100y43")
                .map(String::from)
                .ok()
                .as_deref(),
            Some("91350100M000100Y43")
        );
    }

    #[test]
    fn rejects_wrong_check_character() {
        assert_eq!(
            CreditCode::parse("91350100M000100Y44"),
            Err(CreditCodeError::Check {
                found: '4',
                expected: '3'
            })
        );
    }

    #[test]
    fn rejects_length_and_forbidden_letters() {
        assert_eq!(
            CreditCode::parse("91350100M000100Y4"),
            Err(CreditCodeError::Length(17))
        );
        assert!(matches!(
            CreditCode::parse("91350100O000100Y43"),
            Err(CreditCodeError::Character { position: 9, .. })
        ));
        assert_eq!(
            CreditCode::parse("9135A100M000100Y43")
                .err()
                .map(|e| matches!(e, CreditCodeError::Division | CreditCodeError::Check { .. })),
            Some(true)
        );
    }

    #[test]
    fn every_single_character_change_is_caught() {
        let good = "91440300708461136T";
        for pos in 0..17 {
            for &c in ALPHABET {
                let mut b = good.as_bytes().to_vec();
                if b[pos] == c {
                    continue;
                }
                b[pos] = c;
                let s = String::from_utf8(b).unwrap_or_default();
                assert!(CreditCode::parse(&s).is_err(), "{s} accepted");
            }
        }
    }
}
