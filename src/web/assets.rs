//! The console's one stylesheet and one script, embedded in the binary and served under a
//! name that holds a digest of their content (`/static/<digest>/console.css`), so browsers
//! may cache them for a year and a new build is fetched at once.

use std::sync::LazyLock;

use axum::extract::Path;
use axum::http::header;
use axum::response::{IntoResponse, Response};

use super::error::WebError;

const CSS: &str = include_str!("assets/console.css");
const JS: &str = include_str!("assets/console.js");

static TAG: LazyLock<String> =
    LazyLock::new(|| crate::secret::digest_hex(&format!("{CSS}\0{JS}"))[..12].to_owned());

pub fn css_url() -> String {
    format!("/static/{}/console.css", *TAG)
}

pub fn js_url() -> String {
    format!("/static/{}/console.js", *TAG)
}

/// `GET /static/{tag}/{name}`: only the current build's files.
pub async fn serve(Path((tag, name)): Path<(String, String)>) -> Result<Response, WebError> {
    if tag != *TAG {
        return Err(WebError::NotFound);
    }
    let (body, kind) = match name.as_str() {
        "console.css" => (CSS, "text/css; charset=utf-8"),
        "console.js" => (JS, "text/javascript; charset=utf-8"),
        _ => return Err(WebError::NotFound),
    };
    Ok((
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, "public, max-age=31536000, immutable"),
        ],
        body,
    )
        .into_response())
}
