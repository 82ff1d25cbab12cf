//! Opaque page tokens for every List RPC (AIP-158), so that the four services page the same
//! way: `page_size` 0 means the list's default, larger than its maximum is lowered to the
//! maximum, negative is an error; `page_token` is empty or a token the same list issued.
//!
//! A token is the URL-safe base64 of a small JSON document naming the list and the position
//! after which the next page starts (the last row's sort key). Clients cannot read meaning
//! into it, and a token from another list (or a hand-made one) is rejected instead of silently
//! returning the wrong rows. Rows are fetched with [`Page::fetch_limit`] (one more than the
//! page) so that [`Page::finish`] knows whether another page follows without a count query.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use serde::{Serialize, de::DeserializeOwned};

/// The paging rules of one List RPC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Paging {
    /// Names the list inside its tokens, e.g. `"intake.applications"`.
    pub list: &'static str,
    /// Page size when the request says 0.
    pub default_size: u32,
    /// Largest page; larger requests are lowered to it.
    pub max_size: u32,
}

/// Why a request's paging fields were refused. [`PageError::field`] names the request field
/// for the INVALID_ARGUMENT field violation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PageError {
    #[error("must not be negative")]
    NegativeSize,
    #[error("is not a page token this list issued")]
    BadToken,
}

impl PageError {
    /// The request field at fault: `page_size` or `page_token`.
    pub fn field(&self) -> &'static str {
        match self {
            Self::NegativeSize => "page_size",
            Self::BadToken => "page_token",
        }
    }
}

/// The page a request asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<K> {
    /// Rows to return.
    pub size: u64,
    /// Sort key of the last row of the previous page; `None` for the first page.
    pub after: Option<K>,
    list: &'static str,
}

#[derive(Serialize, serde::Deserialize)]
struct Token<K> {
    /// The list that issued it.
    l: String,
    /// The position after which the next page starts.
    k: K,
}

impl Paging {
    pub const fn new(list: &'static str, default_size: u32, max_size: u32) -> Self {
        Self {
            list,
            default_size,
            max_size,
        }
    }

    /// Reads a request's `page_size` and `page_token`.
    pub fn page<K: DeserializeOwned>(
        &self,
        page_size: i32,
        page_token: &str,
    ) -> Result<Page<K>, PageError> {
        let size = match page_size {
            n if n < 0 => return Err(PageError::NegativeSize),
            0 => self.default_size,
            n => (n as u32).min(self.max_size),
        };
        let token = page_token.trim();
        let after = if token.is_empty() {
            None
        } else {
            let raw = URL_SAFE_NO_PAD
                .decode(token)
                .map_err(|_| PageError::BadToken)?;
            let t: Token<K> = serde_json::from_slice(&raw).map_err(|_| PageError::BadToken)?;
            if t.l != self.list {
                return Err(PageError::BadToken);
            }
            Some(t.k)
        };
        Ok(Page {
            size: u64::from(size),
            after,
            list: self.list,
        })
    }
}

impl<K> Page<K> {
    /// How many rows to fetch: one more than the page, to learn whether more follow.
    pub fn fetch_limit(&self) -> u64 {
        self.size + 1
    }

    /// Cuts `rows` (fetched with [`Page::fetch_limit`], in list order) to the page and returns
    /// the `next_page_token`: empty when this is the last page, else a token resuming after
    /// the last row kept, whose sort key `key` gives.
    pub fn finish<R, T: Serialize>(&self, rows: &mut Vec<R>, key: impl FnOnce(&R) -> T) -> String {
        let size = usize::try_from(self.size).unwrap_or(usize::MAX);
        if rows.len() <= size {
            return String::new();
        }
        rows.truncate(size);
        rows.last()
            .map_or_else(String::new, |last| encode(self.list, &key(last)))
    }

    /// Pages through a list already in memory and sorted: the rows after the page's position
    /// (`key` gives each row's sort key, compared with the token's), at most one page, and
    /// the `next_page_token`.
    pub fn slice<R: Clone>(&self, rows: &[R], key: impl Fn(&R) -> K) -> (Vec<R>, String)
    where
        K: Ord + Serialize,
    {
        let mut page: Vec<R> = rows
            .iter()
            .filter(|r| self.after.as_ref().is_none_or(|after| key(r) > *after))
            .take(usize::try_from(self.fetch_limit()).unwrap_or(usize::MAX))
            .cloned()
            .collect();
        let next = self.finish(&mut page, &key);
        (page, next)
    }
}

fn encode<T: Serialize>(list: &str, key: &T) -> String {
    let token = Token {
        l: list.to_string(),
        k: key,
    };
    // Serialising a plain key (numbers, strings, tuples of them) cannot fail.
    serde_json::to_vec(&token)
        .map(|raw| URL_SAFE_NO_PAD.encode(raw))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: Paging = Paging::new("test.rows", 2, 3);

    #[test]
    fn sizes_default_cap_and_refuse_negative() {
        assert_eq!(P.page::<i64>(0, "").map(|p| p.size), Ok(2));
        assert_eq!(P.page::<i64>(1, "").map(|p| p.size), Ok(1));
        assert_eq!(P.page::<i64>(99, "").map(|p| p.size), Ok(3));
        assert_eq!(
            P.page::<i64>(-1, "").map_err(|e| e.field()),
            Err("page_size")
        );
    }

    #[test]
    fn tokens_round_trip_and_end_empty() {
        let rows: Vec<i64> = (1..=5).collect();
        let first = P.page::<i64>(0, "").unwrap_or_else(|e| panic!("{e}"));
        let (page, next) = first.slice(&rows, |r| *r);
        assert_eq!(page, [1, 2]);
        let second = P.page::<i64>(0, &next).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(second.after, Some(2));
        let (page, next) = second.slice(&rows, |r| *r);
        assert_eq!(page, [3, 4]);
        let (page, next) = P
            .page::<i64>(0, &next)
            .unwrap_or_else(|e| panic!("{e}"))
            .slice(&rows, |r| *r);
        assert_eq!(page, [5]);
        assert_eq!(next, "");
    }

    #[test]
    fn finish_cuts_the_extra_row() {
        let page = P.page::<String>(2, "").unwrap_or_else(|e| panic!("{e}"));
        let mut rows = vec!["a", "b", "c"];
        let next = page.finish(&mut rows, |r| r.to_string());
        assert_eq!(rows, ["a", "b"]);
        let again = P.page::<String>(2, &next).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(again.after.as_deref(), Some("b"));
        let mut short = vec!["a"];
        assert_eq!(page.finish(&mut short, |r| r.to_string()), "");
    }

    #[test]
    fn foreign_or_garbled_tokens_name_page_token() {
        let other = Paging::new("other.rows", 2, 3);
        let mut rows = vec![1i64, 2, 3];
        let theirs = other
            .page::<i64>(1, "")
            .unwrap_or_else(|e| panic!("{e}"))
            .finish(&mut rows, |r| *r);
        assert!(!theirs.is_empty());
        for bad in [theirs.as_str(), "not base64!", "e30", "MTIz"] {
            assert_eq!(
                P.page::<i64>(0, bad).map_err(|e| e.field()),
                Err("page_token"),
                "{bad}"
            );
        }
    }
}
