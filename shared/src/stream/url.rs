//! Query-string and URL helpers shared by the signed-URL formats.
//!
//! The `verify_*` helpers of the formats take the request path and the *raw* query string
//! (as an edge hook receives it, with or without the leading `?`). Parameter values are
//! compared raw, without percent-decoding, which is what nginx's `$arg_*` does; every value
//! these formats produce is made of URL-safe characters anyway. A signature parameter that
//! appears twice is rejected as malformed, so the edge and the CDN can never disagree about
//! which copy counts.

use std::fmt;

pub(super) fn is_ascii_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// Parses a non-empty run of ASCII decimal digits (no sign, no spaces).
pub(super) fn parse_decimal(s: &str) -> Option<i64> {
    if !is_ascii_digits(s) {
        return None;
    }
    s.parse().ok()
}

/// Errors from the URL builders: the named input cannot be represented.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UrlError {
    /// The named input is empty or has characters the format cannot carry.
    InvalidComponent(&'static str),
    /// The expiry / timestamp is not a positive number of seconds.
    InvalidExpiry,
    /// The URL already carries the named signature parameter.
    AlreadySigned(&'static str),
}

impl fmt::Display for UrlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UrlError::InvalidComponent(what) => write!(f, "invalid {what}"),
            UrlError::InvalidExpiry => f.write_str("expiry must be a positive unix time"),
            UrlError::AlreadySigned(p) => write!(f, "URL already has a `{p}` parameter"),
        }
    }
}

impl std::error::Error for UrlError {}

/// Why a signed CDN URL was rejected by a `verify_*` helper.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkError {
    /// A required query parameter is absent.
    Missing(&'static str),
    /// A parameter (or the path) is unparseable or duplicated.
    Malformed(&'static str),
    /// The digest does not match.
    BadSignature,
    /// The signature is valid but the link has expired.
    Expired,
}

impl fmt::Display for LinkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LinkError::Missing(p) => write!(f, "missing `{p}` parameter"),
            LinkError::Malformed(p) => write!(f, "malformed `{p}`"),
            LinkError::BadSignature => f.write_str("bad signature"),
            LinkError::Expired => f.write_str("link expired"),
        }
    }
}

impl std::error::Error for LinkError {}

/// Returns the raw value of query parameter `name` (first `=` splits name and
/// value; a bare `name` has an empty value). `Ok(None)` when absent,
/// `Err(Malformed)` when present more than once.
pub fn query_param<'a>(query: &'a str, name: &'static str) -> Result<Option<&'a str>, LinkError> {
    let query = query.strip_prefix('?').unwrap_or(query);
    let mut found = None;
    for pair in query.split('&') {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        if k == name {
            if found.is_some() {
                return Err(LinkError::Malformed(name));
            }
            found = Some(v);
        }
    }
    Ok(found)
}

pub(super) fn required_param<'a>(query: &'a str, name: &'static str) -> Result<&'a str, LinkError> {
    query_param(query, name)?.ok_or(LinkError::Missing(name))
}

/// Splits `url` into (everything before the query, query without `?`,
/// fragment including `#`). Missing parts are empty strings.
fn split_url(url: &str) -> (&str, &str, &str) {
    let (rest, fragment) = match url.find('#') {
        Some(i) => url.split_at(i),
        None => (url, ""),
    };
    match rest.split_once('?') {
        Some((head, q)) => (head, q, fragment),
        None => (rest, "", fragment),
    }
}

/// The path of an absolute URL (`scheme://host[:port]/path`), or of a bare
/// path; `/` when the URL has none. Query and fragment are excluded.
pub fn url_path(url: &str) -> &str {
    let (head, _, _) = split_url(url);
    let after_scheme = match head.find("://") {
        Some(i) => &head[i + 3..],
        None => {
            if head.starts_with('/') {
                return head;
            }
            head
        }
    };
    match after_scheme.find('/') {
        Some(i) => &after_scheme[i..],
        None => "/",
    }
}

/// Appends `params` (already URL-safe) to `url`, keeping any existing query
/// and fragment. Fails if one of the parameter names is already present.
pub fn append_params(url: &str, params: &[(&'static str, &str)]) -> Result<String, UrlError> {
    let (head, query, fragment) = split_url(url);
    for (name, _) in params {
        if !matches!(query_param(query, name), Ok(None)) {
            return Err(UrlError::AlreadySigned(name));
        }
    }
    let mut out = String::with_capacity(url.len() + 96);
    out.push_str(head);
    out.push('?');
    if !query.is_empty() {
        out.push_str(query);
        if !query.ends_with('&') {
            out.push('&');
        }
    }
    for (i, (name, value)) in params.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        out.push_str(name);
        out.push('=');
        out.push_str(value);
    }
    out.push_str(fragment);
    Ok(out)
}

pub(super) fn trim_base(base: &str) -> &str {
    base.trim_end_matches('/')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_param_parsing() {
        assert_eq!(query_param("a=1&b=2", "b"), Ok(Some("2")));
        assert_eq!(query_param("?a=1&b=2", "a"), Ok(Some("1")));
        assert_eq!(query_param("a&b=2", "a"), Ok(Some("")));
        assert_eq!(query_param("a=1=2", "a"), Ok(Some("1=2")));
        assert_eq!(query_param("", "a"), Ok(None));
        assert_eq!(query_param("aa=1", "a"), Ok(None));
        assert_eq!(query_param("a=1&a=2", "a"), Err(LinkError::Malformed("a")));
    }

    #[test]
    fn url_path_variants() {
        assert_eq!(url_path("https://h.example/a/b.flv?x=1#f"), "/a/b.flv");
        assert_eq!(url_path("rtmp://h.example:1935/live/s"), "/live/s");
        assert_eq!(url_path("https://h.example"), "/");
        assert_eq!(url_path("https://h.example?x=1"), "/");
        assert_eq!(url_path("/p/q?x"), "/p/q");
        assert_eq!(url_path(""), "/");
    }
}
