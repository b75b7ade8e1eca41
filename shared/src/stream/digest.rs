//! Digest helpers shared by the CDN formats: computing MD5, decoding the digests a request
//! carries, and comparing them.
//!
//! All digest comparisons are constant-time: HMAC through [`hmac::Mac::verify_slice`] (in
//! [`native`](super::native)), MD5 digests through the crate's one constant-time comparison,
//! [`crate::crypto::ct_eq`].

use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use md5::{Digest as _, Md5};

/// URL-safe base64 decoder that accepts input with or without `=` padding
/// (nginx's `ngx_decode_base64url` stops at `=`).
pub(super) const URL_SAFE_LENIENT: GeneralPurpose = GeneralPurpose::new(
    &alphabet::URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

use super::url::LinkError;
use crate::crypto::ct_eq;

/// The last two checks of every CDN format: the digest the URL carries must be the one we
/// compute (compared in constant time), and the link must not be past `expires`.
pub(super) fn check_digest(
    given: &[u8],
    expected: &[u8],
    now: i64,
    expires: i64,
) -> Result<(), LinkError> {
    if !ct_eq(given, expected) {
        return Err(LinkError::BadSignature);
    }
    if now > expires {
        return Err(LinkError::Expired);
    }
    Ok(())
}

pub(super) fn md5_bytes(parts: &[&[u8]]) -> [u8; 16] {
    let mut h = Md5::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

/// Decodes exactly 32 hex digits (either case) into 16 bytes.
pub(super) fn decode_hex16(s: &str) -> Option<[u8; 16]> {
    let mut out = [0u8; 16];
    hex::decode_to_slice(s, &mut out).ok()?;
    Some(out)
}
