//! Business lines: a company with several apps or lines of business routes each line's
//! events to that line's backends. Every product belongs to exactly one line, chosen in the
//! catalog by id prefix, by a list of ids or by a `*` pattern; a catalog without `lines` has
//! one implicit line, `default`, with every product and no webhooks (nothing is sent).

use super::event::EventType;
use serde::Deserialize;
use std::fmt;

/// The id of the implicit line of a catalog without `lines`.
pub const DEFAULT_LINE: &str = "default";

/// Which products a line holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProductMatch {
    Prefix(String),
    Ids(Vec<String>),
    /// `*` matches any run of characters (none included); everything else literally.
    Pattern(String),
    /// Every product (the implicit default line).
    All,
}

impl ProductMatch {
    pub fn matches(&self, product_id: &str) -> bool {
        match self {
            ProductMatch::Prefix(p) => product_id.starts_with(p.as_str()),
            ProductMatch::Ids(ids) => ids.iter().any(|i| i == product_id),
            ProductMatch::Pattern(p) => glob(p.as_bytes(), product_id.as_bytes()),
            ProductMatch::All => true,
        }
    }
}

/// `*`-only glob matching, iterative with one backtrack point (linear in practice, never
/// exponential on hostile patterns).
fn glob(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && pattern[p] == b'*' {
            star = Some((p, t));
            p += 1;
        } else if p < pattern.len() && pattern[p] == text[t] {
            p += 1;
            t += 1;
        } else if let Some((sp, st)) = star {
            p = sp + 1;
            t = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&b| b == b'*')
}

/// A webhook signing secret (`whsec_` + base64 of the key), or where to read it (a Secrets
/// Manager ARN or `ssm:<name>`, as for the other secrets). `Debug` never shows a value.
#[derive(Clone, PartialEq, Eq)]
pub enum WebhookSecret {
    Value(String),
    Reference(String),
}

impl fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WebhookSecret::Value(_) => f.write_str("WebhookSecret(***)"),
            WebhookSecret::Reference(r) => write!(f, "WebhookSecret(ref {r})"),
        }
    }
}

impl WebhookSecret {
    fn parse(text: &str) -> Result<WebhookSecret, String> {
        if let Some(key) = text.strip_prefix("whsec_") {
            use base64::Engine;
            return match base64::engine::general_purpose::STANDARD.decode(key) {
                Ok(k) if k.len() >= 16 => Ok(WebhookSecret::Value(text.to_owned())),
                Ok(_) => Err("a webhook secret's key must be at least 16 bytes".into()),
                Err(_) => Err("a webhook secret is whsec_ followed by base64".into()),
            };
        }
        let is_arn = text.starts_with("arn:") && text.contains(":secretsmanager:");
        let is_ssm = text.strip_prefix("ssm:").is_some_and(|n| !n.is_empty());
        if is_arn || is_ssm {
            Ok(WebhookSecret::Reference(text.to_owned()))
        } else {
            Err("a webhook secret is whsec_<base64>, a Secrets Manager ARN or ssm:<name>".into())
        }
    }
}

/// One endpoint of a line's backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Webhook {
    pub url: String,
    /// The first signs with the current key; the others are older keys still accepted by
    /// the receiver while it rotates (each gives one more signature).
    pub secrets: Vec<WebhookSecret>,
    /// The event types it wants; `None`: all of them.
    pub events: Option<Vec<EventType>>,
}

impl Webhook {
    pub fn wants(&self, kind: EventType) -> bool {
        self.events.as_ref().is_none_or(|e| e.contains(&kind))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub id: String,
    pub products: ProductMatch,
    pub webhooks: Vec<Webhook>,
}

/// The catalog's lines, each product in exactly one (checked when the catalog is loaded).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lines {
    lines: Vec<Line>,
}

impl Default for Lines {
    fn default() -> Self {
        Lines {
            lines: vec![Line {
                id: DEFAULT_LINE.into(),
                products: ProductMatch::All,
                webhooks: Vec::new(),
            }],
        }
    }
}

impl Lines {
    pub fn all(&self) -> &[Line] {
        &self.lines
    }

    pub fn get(&self, id: &str) -> Option<&Line> {
        self.lines.iter().find(|l| l.id == id)
    }

    /// The line of `product_id`; an event about no product (an operator's change of coins,
    /// which are the user's whatever line sold them) belongs to the first line. A product
    /// the catalog no longer has is matched by the rules as they are now.
    pub fn line_of(&self, product_id: Option<&str>) -> &Line {
        let found = match product_id {
            Some(p) => self.lines.iter().find(|l| l.products.matches(p)),
            None => None,
        };
        // Never empty: parsing refuses an empty list and the default has one line.
        found.unwrap_or(&self.lines[0])
    }

    /// Parses and checks the catalog's `lines` against its product ids: ids valid and
    /// unique, each product in exactly one line, webhook URLs https (or http on loopback),
    /// secrets well formed. Errors name the entry and, for routing, the product.
    pub fn parse(value: serde_json::Value, products: &[&str]) -> Result<Lines, (String, String)> {
        let raw: Vec<RawLine> =
            serde_json::from_value(value).map_err(|e| ("lines".to_owned(), e.to_string()))?;
        if raw.is_empty() {
            return Err(("lines".into(), "at least one line is needed".into()));
        }
        let mut lines: Vec<Line> = Vec::with_capacity(raw.len());
        for (i, r) in raw.into_iter().enumerate() {
            let name = format!("lines[{i}] ({:?})", r.id);
            let line = r.validate().map_err(|p| (name.clone(), p))?;
            if lines.iter().any(|l| l.id == line.id) {
                return Err((name, "duplicate line id".into()));
            }
            lines.push(line);
        }
        for p in products {
            let owners: Vec<&str> = lines
                .iter()
                .filter(|l| l.products.matches(p))
                .map(|l| l.id.as_str())
                .collect();
            match owners.as_slice() {
                [_] => {}
                [] => {
                    return Err((
                        format!("product {p:?}"),
                        "belongs to no line (every product must be in exactly one)".into(),
                    ))
                }
                many => {
                    return Err((
                        format!("product {p:?}"),
                        format!("belongs to several lines: {}", many.join(", ")),
                    ))
                }
            }
        }
        Ok(Lines { lines })
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLine {
    id: String,
    products: RawMatch,
    #[serde(default)]
    webhooks: Vec<RawWebhook>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMatch {
    prefix: Option<String>,
    ids: Option<Vec<String>>,
    pattern: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWebhook {
    url: String,
    secret: OneOrMany,
    events: Option<Vec<String>>,
}

impl RawLine {
    fn validate(self) -> Result<Line, String> {
        if self.id.is_empty()
            || self.id.len() > 64
            || !self
                .id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        {
            return Err("id must be 1-64 characters of letters, digits, '-', '_', '.'".into());
        }
        let products = match (
            self.products.prefix,
            self.products.ids,
            self.products.pattern,
        ) {
            (Some(p), None, None) if !p.is_empty() => ProductMatch::Prefix(p),
            (None, Some(ids), None) if !ids.is_empty() => ProductMatch::Ids(ids),
            (None, None, Some(p)) if !p.is_empty() => ProductMatch::Pattern(p),
            _ => {
                return Err(
                    "products must have exactly one of prefix, ids or pattern, not empty".into(),
                )
            }
        };
        let webhooks = self
            .webhooks
            .into_iter()
            .enumerate()
            .map(|(i, w)| w.validate().map_err(|p| format!("webhooks[{i}]: {p}")))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Line {
            id: self.id,
            products,
            webhooks,
        })
    }
}

impl RawWebhook {
    fn validate(self) -> Result<Webhook, String> {
        check_url(&self.url)?;
        let texts = match self.secret {
            OneOrMany::One(s) => vec![s],
            OneOrMany::Many(v) => v,
        };
        if texts.is_empty() {
            return Err("secret must name at least one key".into());
        }
        let secrets = texts
            .iter()
            .map(|t| WebhookSecret::parse(t))
            .collect::<Result<Vec<_>, _>>()?;
        let events = match self.events {
            None => None,
            Some(names) => Some(
                names
                    .iter()
                    .map(|n| EventType::parse(n).ok_or_else(|| format!("unknown event type {n:?}")))
                    .collect::<Result<Vec<_>, _>>()?,
            ),
        };
        Ok(Webhook {
            url: self.url,
            secrets,
            events,
        })
    }
}

/// An endpoint must be `https://`, or `http://` on a loopback host (development).
pub fn check_url(url: &str) -> Result<(), String> {
    if url.len() > 2048 || url.bytes().any(|b| b <= b' ' || b == 0x7f) {
        return Err("url must be at most 2048 printable characters".into());
    }
    let (rest, https) = if let Some(r) = url.strip_prefix("https://") {
        (r, true)
    } else if let Some(r) = url.strip_prefix("http://") {
        (r, false)
    } else {
        return Err("url must be https:// (http:// only on a loopback address)".into());
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    if authority.is_empty() || authority.contains('@') {
        return Err("url must name a host (and no user information)".into());
    }
    if !https && !is_loopback(authority) {
        return Err("url must be https:// (http:// only on a loopback address)".into());
    }
    Ok(())
}

fn is_loopback(authority: &str) -> bool {
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => authority.rsplit_once(':').map_or(authority, |(h, _)| h),
    };
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const KEY: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

    fn parse(v: serde_json::Value, products: &[&str]) -> Result<Lines, (String, String)> {
        Lines::parse(v, products)
    }

    #[test]
    fn routes_each_product_to_its_line() {
        let lines = parse(
            json!([
                {"id": "music", "products": {"prefix": "music-"},
                 "webhooks": [{"url": "https://music.example/hooks", "secret": KEY}]},
                {"id": "games", "products": {"ids": ["g1", "g2"]}},
                {"id": "other", "products": {"pattern": "x*-pass*"}}
            ]),
            &["music-vip", "g1", "g2", "xa-pass-7d"],
        )
        .unwrap();
        assert_eq!(lines.line_of(Some("music-vip")).id, "music");
        assert_eq!(lines.line_of(Some("g2")).id, "games");
        assert_eq!(lines.line_of(Some("xa-pass-7d")).id, "other");
        assert_eq!(lines.line_of(None).id, "music");
        assert_eq!(lines.get("music").unwrap().webhooks.len(), 1);
    }

    #[test]
    fn overlaps_and_orphans_name_the_product() {
        let overlap = parse(
            json!([
                {"id": "a", "products": {"prefix": "p"}},
                {"id": "b", "products": {"pattern": "*ass"}}
            ]),
            &["pass"],
        )
        .unwrap_err();
        assert_eq!(overlap.0, "product \"pass\"");
        assert!(overlap.1.contains("a, b"), "{}", overlap.1);
        let orphan = parse(json!([{"id": "a", "products": {"prefix": "q"}}]), &["pass"]);
        assert_eq!(orphan.unwrap_err().0, "product \"pass\"");
    }

    #[test]
    fn urls_are_https_or_loopback_http() {
        for ok in [
            "https://a.example/x",
            "http://127.0.0.1:8080/h",
            "http://localhost/h",
            "http://[::1]:9/h",
        ] {
            assert_eq!(check_url(ok), Ok(()), "{ok}");
        }
        for bad in [
            "http://a.example/x",
            "http://10.0.0.1/x",
            "ftp://a",
            "https://",
            "https://u:p@a.example/",
            "https://a.example/ x",
        ] {
            assert!(check_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn bad_lines_are_refused_and_secrets_never_printed() {
        for bad in [
            json!([]),
            json!([{"id": "", "products": {"prefix": "p"}}]),
            json!([{"id": "a", "products": {"prefix": "p", "ids": ["p"]}}]),
            json!([{"id": "a", "products": {}}]),
            json!([{"id": "a", "products": {"prefix": "p"}},
                   {"id": "a", "products": {"prefix": "q"}}]),
            json!([{"id": "a", "products": {"prefix": "p"},
                    "webhooks": [{"url": "https://a.example", "secret": "plain"}]}]),
            json!([{"id": "a", "products": {"prefix": "p"},
                    "webhooks": [{"url": "https://a.example", "secret": KEY,
                                  "events": ["order.nope"]}]}]),
            json!([{"id": "a", "products": {"prefix": "p"}, "extra": 1}]),
        ] {
            assert!(parse(bad.clone(), &[]).is_err(), "{bad}");
        }
        let lines = parse(
            json!([{"id": "a", "products": {"prefix": "p"},
                    "webhooks": [{"url": "https://a.example", "secret": [KEY, "ssm:/old"],
                                  "events": ["order.paid"]}]}]),
            &["p1"],
        )
        .unwrap();
        let printed = format!("{lines:?}");
        assert!(!printed.contains("MfKQ"), "{printed}");
        let w = &lines.all()[0].webhooks[0];
        assert!(w.wants(EventType::OrderPaid) && !w.wants(EventType::OrderCreated));
        assert_eq!(w.secrets.len(), 2);
    }

    #[test]
    fn without_lines_every_product_is_in_the_default_line() {
        let lines = Lines::default();
        assert_eq!(lines.line_of(Some("anything")).id, DEFAULT_LINE);
        assert!(lines.all()[0].webhooks.is_empty());
    }

    #[test]
    fn glob_is_exact_about_stars() {
        assert!(glob(b"a*b*c", b"aXXbYc"));
        assert!(glob(b"*", b""));
        assert!(!glob(b"a*b", b"aXc"));
        assert!(glob(b"abc", b"abc") && !glob(b"abc", b"abcd"));
    }
}
