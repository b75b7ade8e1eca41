//! The operators' dashboard, `GET /admin/`: one self-contained page (HTML, CSS and JS, and
//! the uPlot chart library vendored from npm by `scripts/vendor-uplot`, MIT licensed, see
//! `vendor/uplot/LICENSE`) put together at compile time, so it works offline and loads
//! nothing at run time. A crate of its own so that only the processes that serve
//! `/admin/stats` (the create-order function and the local server) carry it: they call
//! [`install`] at start-up, and the router answers `GET /admin/` with it.

/// The whole page.
pub const PAGE: &str = concat!(
    include_str!("../page/head.html"),
    include_str!("../page/app.css"),
    include_str!("../vendor/uplot/uPlot.min.css"),
    include_str!("../page/body.html"),
    include_str!("../vendor/uplot/uPlot.iife.min.js"),
    "\n</script>\n<script>\n",
    include_str!("../page/app.js"),
    include_str!("../page/tail.html"),
);

/// Makes this process answer `GET /admin/` with [`PAGE`].
pub fn install() {
    tollgate::api::dashboard::install(PAGE);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_is_whole_and_loads_nothing_from_elsewhere() {
        assert!(PAGE.starts_with("<!doctype html>"));
        assert!(PAGE.trim_end().ends_with("</html>"));
        assert_eq!(PAGE.matches("<script>").count(), 2);
        assert_eq!(PAGE.matches("</script>").count(), 2);
        assert!(PAGE.contains("uPlot"));
        for outside in [
            "src=\"http",
            "href=\"http",
            "src=\"//",
            "href=\"//",
            "@import",
            "<link",
        ] {
            assert!(
                !PAGE.contains(outside),
                "the page refers elsewhere: {outside}"
            );
        }
    }
}
