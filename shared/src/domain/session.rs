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
    /// The stream the session plays: a request for another stream is a new view of it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<String>,
}

/// The user's `SESSIONS` item as read, with the version the next write is conditioned on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sessions {
    pub devices: BTreeMap<String, DeviceSession>,
    /// stream id → when this user's one free preview of it started.
    pub previews: BTreeMap<String, i64>,
    /// grant source id → playback sessions it served, for grants with `max_views`: counted
    /// in this item, so the count is part of the same conditional write as the session.
    pub views: BTreeMap<String, u32>,
    /// Source ids of the paid grants a token was issued for (their first access is counted
    /// once, by the write that adds them here; see [`crate::domain::first_access`]).
    pub accessed: std::collections::BTreeSet<String>,
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
    /// Entitled only by grants that serve a limited number of views
    /// ([`Request::counted`]): a new session takes one view of the first with one left.
    Counted,
    /// Not entitled; the stream offers this many free seconds per user.
    PreviewOffered(u32),
    None,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admission {
    /// What to write back (version is the one read; the store bumps it).
    pub sessions: Sessions,
    /// Whether `sessions` must be written: `false` for a renewal that changes nothing but
    /// a recent `last_seen` (see [`renewal_window`]), which costs no write.
    pub write: bool,
    pub session_id: String,
    pub expires_at: i64,
    pub preview: bool,
    /// Devices that lost their session to this one.
    pub evicted: Vec<String>,
    /// This admission starts the user's free preview of the stream (counted once, by the
    /// write that records the start).
    pub preview_started: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Not entitled and no preview left.
    NotEntitled,
    /// `DevicePolicy::Deny` and every slot is taken by another device.
    DeviceLimit,
    /// Entitled only by grants with `max_views`, and every view of them was served.
    ViewsUsed,
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
    /// With [`Access::Counted`]: the covering grants' (source id, `max_views`), in the
    /// order their views are taken.
    pub counted: &'a [(String, u32)],
}

/// How long after a device's `last_seen` was written a renewal for it writes nothing: half a
/// token's life. Players renew every few minutes, and every write of the one `SESSIONS` item
/// contends with the user's other writes; a renewal inside this window only would move
/// `last_seen` forward a little.
pub fn renewal_window(ttl: i64) -> i64 {
    ttl / 2
}

/// Whether a device's session may still hold an unexpired token at `now`. A token lives
/// `ttl` from its issue, and a renewal may issue one up to [`renewal_window`] after the
/// stored `last_seen` without writing: so a session is live for `ttl` plus that window, and
/// no token outlives the session it was issued for.
fn live(d: &DeviceSession, now: i64, ttl: i64) -> bool {
    d.last_seen
        .saturating_add(ttl)
        .saturating_add(renewal_window(ttl))
        > now
}

/// Admits `device_id` to a session for one token, or refuses.
///
/// A session idle for longer than its tokens can live holds no valid token any more, so it
/// no longer counts against the limit (otherwise, under `Deny`, a phone left in a drawer
/// would lock its owner out). Re-issuing for a device renews its session and keeps its id,
/// so the token it already plays with stays valid; a renewal soon after the last write
/// changes nothing stored (`write: false`).
pub fn admit(current: &Sessions, req: &Request<'_>) -> Result<Admission, Refusal> {
    let mut next = current.clone();
    let mut preview_started = false;
    let (expires_at, preview) = match req.access {
        Access::Entitled => (req.now.saturating_add(req.ttl), false),
        Access::PreviewOffered(seconds) if seconds > 0 => {
            let started = *next
                .previews
                .entry(req.stream_id.to_owned())
                .or_insert_with(|| {
                    preview_started = true;
                    req.now
                });
            let ends = started.saturating_add(i64::from(seconds));
            if req.now >= ends {
                return Err(Refusal::NotEntitled);
            }
            (req.now.saturating_add(req.ttl).min(ends), true)
        }
        Access::PreviewOffered(_) | Access::None => return Err(Refusal::NotEntitled),
        Access::Counted => (req.now.saturating_add(req.ttl), false),
    };
    // A view is a new session on the stream: renewing this device's live session on it
    // is not one.
    let renewing = current
        .devices
        .get(req.device_id)
        .is_some_and(|d| d.stream.as_deref() == Some(req.stream_id) && live(d, req.now, req.ttl));
    let mut counted = false;
    if req.access == Access::Counted && !renewing {
        let Some((source, _)) = req
            .counted
            .iter()
            .find(|(source, max)| next.views.get(source).copied().unwrap_or(0) < *max)
        else {
            return Err(Refusal::ViewsUsed);
        };
        *next.views.entry(source.clone()).or_default() += 1;
        counted = true;
    }
    // A renewal of a live session, soon after its last write, with no preview to start:
    // nothing worth a write.
    if let Some(d) = current.devices.get(req.device_id) {
        let recent = req.now.saturating_sub(d.last_seen) < renewal_window(req.ttl);
        let same_stream = d.stream.is_none() || d.stream.as_deref() == Some(req.stream_id);
        if !preview_started && !counted && same_stream && recent && live(d, req.now, req.ttl) {
            return Ok(Admission {
                sessions: current.clone(),
                write: false,
                session_id: d.session_id.clone(),
                expires_at,
                preview,
                evicted: Vec::new(),
                preview_started: false,
            });
        }
    }
    next.devices.retain(|_, d| live(d, req.now, req.ttl));
    let mut evicted = Vec::new();
    let session_id = match next.devices.get_mut(req.device_id) {
        Some(d) => {
            d.last_seen = req.now;
            d.stream = Some(req.stream_id.to_owned());
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
                    stream: Some(req.stream_id.to_owned()),
                },
            );
            req.new_session_id.to_owned()
        }
    };
    Ok(Admission {
        sessions: next,
        write: true,
        session_id,
        expires_at,
        preview,
        evicted,
        preview_started,
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
            counted: &[],
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
        // a renews past the renewal window: same session id, now the most recent.
        let a = run(&s, &req("a", "ignored", 200, DevicePolicy::Evict)).unwrap();
        assert_eq!(a.session_id, "sa");
        assert!(a.write);
        s = a.sessions;
        let c = run(&s, &req("c", "sc", 210, DevicePolicy::Evict)).unwrap();
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
        // A renewal without a write at 149 issued a token that lives until 449: the session
        // holds its slot until then.
        assert_eq!(
            run(&s, &req("c", "sc", 449, DevicePolicy::Deny)),
            Err(Refusal::DeviceLimit)
        );
        // Idle sessions (no valid token left) free their slot.
        assert!(run(&s, &req("c", "sc", 450, DevicePolicy::Deny)).is_ok());
    }

    #[test]
    fn a_renewal_soon_after_the_last_write_writes_nothing() {
        let s = run(&Sessions::default(), &req("a", "sa", 0, DevicePolicy::Deny))
            .unwrap()
            .sessions;
        for now in [1, 100, 149] {
            let r = run(&s, &req("a", "other", now, DevicePolicy::Deny)).unwrap();
            assert!(!r.write, "at {now}");
            assert_eq!(r.sessions, s, "nothing changes");
            assert_eq!((r.session_id.as_str(), r.expires_at), ("sa", now + 300));
            // The token issued never outlives the stored session.
            assert!(live(&s.devices["a"], r.expires_at - 1, 300));
        }
        let r = run(&s, &req("a", "other", 150, DevicePolicy::Deny)).unwrap();
        assert!(r.write, "past half a token's life the renewal is written");
        assert_eq!(r.sessions.devices["a"].last_seen, 150);
        // A new device, or a preview that starts, is always written.
        let b = run(&s, &req("b", "sb", 1, DevicePolicy::Deny)).unwrap();
        assert!(b.write);
        let mut p = req("a", "sa", 2, DevicePolicy::Deny);
        p.access = Access::PreviewOffered(60);
        let started = run(&s, &p).unwrap();
        assert!(started.write && started.preview);
        p.now = 3;
        let again = run(&started.sessions, &p).unwrap();
        assert!(!again.write, "the preview already started");
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

    #[test]
    fn counted_access_takes_a_view_per_new_session_never_per_renewal() {
        let limits = vec![("old".to_owned(), 1), ("new".to_owned(), 2)];
        let counted = |device: &'static str, stream: &'static str, now: i64| Request {
            stream_id: stream,
            device_id: device,
            new_session_id: device,
            access: Access::Counted,
            now,
            ttl: 300,
            max_devices: 5,
            policy: DevicePolicy::Evict,
            counted: &limits,
        };
        let mut s = Sessions::default();
        s = admit(&s, &counted("a", "replay", 0)).unwrap().sessions;
        assert_eq!(
            s.views.get("old"),
            Some(&1),
            "the oldest grant's view first"
        );
        // Renewing the same session, recently or not, takes nothing.
        let renewal = admit(&s, &counted("a", "replay", 10)).unwrap();
        assert!(!renewal.write);
        s = admit(&s, &counted("a", "replay", 200)).unwrap().sessions;
        assert_eq!(s.views.values().sum::<u32>(), 1);
        // Another device, or the same device on another stream, is a new view.
        s = admit(&s, &counted("b", "replay", 210)).unwrap().sessions;
        s = admit(&s, &counted("a", "other", 220)).unwrap().sessions;
        assert_eq!((s.views["old"], s.views["new"]), (1, 2));
        assert_eq!(
            admit(&s, &counted("c", "replay", 230)).unwrap_err(),
            Refusal::ViewsUsed
        );
        // A device already playing the stream still renews once every view is used.
        assert!(admit(&s, &counted("b", "replay", 240)).is_ok());
    }
}
