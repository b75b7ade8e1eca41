//! Caps on what the routes providers call may receive: `/callbacks/{provider}`,
//! `/notifications/apple` and `/notifications/google`. These routes take no user token, so
//! anyone can send them anything; each request is measured against its provider's caps
//! before any parsing, decoding or signature check, and refused at once when over them (413
//! for the body, 400 for the parameters), in the provider's own failure answer.
//!
//! Every cap is several times the largest genuine message the provider's documentation and
//! our tests show, so a genuine notification is never refused; what the caps bound is the
//! work a forged one can cost. No cap is above [`super::MAX_BODY_BYTES`], the cap of every
//! other route.

use super::MAX_BODY_BYTES;
use bytes::Bytes;
use http::{Request, StatusCode};

/// What one provider may send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallbackLimits {
    /// The largest body, in bytes.
    pub max_body_bytes: usize,
    /// The most parameters: `&`-separated pairs of the query string, plus those of the body
    /// when the provider posts a form.
    pub max_params: usize,
    /// Whether the body is a form whose pairs are parameters (Alipay). JSON bodies are bounded
    /// by their size alone: they are read in one linear pass.
    pub form_body: bool,
}

/// The sandbox: a JSON object of five short fields (order id, transaction id, status,
/// amount, timestamp), about 200 bytes. No query.
pub const SANDBOX: CallbackLimits = CallbackLimits {
    max_body_bytes: 4 * 1024,
    max_params: 8,
    form_body: false,
};

/// WeChat Pay v3: a JSON envelope (id, times, event and resource types, summary) around the
/// AES-GCM ciphertext of the transaction or refund, 1–2 KB; the ciphertext grows with the
/// `promotion_detail` list, hence the room. WeChat Pay sends no query (the notify URL may
/// not carry one).
pub const WECHAT: CallbackLimits = CallbackLimits {
    max_body_bytes: 32 * 1024,
    max_params: 8,
    form_body: false,
};

/// Alipay's asynchronous notify: a form of 20–40 documented fields, 1–3 KB; the longest are
/// `fund_bill_list` and `voucher_detail_list` (JSON, percent-encoded), `passback_params`
/// (up to 512 characters) and Chinese text, which a GBK form percent-encodes at three bytes
/// a byte. Duplicate detection is linear, but every field is decoded in its charset.
pub const ALIPAY: CallbackLimits = CallbackLimits {
    max_body_bytes: 16 * 1024,
    max_params: 100,
    form_body: true,
};

/// Huya: seven short string fields, by GET in the query or by POST as a JSON object, about
/// 300 bytes either way.
pub const HUYA: CallbackLimits = CallbackLimits {
    max_body_bytes: 4 * 1024,
    max_params: 32,
    form_body: false,
};

/// App Store Server Notifications V2: `{"signedPayload": JWS}` whose header carries a
/// three-certificate chain and whose payload carries two more JWS (the signed transaction
/// and renewal info), each with its own chain, every layer base64url-encoded again: 15–25 KB
/// with Apple's certificates. The cap of every other route, about three times that.
pub const APPLE: CallbackLimits = CallbackLimits {
    max_body_bytes: MAX_BODY_BYTES,
    max_params: 8,
    form_body: false,
};

/// Google Pub/Sub push: a JSON envelope (message id, publish time, subscription name,
/// attributes) around the base64 of a developer notification of a few hundred bytes, about
/// 1 KB. The OIDC token travels in a header, bounded with the request head.
pub const GOOGLE: CallbackLimits = CallbackLimits {
    max_body_bytes: 16 * 1024,
    max_params: 8,
    form_body: false,
};

/// A provider without caps of its own (none today): the cap of every other route, no query
/// and no form.
pub const OTHER: CallbackLimits = CallbackLimits {
    max_body_bytes: MAX_BODY_BYTES,
    max_params: 16,
    form_body: false,
};

/// The caps of a provider's routes.
pub fn of(provider: &str) -> CallbackLimits {
    use crate::providers::{alipay, apple, google, huya, sandbox, wechat};
    match provider {
        sandbox::NAME => SANDBOX,
        wechat::NAME => WECHAT,
        alipay::NAME => ALIPAY,
        huya::NAME => HUYA,
        apple::NAME => APPLE,
        google::NAME => GOOGLE,
        _ => OTHER,
    }
}

/// Why a request was refused before it was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum OverCap {
    #[error("request body is over {0} bytes")]
    Body(usize),
    #[error("request has more than {0} parameters")]
    Params(usize),
}

impl OverCap {
    /// The label of the `CallbackRejected` metric and of the log line.
    pub fn code(self) -> &'static str {
        match self {
            OverCap::Body(_) => "body_too_large",
            OverCap::Params(_) => "too_many_params",
        }
    }

    pub fn status(self) -> StatusCode {
        match self {
            OverCap::Body(_) => StatusCode::PAYLOAD_TOO_LARGE,
            OverCap::Params(_) => StatusCode::BAD_REQUEST,
        }
    }

    /// The problem type, for routes that answer problem+json.
    pub fn problem_type(self) -> &'static str {
        match self {
            OverCap::Body(_) => "body-too-large",
            OverCap::Params(_) => "too-many-parameters",
        }
    }
}

impl CallbackLimits {
    /// Measures `req` without parsing it: its length, and the `&`s of its query (and form
    /// body), counting at most one pair past the cap.
    pub fn check(&self, req: &Request<Bytes>) -> Result<(), OverCap> {
        if super::body_over(req, self.max_body_bytes) {
            return Err(OverCap::Body(self.max_body_bytes));
        }
        let query = req.uri().query().unwrap_or("").as_bytes();
        let body: &[u8] = if self.form_body { req.body() } else { b"" };
        let pairs = [query, body]
            .into_iter()
            .flat_map(|part| part.split(|b| *b == b'&'))
            .filter(|pair| !pair.is_empty())
            .take(self.max_params + 1)
            .count();
        if pairs > self.max_params {
            return Err(OverCap::Params(self.max_params));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(uri: &str, body: &str) -> Request<Bytes> {
        Request::post(uri)
            .body(Bytes::from(body.to_owned()))
            .unwrap()
    }

    fn form(pairs: usize) -> String {
        (0..pairs)
            .map(|i| format!("k{i}=v"))
            .collect::<Vec<_>>()
            .join("&")
    }

    #[test]
    fn a_body_at_the_cap_passes_and_one_byte_more_does_not() {
        let at = "a".repeat(SANDBOX.max_body_bytes);
        assert_eq!(SANDBOX.check(&req("/callbacks/sandbox", &at)), Ok(()));
        let over = "a".repeat(SANDBOX.max_body_bytes + 1);
        assert_eq!(
            SANDBOX.check(&req("/callbacks/sandbox", &over)),
            Err(OverCap::Body(4096))
        );
    }

    #[test]
    fn a_body_the_server_stopped_reading_is_over_every_cap() {
        let mut r = req("/callbacks/alipay", "");
        r.extensions_mut().insert(super::super::BodyOverMax);
        assert_eq!(ALIPAY.check(&r), Err(OverCap::Body(ALIPAY.max_body_bytes)));
    }

    #[test]
    fn form_pairs_count_for_a_form_provider_only() {
        let max = ALIPAY.max_params;
        assert_eq!(ALIPAY.check(&req("/callbacks/alipay", &form(max))), Ok(()));
        assert_eq!(
            ALIPAY.check(&req("/callbacks/alipay", &form(max + 1))),
            Err(OverCap::Params(max))
        );
        // Empty pairs (`&&`) are not parameters.
        let sparse = format!("&&{}&&", form(max));
        assert_eq!(ALIPAY.check(&req("/callbacks/alipay", &sparse)), Ok(()));
        // A JSON provider's body is not a form: its size is its only bound.
        assert_eq!(
            SANDBOX.check(&req("/callbacks/sandbox", &form(SANDBOX.max_params * 10))),
            Ok(())
        );
    }

    #[test]
    fn query_pairs_count_on_every_route() {
        let max = HUYA.max_params;
        let at = format!("/callbacks/huya?{}", form(max));
        assert_eq!(HUYA.check(&req(&at, "")), Ok(()));
        let over = format!("/callbacks/huya?{}", form(max + 1));
        assert_eq!(HUYA.check(&req(&over, "")), Err(OverCap::Params(max)));
        // Query and form pairs add up.
        let split = format!("/callbacks/alipay?{}", form(50));
        assert_eq!(
            ALIPAY.check(&req(&split, &form(51))),
            Err(OverCap::Params(ALIPAY.max_params))
        );
    }

    #[test]
    fn every_provider_has_caps_within_the_global_one() {
        for name in ["sandbox", "wechat", "alipay", "huya", "apple", "google"] {
            assert_ne!(of(name), OTHER, "{name} has no caps of its own");
        }
        for l in [SANDBOX, WECHAT, ALIPAY, HUYA, APPLE, GOOGLE] {
            assert!(l.max_body_bytes <= MAX_BODY_BYTES, "{l:?}");
        }
        assert_eq!(of("nobody"), OTHER);
    }
}
