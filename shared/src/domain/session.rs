//! Device sessions and free previews: which device may hold a stream token now.
//!
//! All of a user's sessions live in one item guarded by a version number, so the decision
//! made here is written back with one conditional write and two devices racing for the last
//! slot cannot both win: the loser re-reads and runs this rule again.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What happens to a new device when the user already has `MAX_DEVICES` live sessions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DevicePolicy {
    /// The least recently seen device loses its session.
    Evict,
    /// The new device is refused until another session lapses.
    Deny,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceSession {
    pub session_id: String,
    /// When a token was last issued to this device (verification does not write).
    pub last_seen: i64,
}

/// The user's `SESSIONS` item as read, with the version the next write is conditioned on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sessions {
    pub devices: BTreeMap<String, DeviceSession>,
    /// stream id → when this user's one free preview of it started.
    pub previews: BTreeMap<String, i64>,
    /// 0 when the item does not exist yet.
    pub version: u64,
}

impl Sessions {
    /// Whether `session_id` is one of the user's sessions (an evicted one no longer is).
    pub fn holds(&self, session_id: &str) -> bool {
        self.devices.values().any(|d| d.session_id == session_id)
    }
}

/// How the caller may watch, decided before any session is touched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Entitled,
    /// Not entitled; the stream offers this many free seconds per user.
    PreviewOffered(u32),
    None,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admission {
    /// What to write back (version is the one read; the store bumps it).
    pub sessions: Sessions,
    pub session_id: String,
    pub expires_at: i64,
    pub preview: bool,
    /// Devices that lost their session to this one.
    pub evicted: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Not entitled and no preview left.
    NotEntitled,
    /// `DevicePolicy::Deny` and every slot is taken by another device.
    DeviceLimit,
}

pub struct Request<'a> {
    pub stream_id: &'a str,
    pub device_id: &'a str,
    /// Used only when the device has no session yet.
    pub new_session_id: &'a str,
    pub access: Access,
    pub now: i64,
    pub ttl: i64,
    pub max_devices: u32,
    pub policy: DevicePolicy,
}

/// Admits `device_id` to a session for one token, or refuses.
///
/// A session idle for longer than a token lives holds no valid token any more, so it no
/// longer counts against the limit (otherwise, under `Deny`, a phone left in a drawer would
/// lock its owner out). Re-issuing for a device renews its session and keeps its id, so the
/// token it already plays with stays valid.
pub fn admit(current: &Sessions, req: &Request<'_>) -> Result<Admission, Refusal> {
    let mut next = current.clone();
    let (expires_at, preview) = match req.access {
        Access::Entitled => (req.now.saturating_add(req.ttl), false),
        Access::PreviewOffered(seconds) if seconds > 0 => {
            let started = *next
                .previews
                .entry(req.stream_id.to_owned())
                .or_insert(req.now);
            let ends = started.saturating_add(i64::from(seconds));
            if req.now >= ends {
                return Err(Refusal::NotEntitled);
            }
            (req.now.saturating_add(req.ttl).min(ends), true)
        }
        Access::PreviewOffered(_) | Access::None => return Err(Refusal::NotEntitled),
    };
    next.devices
        .retain(|_, d| d.last_seen.saturating_add(req.ttl) > req.now);
    let mut evicted = Vec::new();
    let session_id = match next.devices.get_mut(req.device_id) {
        Some(d) => {
            d.last_seen = req.now;
            d.session_id.clone()
        }
        None => {
            let max = req.max_devices.max(1) as usize;
            while next.devices.len() >= max {
                if req.policy == DevicePolicy::Deny {
                    return Err(Refusal::DeviceLimit);
                }
                let Some(oldest) = next
                    .devices
                    .iter()
                    .min_by(|a, b| (a.1.last_seen, a.0).cmp(&(b.1.last_seen, b.0)))
                    .map(|(k, _)| k.clone())
                else {
                    break;
                };
                next.devices.remove(&oldest);
                evicted.push(oldest);
            }
            next.devices.insert(
                req.device_id.to_owned(),
                DeviceSession {
                    session_id: req.new_session_id.to_owned(),
                    last_seen: req.now,
                },
            );
            req.new_session_id.to_owned()
        }
    };
    Ok(Admission {
        sessions: next,
        session_id,
        expires_at,
        preview,
        evicted,
    })
}

/// Whether a preview token for `stream_id` may still play at `now`.
pub fn preview_open(sessions: &Sessions, stream_id: &str, preview_seconds: u32, now: i64) -> bool {
    sessions
        .previews
        .get(stream_id)
        .is_some_and(|started| now < started.saturating_add(i64::from(preview_seconds)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req<'a>(device: &'a str, sid: &'a str, now: i64, policy: DevicePolicy) -> Request<'a> {
        Request {
            stream_id: "s",
            device_id: device,
            new_session_id: sid,
            access: Access::Entitled,
            now,
            ttl: 300,
            max_devices: 2,
            policy,
        }
    }

    fn run(s: &Sessions, r: &Request<'_>) -> Result<Admission, Refusal> {
        admit(s, r)
    }

    #[test]
    fn third_device_evicts_the_least_recently_seen() {
        let mut s = Sessions::default();
        s = run(&s, &req("a", "sa", 0, DevicePolicy::Evict))
            .unwrap()
            .sessions;
        s = run(&s, &req("b", "sb", 10, DevicePolicy::Evict))
            .unwrap()
            .sessions;
        // a renews: same session id, now the most recent.
        let a = run(&s, &req("a", "ignored", 20, DevicePolicy::Evict)).unwrap();
        assert_eq!(a.session_id, "sa");
        s = a.sessions;
        let c = run(&s, &req("c", "sc", 30, DevicePolicy::Evict)).unwrap();
        assert_eq!(c.evicted, vec!["b".to_string()]);
        assert!(c.sessions.holds("sa") && c.sessions.holds("sc") && !c.sessions.holds("sb"));
    }

    #[test]
    fn deny_refuses_a_new_device_but_renews_a_known_one() {
        let mut s = Sessions::default();
        for (d, sid) in [("a", "sa"), ("b", "sb")] {
            s = run(&s, &req(d, sid, 0, DevicePolicy::Deny))
                .unwrap()
                .sessions;
        }
        assert_eq!(
            run(&s, &req("c", "sc", 1, DevicePolicy::Deny)),
            Err(Refusal::DeviceLimit)
        );
        assert!(run(&s, &req("a", "x", 1, DevicePolicy::Deny)).is_ok());
        // Idle sessions (no valid token left) free their slot.
        assert!(run(&s, &req("c", "sc", 300, DevicePolicy::Deny)).is_ok());
    }

    #[test]
    fn preview_starts_once_and_caps_expiry() {
        let s = Sessions::default();
        let mut r = req("a", "sa", 100, DevicePolicy::Evict);
        r.access = Access::PreviewOffered(120);
        let first = run(&s, &r).unwrap();
        assert!(first.preview);
        assert_eq!(first.expires_at, 220, "capped at the window's end");
        assert_eq!(first.sessions.previews.get("s"), Some(&100));
        r.now = 219;
        let again = run(&first.sessions, &r).unwrap();
        assert_eq!(again.expires_at, 220);
        assert!(preview_open(&again.sessions, "s", 120, 219));
        r.now = 220;
        assert_eq!(run(&again.sessions, &r), Err(Refusal::NotEntitled));
        assert!(!preview_open(&again.sessions, "s", 120, 220));
        r.access = Access::None;
        r.now = 0;
        assert_eq!(run(&s, &r), Err(Refusal::NotEntitled));
    }
}
