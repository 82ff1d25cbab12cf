//! Administrative division codes: 6 digits for a county-level division, 9 for a township.

use std::fmt;

/// A validated administrative division code.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RegionCode(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegionCodeError {
    #[error("must be 6 digits (county) or 9 digits (township), got {0:?}")]
    Shape(String),
}

impl RegionCode {
    pub fn parse(input: &str) -> Result<Self, RegionCodeError> {
        let s = input.trim();
        if (s.len() == 6 || s.len() == 9)
            && s.bytes().all(|b| b.is_ascii_digit())
            && !s.starts_with("00")
        {
            Ok(Self(s.to_string()))
        } else {
            Err(RegionCodeError::Shape(s.to_string()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The county-level code (first 6 digits).
    pub fn county(&self) -> &str {
        &self.0[..6]
    }
}

impl fmt::Display for RegionCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn county_and_township_codes() {
        assert_eq!(
            RegionCode::parse("350724").map(|r| r.county().to_string()),
            Ok("350724".into())
        );
        assert_eq!(
            RegionCode::parse("350724101").map(|r| r.county().to_string()),
            Ok("350724".into())
        );
        assert!(RegionCode::parse("35072").is_err());
        assert!(RegionCode::parse("35072a").is_err());
        assert!(RegionCode::parse("000000").is_err());
    }
}
