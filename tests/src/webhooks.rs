//! A webhook receiver on loopback for the dispatcher's tests: real HTTP, answers the test
//! controls (fail the next N, down, gone), every request logged; and a verifier of the
//! signatures written from the Standard Webhooks text, apart from the signer.

use crate::fake::{Answer, FakeServer, Seen};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;

#[derive(Default)]
pub struct Mode {
    /// Answer 500 to this many more requests.
    pub fail_next: AtomicU32,
    /// Answer 503 while set (the backend is down).
    pub down: AtomicBool,
    /// Answer 410 Gone while set.
    pub gone: AtomicBool,
}

pub struct Receiver {
    pub server: FakeServer,
    pub mode: Arc<Mode>,
}

impl Receiver {
    pub async fn start() -> Receiver {
        let mode = Arc::new(Mode::default());
        let m = mode.clone();
        let server = FakeServer::start(Arc::new(move |_s: &Seen| {
            if m.gone.load(Ordering::SeqCst) {
                return Answer::plain(410, "gone");
            }
            if m.down.load(Ordering::SeqCst) {
                return Answer::plain(503, "down");
            }
            let failing = m
                .fail_next
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok();
            if failing {
                Answer::plain(500, "failing")
            } else {
                Answer::plain(204, "")
            }
        }))
        .await;
        Receiver { server, mode }
    }

    pub fn url(&self) -> String {
        format!("{}/hooks", self.server.base)
    }

    /// Every request so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.server.seen()
    }
}

/// The spec's verification: the signed content is `id.timestamp.body`; the signature
/// header a space-separated list of `v1,<base64>`; one match under the key is enough.
pub fn verify(key: &str, seen: &Seen) -> bool {
    use aws_lc_rs::hmac;
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD;
    let Some(secret) = key.strip_prefix("whsec_").and_then(|k| b64.decode(k).ok()) else {
        return false;
    };
    let k = hmac::Key::new(hmac::HMAC_SHA256, &secret);
    let mut content = format!(
        "{}.{}.",
        seen.header("webhook-id"),
        seen.header("webhook-timestamp")
    )
    .into_bytes();
    content.extend_from_slice(&seen.body);
    seen.header("webhook-signature").split(' ').any(|part| {
        let Some(("v1", sig)) = part.split_once(',') else {
            return false;
        };
        b64.decode(sig)
            .is_ok_and(|s| hmac::verify(&k, &content, &s).is_ok())
    })
}
