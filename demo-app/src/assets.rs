//! The pages' scripts and styles: compiled into the binary, served by one endpoint at
//! `/assets/*path`.
//!
//! The scripts are ES modules (`<script type="module">`), one concern per file, and import each
//! other by these paths. `sse.js` is the pattern a page copies: connect at the id the page was
//! rendered at, reconnect, and on `sse-reset` refetch the state and reconnect at its id.
//!
//! poem's own file endpoints do not fit here: `StaticFilesEndpoint` reads a directory at run
//! time, which a binary started elsewhere (the tests start it in a directory of its own) does
//! not have, and `EmbeddedFilesEndpoint` takes `rust-embed` and its derive macro, a dependency
//! tree for a dozen small files that `include_str!` already embeds.

use poem::{
    handler,
    http::{header, StatusCode},
    web::Path,
    Response,
};

/// One file under `/assets/`.
struct Asset {
    path: &'static str,
    content_type: &'static str,
    body: &'static str,
}

const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

macro_rules! asset {
    ($path:literal, $content_type:expr) => {
        Asset {
            path: $path,
            content_type: $content_type,
            body: include_str!(concat!("../assets/", $path)),
        }
    };
}

/// Every asset. The chart library is uPlot (MIT; version and source in
/// `assets/vendor/README.md`), a classic script that defines `uPlot`.
const ASSETS: &[Asset] = &[
    asset!("style.css", CSS),
    asset!("client.js", JS),
    asset!("sse.js", JS),
    asset!("format.js", JS),
    asset!("widgets.js", JS),
    asset!("charts.js", JS),
    asset!("dashboard.js", JS),
    asset!("tabs.js", JS),
    asset!("forms.js", JS),
    asset!("me.js", JS),
    asset!("run.js", JS),
    asset!("vendor/uPlot.iife.min.js", JS),
    asset!("vendor/uPlot.min.css", CSS),
];

/// `GET /assets/{path}`: the asset, `no-cache` (revalidated, so a new build shows at once);
/// `404` for any other path.
#[handler]
pub fn serve(Path(path): Path<String>) -> Response {
    match ASSETS.iter().find(|asset| asset.path == path) {
        Some(asset) => Response::builder()
            .content_type(asset.content_type)
            .header(header::CACHE_CONTROL, "no-cache")
            .body(asset.body),
        None => Response::builder()
            .status(StatusCode::NOT_FOUND)
            .content_type("text/plain; charset=utf-8")
            .body(format!("no asset `{path}`")),
    }
}

#[cfg(test)]
mod tests {
    use poem::{test::TestClient, Route};

    use super::*;

    #[tokio::test]
    async fn every_asset_is_served_with_its_type_and_others_are_404() {
        let client = TestClient::new(Route::new().at("/assets/*path", poem::get(serve)));
        for asset in ASSETS {
            let response = client.get(format!("/assets/{}", asset.path)).send().await;
            response.assert_status_is_ok();
            response.assert_content_type(asset.content_type);
        }
        for missing in [
            "/assets/nope.js",
            "/assets/../Cargo.toml",
            "/assets/vendor/",
        ] {
            let response = client.get(missing).send().await;
            response.assert_status(StatusCode::NOT_FOUND);
        }
    }

    /// Every module a script imports is served (a typo would fail the whole page at load).
    #[test]
    fn every_import_names_an_asset() {
        for asset in ASSETS.iter().filter(|a| a.content_type == JS) {
            for line in asset.body.lines().filter(|l| l.starts_with("import ")) {
                let Some(from) = line.split('"').nth(1) else {
                    panic!("{}: an import without a path: {line}", asset.path);
                };
                let target = from.trim_start_matches("./");
                assert!(
                    ASSETS.iter().any(|a| a.path == target),
                    "{} imports {from}, which is not served",
                    asset.path
                );
            }
        }
    }
}
