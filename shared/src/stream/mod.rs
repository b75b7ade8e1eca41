//! Stream tokens: the wire formats of the CDNs and media servers that enforce them, and the
//! glue that turns an admitted session into a signed playback URL.
//!
//! The formats are pure code: no I/O, no async, no clocks (callers pass `now` as unix
//! seconds), and no panics on caller- or attacker-controlled input. Each lives in its own
//! module:
//!
//! * [`native`]: Tollgate's own HMAC-SHA256 tokens (`v1.{kid}.{payload}.{mac}`), key rotation
//!   by `kid`, checked by `POST /streams/verify`;
//! * [`nginx`]: nginx `secure_link` (`md5` + `expires` query args);
//! * [`tencent`]: Tencent Cloud CSS hotlink protection (`txSecret` + `txTime`);
//! * [`aliyun`]: Alibaba Cloud CDN / ApsaraVideo Live type A (`auth_key`);
//! * [`url`]: the query-string and URL helpers they share, [`digest`] their digest helpers.
//!
//! [`names`] decides which stream a media server's play request names, so that a native token
//! for one stream opens no other.
//!
//! The CDN formats treat the expiry second itself as still valid, like nginx does (rejected
//! once `now > expiry`); native tokens follow the JWT `exp` convention (rejected once
//! `now >= exp`).

pub mod aliyun;
pub mod digest;
pub mod names;
pub mod native;
pub mod nginx;
pub mod tencent;
pub mod url;

pub use names::{names_stream, Asked};

use crate::secret::Secret;
use native::{Claims, SigningKeys};
use url::UrlError;

/// How a playback URL is signed. The media edge decides which one it understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// HMAC-SHA256 token in `?token=`, checked by `POST /streams/verify`.
    Native,
    /// nginx `secure_link` (`md5` + `expires`).
    Nginx,
    /// Tencent Cloud CSS `txSecret` + `txTime`.
    Tencent,
    /// Alibaba Cloud type A `auth_key`.
    Aliyun,
}

impl Format {
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "native" => Some(Format::Native),
            "nginx" => Some(Format::Nginx),
            "tencent" => Some(Format::Tencent),
            "aliyun" => Some(Format::Aliyun),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Format::Native => "native",
            Format::Nginx => "nginx",
            Format::Tencent => "tencent",
            Format::Aliyun => "aliyun",
        }
    }

    /// The configuration variable holding this format's key.
    pub fn key_variable(self) -> &'static str {
        match self {
            Format::Native => "STREAM_SIGNING_KEYS",
            Format::Nginx => "NGINX_SECURE_LINK_SECRET",
            Format::Tencent => "TENCENT_PLAY_KEY",
            Format::Aliyun => "ALIYUN_AUTH_KEY",
        }
    }
}

/// The key of each format, as configured; a format without one cannot be issued. `Debug`
/// shows native key ids only and no secret.
#[derive(Debug, Clone, Default)]
pub struct StreamKeys {
    /// Native tokens: the first key signs, all verify (rotation with overlap).
    pub native: Option<SigningKeys>,
    /// nginx `secure_link` secret.
    pub nginx: Option<Secret>,
    /// Tencent CSS play key.
    pub tencent: Option<Secret>,
    /// Alibaba Cloud type A private key.
    pub aliyun: Option<Secret>,
}

/// The key material of one format, borrowed from [`StreamKeys`].
pub enum Signer<'a> {
    Native(&'a SigningKeys),
    Nginx(&'a Secret),
    Tencent(&'a Secret),
    Aliyun(&'a Secret),
}

impl<'a> Signer<'a> {
    /// `None` when the format's key is not configured.
    pub fn for_format(keys: &'a StreamKeys, format: Format) -> Option<Self> {
        match format {
            Format::Native => keys.native.as_ref().map(Signer::Native),
            Format::Nginx => keys.nginx.as_ref().map(Signer::Nginx),
            Format::Tencent => keys.tencent.as_ref().map(Signer::Tencent),
            Format::Aliyun => keys.aliyun.as_ref().map(Signer::Aliyun),
        }
    }

    /// The playback URL for `origin` and the credential it carries (the native token, or the
    /// format's signature parameter). `rand` feeds Aliyun's nonce field.
    pub fn sign(
        &self,
        origin: &str,
        claims: &Claims,
        rand: &str,
    ) -> Result<(String, String), UrlError> {
        let expires = claims.exp;
        match self {
            Signer::Native(keys) => {
                let token = native::sign(keys, claims);
                let url = url::append_params(origin, &[("token", &token)])?;
                Ok((url, token))
            }
            Signer::Nginx(secret) => {
                let path = url::url_path(origin);
                let base = origin_base(origin);
                // nginx hashes the decoded `$uri`; catalog origins are plain ASCII paths.
                let url = nginx::nginx_secure_link_url(
                    base,
                    path,
                    expires,
                    claims.ip.as_deref(),
                    secret.expose(),
                )?;
                let md5 = nginx::nginx_secure_link_hash(
                    expires,
                    path,
                    claims.ip.as_deref(),
                    secret.expose(),
                );
                Ok((url, md5))
            }
            Signer::Tencent(key) => {
                let name = tencent::tencent_stream_name_from_path(url::url_path(origin))
                    .ok_or(UrlError::InvalidComponent("stream"))?;
                let url = tencent::tencent_sign_url(origin, name, key.expose(), expires)?;
                let tx_time = tencent::tencent_tx_time(expires)?;
                Ok((
                    url,
                    tencent::tencent_tx_secret(key.expose(), name, &tx_time),
                ))
            }
            Signer::Aliyun(key) => {
                let auth = aliyun::aliyun_auth_key(
                    url::url_path(origin),
                    expires,
                    rand,
                    "0",
                    key.expose(),
                )?;
                let url = url::append_params(origin, &[("auth_key", &auth)])?;
                Ok((url, auth))
            }
        }
    }
}

/// `scheme://host[:port]` of an absolute URL; empty for a bare path.
fn origin_base(origin: &str) -> &str {
    match origin.find("://") {
        Some(i) => {
            let rest = &origin[i + 3..];
            let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
            &origin[..i + 3 + end]
        }
        None => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_format_signs_an_origin() {
        let claims = Claims {
            stream: "c1".into(),
            sub: "u".into(),
            sid: "s".into(),
            exp: 1_800_000_300,
            ip: None,
            preview: false,
        };
        let origin = "https://live.example.com/live/concert.m3u8";
        let keys = SigningKeys::parse("k1:c3RyZWFtLXNpZ25pbmcta2V5LTE=").unwrap();
        let (url, token) = Signer::Native(&keys).sign(origin, &claims, "r").unwrap();
        assert_eq!(url, format!("{origin}?token={token}"));
        assert_eq!(
            native::verify(&keys, &token, 1_800_000_000, None),
            Ok(claims.clone())
        );

        let secret = Secret::new("nginx-secret-1234");
        let (url, md5) = Signer::Nginx(&secret).sign(origin, &claims, "r").unwrap();
        assert!(
            url.starts_with("https://live.example.com/live/concert.m3u8?md5="),
            "{url}"
        );
        let q = url.split_once('?').unwrap().1;
        assert_eq!(url::query_param(q, "md5"), Ok(Some(md5.as_str())));
        assert_eq!(
            nginx::verify_nginx_secure_link(
                "/live/concert.m3u8",
                q,
                None,
                secret.expose(),
                1_800_000_000
            ),
            Ok(())
        );

        let key = Secret::new("tencent-key");
        let (url, _) = Signer::Tencent(&key).sign(origin, &claims, "r").unwrap();
        let q = url.split_once('?').unwrap().1;
        assert!(url.contains("txTime=6B49D32C"), "{url}");
        assert_eq!(
            tencent::verify_tencent_url("/live/concert.m3u8", q, key.expose(), 1_800_000_000),
            Ok(())
        );

        let key = Secret::new("aliyun-key");
        let (url, auth) = Signer::Aliyun(&key).sign(origin, &claims, "ab12").unwrap();
        assert!(auth.starts_with("1800000300-ab12-0-"), "{auth}");
        let q = url.split_once('?').unwrap().1;
        assert_eq!(
            aliyun::verify_aliyun_url("/live/concert.m3u8", q, key.expose(), 1_800_000_000, 0),
            Ok(())
        );
    }
}
