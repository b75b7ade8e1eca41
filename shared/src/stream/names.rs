//! Which stream a media server's play request names, so that a token for one stream cannot
//! open another.
//!
//! The stream's catalog origin is the one source. Its path, percent-decoded once, gives the
//! stream's *base* `B` and *name* (the last segment of `B`):
//!
//! | origin path | layout | `B` | name |
//! |---|---|---|---|
//! | `/live/main.m3u8` (a [stream suffix](STREAM_SUFFIXES)) | flat | `/live/main` | `main` |
//! | `/live/main/index.m3u8` or `/live/main/` | nested (nginx-rtmp `hls_nested`, MediaMTX) | `/live/main` | `main` |
//! | `/live/main` (no suffix) | flat | `/live/main` | `main` |
//!
//! An origin whose path has no such base (`/`, `/index.m3u8`, a dot segment) names nothing.
//! A request names the stream only when it is
//!
//! * a **stream name** (SRS `on_play` `stream`, nginx-rtmp `on_play` `name`): exactly the name;
//! * a **MediaMTX path**: exactly `B` without its leading `/` (`live/main`);
//! * an **HTTP request path** (nginx `auth_request`'s `X-Original-URI`): percent-decoded once,
//!   with no `.` or `..` segment (plain or encoded), no empty segment (`//`) except a trailing
//!   `/`, no control character and no `\`, and then equal to one of
//!   1. the origin path itself;
//!   2. `B.<ext>` with `<ext>` a [stream suffix](STREAM_SUFFIXES): the stream in any protocol;
//!   3. `B/index.m3u8`: the nested layout's playlist;
//!   4. `B-<n>.<frag>` (flat fragments: nginx-rtmp, SRS `[stream]-[seq].ts`) or
//!      `B/<n>.<frag>` (nested fragments), where `<n>` is 1 to 20 ASCII digits and `<frag>` a
//!      [fragment suffix](FRAGMENT_SUFFIXES).
//!
//! Rule 4 names a [`Naming::Fragment`]; the others the stream itself. A fragment of one stream
//! can be another stream itself (`/live/concert-1201.ts` is fragment 1201 of `concert` and the
//! HTTP-TS stream `concert-1201`): then the other stream wins ([`names_stream`]).
//!
//! Nothing is accepted by the catalog id, by a path segment equal to the name, or by a file name
//! that merely starts with it. Dot segments are refused rather than resolved because nginx
//! resolves them before serving: `/live/main/../concert-1201.m3u8` serves the concert. Refusing
//! every path that nginx would rewrite makes the path checked here the path nginx serves.

use super::url::url_path;

/// Suffixes under which a stream itself is served: HLS, HTTP-FLV, DASH, WebRTC (WHEP SDP),
/// HTTP-TS and HTTP-MP4.
pub const STREAM_SUFFIXES: &[&str] = &["m3u8", "flv", "mpd", "sdp", "ts", "mp4"];

/// Suffixes of HLS and DASH fragments.
pub const FRAGMENT_SUFFIXES: &[&str] = &["ts", "m4s", "mp4", "aac"];

/// Longest fragment sequence number, in digits (a 64-bit counter or a millisecond time).
const MAX_FRAGMENT_DIGITS: usize = 20;

/// What a media server says it is about to serve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Asked {
    /// A stream name: SRS `on_play` `stream`, nginx-rtmp `on_play` `name`.
    Name(String),
    /// A MediaMTX path (`live/main`).
    Path(String),
    /// The path of an HTTP request as sent, percent-encoded (nginx's `$request_uri` without
    /// its query).
    RequestPath(String),
}

/// How a request names a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Naming {
    /// The stream itself: its name, path, origin or playlist.
    Stream,
    /// One fragment of the stream.
    Fragment,
}

/// Whether `asked` names the stream whose catalog origin is `origin` and is not, instead, the
/// stream itself of one of the `others` (the origins of the catalog's other streams).
pub fn names_stream<'o>(
    asked: &Asked,
    origin: &str,
    others: impl IntoIterator<Item = &'o str>,
) -> bool {
    match naming(asked, origin) {
        None => false,
        Some(Naming::Stream) => true,
        Some(Naming::Fragment) => !others
            .into_iter()
            .any(|other| naming(asked, other) == Some(Naming::Stream)),
    }
}

/// How `asked` names the stream whose catalog origin is `origin`; `None` when it does not.
pub fn naming(asked: &Asked, origin: &str) -> Option<Naming> {
    let layout = Layout::of(origin)?;
    match asked {
        Asked::Name(name) => (name.as_str() == layout.name()).then_some(Naming::Stream),
        Asked::Path(path) => {
            (Some(path.as_str()) == layout.base.strip_prefix('/')).then_some(Naming::Stream)
        }
        Asked::RequestPath(raw) => layout.naming_of(&clean_path(raw)?),
    }
}

/// Where a stream's files live, from its origin.
struct Layout {
    /// The origin's path, decoded.
    origin_path: String,
    /// `B`: starts with `/`, at least one segment, no trailing `/`.
    base: String,
}

impl Layout {
    fn of(origin: &str) -> Option<Self> {
        let path = clean_path(url_path(origin))?;
        let base = match path.strip_suffix('/') {
            Some(dir) => dir.to_owned(),
            None => {
                let (dir, file) = path.rsplit_once('/')?;
                match strip_any_suffix(file, STREAM_SUFFIXES) {
                    Some("index") => dir.to_owned(),
                    Some(stem) => format!("{dir}/{stem}"),
                    None => path.clone(),
                }
            }
        };
        let name = base.rsplit('/').next()?;
        if name.is_empty() {
            return None;
        }
        Some(Layout {
            origin_path: path,
            base,
        })
    }

    fn name(&self) -> &str {
        self.base.rsplit('/').next().unwrap_or(&self.base)
    }

    /// The rules of the module docs, for a path already through [`clean_path`].
    fn naming_of(&self, path: &str) -> Option<Naming> {
        if path == self.origin_path {
            return Some(Naming::Stream);
        }
        let rest = path.strip_prefix(self.base.as_str())?;
        if let Some(ext) = rest.strip_prefix('.') {
            return STREAM_SUFFIXES.contains(&ext).then_some(Naming::Stream);
        }
        if let Some(fragment) = rest.strip_prefix('-') {
            return is_fragment_file(fragment).then_some(Naming::Fragment);
        }
        let file = rest.strip_prefix('/')?;
        if file == "index.m3u8" {
            return Some(Naming::Stream);
        }
        is_fragment_file(file).then_some(Naming::Fragment)
    }
}

/// `<n>.<frag>`: 1 to 20 digits and a fragment suffix.
fn is_fragment_file(file: &str) -> bool {
    let Some((seq, ext)) = file.split_once('.') else {
        return false;
    };
    (1..=MAX_FRAGMENT_DIGITS).contains(&seq.len())
        && seq.bytes().all(|b| b.is_ascii_digit())
        && FRAGMENT_SUFFIXES.contains(&ext)
}

/// `file` without one of `suffixes` (and its dot); `None` when it has none of them.
fn strip_any_suffix<'a>(file: &'a str, suffixes: &[&str]) -> Option<&'a str> {
    let (stem, ext) = file.rsplit_once('.')?;
    suffixes.contains(&ext).then_some(stem)
}

/// A raw request path, percent-decoded once and checked; `None` when nginx would serve it under
/// another path, or when it is not a plain path at all: no leading `/`, a bad or non-UTF-8
/// escape, a `.` or `..` segment, an empty segment but the last, a control character or `\`.
/// A query or fragment (`?`, `#` as sent) is cut off first.
fn clean_path(raw: &str) -> Option<String> {
    let raw = raw.split(['?', '#']).next().unwrap_or("");
    if !raw.starts_with('/') {
        return None;
    }
    let path = percent_decode(raw)?;
    let segments: Vec<&str> = path[1..].split('/').collect();
    let last = segments.len() - 1;
    let plain = segments.iter().enumerate().all(|(i, s)| {
        (i == last || !s.is_empty())
            && *s != "."
            && *s != ".."
            && !s.chars().any(|c| c.is_control() || c == '\\')
    });
    plain.then_some(path)
}

/// `%XX` escapes decoded once (`+` stays `+`, as in a path); `None` for a `%` not followed by
/// two hex digits or a result that is not UTF-8.
pub(crate) fn percent_decode(raw: &str) -> Option<String> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            let hex = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAIN: &str = "https://live.example.com/live/main.m3u8";
    const CONCERT: &str = "https://live.example.com/live/concert-1201.m3u8";

    fn uri(p: &str) -> Asked {
        Asked::RequestPath(p.to_owned())
    }

    /// Every way a token for `main` opened another stream before matching was exact.
    #[test]
    fn a_token_for_one_stream_opens_no_other() {
        let bypasses = [
            uri("/live/main/../concert-1201.m3u8"),
            uri("/live/main/%2e%2e/concert-1201.m3u8"),
            uri("/live/main/%2E%2E/concert-1201.m3u8"),
            uri("/live/main/%2e./concert-1201.m3u8"),
            uri("/live/main/./../concert-1201.m3u8"),
            uri("/live/main%2F..%2Fconcert-1201.m3u8"),
            uri("/live/main.m3u8/../../live/concert-1201.m3u8"),
            uri("/live/main/..%5Cconcert-1201.m3u8"),
            uri("/live/concert-1201.m3u8/main"),
            uri("/live/main-anything.m3u8"),
            uri("/live/main-1201.m3u8"),
            uri("/live/main-.ts"),
            uri("/live/concert-1201/main-1.ts"),
            uri("/live/concert-1201/main.m3u8"),
            uri("/other/main.m3u8"),
            uri("/main.m3u8"),
            uri("/live//main.m3u8"),
            uri("/live/main.m3u8/"),
            uri("/live/main.m3u8%00"),
            uri("/live/main.m3u8%0d%0aX: 1"),
            uri("/live/mainly.m3u8"),
            uri("/live/main/sub/1.ts"),
            uri("live/main.m3u8"),
            uri("/live/main.m3u8%zz"),
            uri("/live/main%ff.m3u8"),
            uri(""),
            Asked::Name("main/../concert-1201".into()),
            Asked::Name("concert-1201".into()),
            Asked::Name("main ".into()),
            Asked::Name("live/main".into()),
            Asked::Name(String::new()),
            Asked::Path("live/main/../concert-1201".into()),
            Asked::Path("live/concert-1201".into()),
            Asked::Path("main".into()),
            Asked::Path("/live/main".into()),
        ];
        let opened: Vec<&Asked> = bypasses
            .iter()
            .filter(|a| names_stream(a, MAIN, [CONCERT]))
            .collect();
        assert!(opened.is_empty(), "a `main` token opens {opened:#?}");
    }

    #[test]
    fn the_stream_its_playlists_and_fragments_are_named() {
        for ok in [
            Asked::Name("main".into()),
            Asked::Path("live/main".into()),
            uri("/live/main.m3u8"),
            uri("/live/%6Dain.m3u8"),
            uri("/live/main.flv"),
            uri("/live/main.m3u8?token=x#f"),
            uri("/live/main-17.ts"),
            uri("/live/main-1700000000123.m4s"),
            uri("/live/main/index.m3u8"),
            uri("/live/main/3.ts"),
        ] {
            assert!(names_stream(&ok, MAIN, [CONCERT]), "{ok:?}");
        }
        assert_eq!(
            naming(&uri("/live/main-17.ts"), MAIN),
            Some(Naming::Fragment)
        );
        assert_eq!(
            naming(&uri("/live/main/3.ts"), MAIN),
            Some(Naming::Fragment)
        );
        assert_eq!(naming(&uri("/live/main.m3u8"), MAIN), Some(Naming::Stream));
    }

    /// The old test cases: the id alone (`c1`) no longer names the stream.
    #[test]
    fn stream_names_and_paths() {
        let origin = "https://live.example.com/live/concert.m3u8";
        for ok in [
            Asked::Name("concert".into()),
            Asked::Path("live/concert".into()),
            uri("/live/concert.m3u8"),
            uri("/live/concert-17.ts"),
            uri("/live/concert/3.ts"),
        ] {
            assert!(names_stream(&ok, origin, []), "{ok:?}");
        }
        for bad in [
            Asked::Name("other".into()),
            Asked::Name("c1".into()),
            Asked::Path("live/concerts".into()),
            uri("/live/other.m3u8"),
            uri("/hls/c1.m3u8"),
            Asked::Name(String::new()),
            uri("/live/concert2.ts"),
        ] {
            assert!(!names_stream(&bad, origin, []), "{bad:?}");
        }
    }

    #[test]
    fn nested_and_bare_origins() {
        for origin in [
            "http://mtx.example:8888/live/main/index.m3u8",
            "http://mtx.example:8889/live/main/",
            "http://mtx.example/live/main",
        ] {
            for ok in [
                Asked::Name("main".into()),
                Asked::Path("live/main".into()),
                uri("/live/main/index.m3u8"),
                uri("/live/main/42.ts"),
                uri("/live/main.m3u8"),
            ] {
                assert!(names_stream(&ok, origin, []), "{origin} {ok:?}");
            }
            for bad in [
                Asked::Name("index".into()),
                Asked::Path("live".into()),
                uri("/live/index.m3u8"),
                uri("/live/main/other.m3u8"),
                uri("/live/main/../other/index.m3u8"),
            ] {
                assert!(!names_stream(&bad, origin, []), "{origin} {bad:?}");
            }
        }
        assert!(names_stream(
            &uri("/live/main/"),
            "http://mtx.example/live/main/",
            []
        ));
        // No base: nothing is named by such an origin.
        for origin in [
            "https://live.example.com",
            "https://live.example.com/",
            "https://live.example.com/index.m3u8",
            "https://live.example.com/live/.m3u8",
            "https://live.example.com/live/../main.m3u8",
        ] {
            for asked in [
                Asked::Name("main".into()),
                Asked::Name("index".into()),
                Asked::Name(String::new()),
                Asked::Path(String::new()),
                uri("/"),
                uri("/index.m3u8"),
                uri("/main.m3u8"),
            ] {
                assert_eq!(naming(&asked, origin), None, "{origin} {asked:?}");
            }
        }
    }

    /// `/live/concert-1201.ts` is fragment 1201 of `concert` and the HTTP-TS stream
    /// `concert-1201`: the stream itself wins over the fragment.
    #[test]
    fn a_fragment_yields_to_another_streams_own_file() {
        let concert = "https://live.example.com/live/concert.m3u8";
        let catalog = [concert, CONCERT];
        let others = |me: &'static str| catalog.into_iter().filter(move |o| *o != me);
        let asked = uri("/live/concert-1201.ts");
        assert_eq!(naming(&asked, concert), Some(Naming::Fragment));
        assert!(!names_stream(&asked, concert, others(concert)));
        assert!(names_stream(&asked, CONCERT, others(CONCERT)));
        let fragment = uri("/live/concert-17.ts");
        assert!(names_stream(&fragment, concert, others(concert)));
        assert!(!names_stream(&fragment, CONCERT, others(CONCERT)));
        let theirs = uri("/live/concert-1201-3.ts");
        assert!(!names_stream(&theirs, concert, others(concert)));
        assert!(names_stream(&theirs, CONCERT, others(CONCERT)));
    }

    #[test]
    fn percent_decoding_is_done_once() {
        assert_eq!(percent_decode("/a%20b+c").as_deref(), Some("/a b+c"));
        assert_eq!(percent_decode("/%252e").as_deref(), Some("/%2e"));
        assert_eq!(percent_decode("/%C3%A9").as_deref(), Some("/é"));
        for bad in ["/%", "/%2", "/%zz", "/%ff", "/%C3"] {
            assert_eq!(percent_decode(bad), None, "{bad}");
        }
        // Decoded once, `%252e%252e` is a literal `%2e%2e` segment, not a dot segment.
        assert_eq!(
            clean_path("/live/%252e%252e/x").as_deref(),
            Some("/live/%2e%2e/x")
        );
        assert_eq!(clean_path("/live/x/"), Some("/live/x/".into()));
        assert_eq!(clean_path("/"), Some("/".into()));
    }
}
