//! Files (`/files/…`): the signed-in user's files through `files::Files` with their scope,
//! as a fourth front-end (`Protocol::Web`): browse with breadcrumbs, download (streamed,
//! `Content-Disposition: attachment`), upload several files (multipart, streamed chunk by
//! chunk into `Files`), create folders, rename, delete (with a confirmation step). `Files`
//! checks every operation and writes its one audit record; refusals show as plain messages.
//!
//! Names from the URL or a form are one path segment each: `/`, `.`, `..`, NUL and control
//! characters are refused before anything is touched.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Multipart, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use serde::Deserialize;
use tokio::io::AsyncWriteExt;

use super::WebState;
use super::error::WebError;
use super::page::{self, Menu};
use super::session::{Posted, Signed, csrf_ok, same_origin};
use crate::files::{FsError, WriteMode};
use crate::path::SitePath;

/// Bytes read from storage per chunk of a download.
const CHUNK: usize = 256 * 1024;

/// The site path a `/files/…` URL names (already percent-decoded by the router).
fn url_path(raw: &str) -> Result<SitePath, WebError> {
    if raw.split('/').any(|s| s == ".." || s == ".") {
        return Err(WebError::BadRequest(
            "paths may not contain . or .. segments".into(),
        ));
    }
    SitePath::parse(&format!("/{raw}"))
        .map_err(|e| WebError::BadRequest(format!("invalid path: {e}")))
}

/// A folder named in a form (`dir`): an absolute site path.
fn form_dir(raw: Option<&str>) -> Result<SitePath, WebError> {
    let raw = raw.unwrap_or("/");
    url_path(raw.trim_start_matches('/'))
}

/// One name inside a folder: no slashes, no `.`/`..`, no control characters.
fn one_name(name: &str) -> Result<&str, WebError> {
    let bad = name.is_empty()
        || name == "."
        || name == ".."
        || name.contains('/')
        || name.chars().any(char::is_control);
    if bad {
        return Err(WebError::BadRequest(
            "a name may not be empty, . or .., nor contain / or control characters".into(),
        ));
    }
    Ok(name)
}

fn join(dir: &SitePath, name: &str) -> Result<SitePath, WebError> {
    dir.join(one_name(name)?)
        .map_err(|e| WebError::BadRequest(format!("invalid name: {e}")))
}

fn breadcrumbs(path: &SitePath) -> Markup {
    let mut at = SitePath::root();
    let mut crumbs = vec![("Files".to_owned(), page::files_url(&at, true))];
    for seg in path.segments() {
        at = at.join(seg).unwrap_or_else(|_| at.clone());
        crumbs.push((seg.to_owned(), page::files_url(&at, true)));
    }
    let last = crumbs.len() - 1;
    html! {
        nav.crumbs aria-label="Breadcrumb" { ol {
            @for (i, (name, url)) in crumbs.iter().enumerate() {
                li { @if i == last { a href=(url) aria-current="page" { (name) } } @else { a href=(url) { (name) } } }
            }
        } }
    }
}

fn size(len: u64) -> String {
    const UNITS: [&str; 4] = ["KB", "MB", "GB", "TB"];
    if len < 1024 {
        return format!("{len} B");
    }
    let mut v = len as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

fn action_url(action: &str, dir: &SitePath, name: &str) -> String {
    format!(
        "/file-actions/{action}?dir={}&name={}",
        page::encode(dir.as_str()),
        page::encode(name)
    )
}

#[derive(Deserialize)]
pub struct Done {
    done: Option<String>,
}

async fn listing(
    state: &WebState,
    who: &Signed,
    dir: &SitePath,
    done: Option<&str>,
) -> Result<Response, WebError> {
    let entries = state.files.list(&who.principal, dir).await?;
    let here = page::files_url(dir, true);
    let title = dir.file_name().unwrap_or("Files").to_owned();
    Ok(page::layout(
        who,
        Menu::Files,
        &title,
        html! {
            (breadcrumbs(dir))
            (page::notice(page::done_message(done)))
            @if entries.is_empty() {
                p.muted { "This folder is empty." }
            } @else {
                div.table-wrap { table {
                    thead { tr { th { "Name" } th { "Size" } th.hide-narrow { "Modified" } th { "" } } }
                    tbody { @for e in &entries {
                        @let is_dir = e.metadata.is_dir();
                        @let url = dir.join(&e.name).map(|p| page::files_url(&p, is_dir)).unwrap_or_default();
                        tr {
                            td { @if is_dir { "📁 " } a href=(url) { (e.name) } }
                            td { @if is_dir { span.muted { "folder" } } @else { (size(e.metadata.len)) } }
                            td.hide-narrow { (page::time(e.metadata.modified.and_then(|m| m.duration_since(std::time::UNIX_EPOCH).ok()).map(|d| d.as_secs() as i64))) }
                            td {
                                a.button.secondary href=(action_url("rename", dir, &e.name)) { "Rename" } " "
                                a.button.danger href=(action_url("delete", dir, &e.name)) { "Delete" }
                            }
                        }
                    } }
                } }
            }
            form.card method="post" action=(here) enctype="multipart/form-data" data-upload {
                h2 { "Upload" }
                (page::csrf(who))
                div.drop {
                    label for="upload-files" { "Files" }
                    input #upload-files type="file" name="files" multiple required;
                    p.muted { "Choose files, or drop them here." }
                }
                button type="submit" { "Upload" }
            }
            form.card method="post" action="/file-actions/mkdir" {
                h2 { "New folder" }
                (page::csrf(who))
                input type="hidden" name="dir" value=(dir.as_str());
                label for="folder-name" { "Folder name" }
                input #folder-name type="text" name="name" required maxlength="255";
                div { button type="submit" { "Create folder" } }
            }
        },
    ))
}

/// `GET /files`
pub async fn browse_root(
    State(state): State<Arc<WebState>>,
    Query(q): Query<Done>,
    who: Signed,
) -> Result<Response, WebError> {
    listing(&state, &who, &SitePath::root(), q.done.as_deref()).await
}

/// `GET /files/{path}`: a folder's listing, or a file's download.
pub async fn browse(
    State(state): State<Arc<WebState>>,
    Path(raw): Path<String>,
    Query(q): Query<Done>,
    who: Signed,
) -> Result<Response, WebError> {
    let path = url_path(&raw)?;
    let meta = state.files.stat(&who.principal, &path).await?;
    if meta.is_dir() {
        return listing(&state, &who, &path, q.done.as_deref()).await;
    }
    download(&state, &who, &path, meta.len).await
}

/// `Content-Disposition` for `name`: an ASCII fallback plus the exact name (RFC 6266).
fn disposition(name: &str) -> HeaderValue {
    let ascii: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || " .-_()[]+,".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    let exact = page::encode(name);
    HeaderValue::from_str(&format!(
        "attachment; filename=\"{ascii}\"; filename*=UTF-8''{exact}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static("attachment"))
}

async fn download(
    state: &WebState,
    who: &Signed,
    path: &SitePath,
    len: u64,
) -> Result<Response, WebError> {
    let reader = state.files.open_read(&who.principal, path).await?;
    let stream = futures_util::stream::unfold(Some(reader), |reader| async move {
        let mut reader = reader?;
        match reader.read_chunk(CHUNK).await {
            Ok(bytes) if bytes.is_empty() => None,
            Ok(bytes) => Some((Ok(bytes), Some(reader))),
            Err(e) => Some((Err(e), None)),
        }
    });
    let name = path.file_name().unwrap_or("download");
    Ok((
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/octet-stream"),
            ),
            (header::CONTENT_DISPOSITION, disposition(name)),
            (header::CONTENT_LENGTH, HeaderValue::from(len)),
        ],
        Body::from_stream(stream),
    )
        .into_response())
}

/// `POST /files` (the root)
pub async fn upload_root(
    state: State<Arc<WebState>>,
    headers: HeaderMap,
    who: Signed,
    multipart: Multipart,
) -> Result<Response, WebError> {
    upload_into(&state, &headers, who, SitePath::root(), multipart).await
}

/// `POST /files/{path}`: a multipart form whose first field is `csrf`, then `files`.
pub async fn upload(
    state: State<Arc<WebState>>,
    Path(raw): Path<String>,
    headers: HeaderMap,
    who: Signed,
    multipart: Multipart,
) -> Result<Response, WebError> {
    let dir = url_path(&raw)?;
    upload_into(&state, &headers, who, dir, multipart).await
}

fn bad_multipart(e: axum::extract::multipart::MultipartError) -> WebError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        WebError::TooLarge
    } else {
        WebError::BadRequest(format!("bad upload form: {}", e.body_text()))
    }
}

async fn upload_into(
    state: &WebState,
    headers: &HeaderMap,
    who: Signed,
    dir: SitePath,
    mut multipart: Multipart,
) -> Result<Response, WebError> {
    if !same_origin(headers) {
        return Err(WebError::Csrf);
    }
    // The token comes first (it is the form's first field), so nothing is written before
    // it is checked.
    let first = multipart.next_field().await.map_err(bad_multipart)?;
    let token = match first {
        Some(mut field) if field.name() == Some("csrf") => {
            // Read at most a token's worth: a huge first field must not be buffered.
            let mut text = Vec::new();
            let mut too_long = false;
            while let Some(chunk) = field.chunk().await.map_err(bad_multipart)? {
                text.extend_from_slice(&chunk);
                if text.len() > 128 {
                    too_long = true;
                    break;
                }
            }
            if too_long {
                None
            } else {
                String::from_utf8(text).ok()
            }
        }
        _ => None,
    };
    if !csrf_ok(&who, token.as_deref()) {
        return Err(WebError::Csrf);
    }
    let mut total: u64 = 0;
    let mut stored = 0usize;
    while let Some(mut field) = multipart.next_field().await.map_err(bad_multipart)? {
        if field.name() != Some("files") {
            return Err(WebError::BadRequest(
                "unexpected field in the upload form".into(),
            ));
        }
        let Some(name) = field.file_name().map(str::to_owned) else {
            return Err(WebError::BadRequest("a file without a name".into()));
        };
        if name.is_empty() {
            // An empty file input still sends one nameless part.
            continue;
        }
        // Browsers send base names, with `"`, CR and LF escaped as `%22`, `%0D`, `%0A`
        // (WHATWG multipart encoding); strip any folder part an odd client adds.
        let name = name
            .replace("%22", "\"")
            .replace("%0D", "\r")
            .replace("%0A", "\n");
        let base = name.rsplit(['/', '\\']).next().unwrap_or("");
        let target = join(&dir, base)?;
        let mut upload = state
            .files
            .create(&who.principal, &target, WriteMode::Replace)
            .await?;
        while let Some(chunk) = field.chunk().await.map_err(bad_multipart)? {
            total += chunk.len() as u64;
            if state.max_upload > 0 && total > state.max_upload {
                // Dropping the upload deletes its temporary file.
                return Err(WebError::TooLarge);
            }
            upload
                .write_all(&chunk)
                .await
                .map_err(|e| WebError::from(FsError::Failed(e.to_string())))?;
        }
        upload.commit().await?;
        stored += 1;
    }
    if stored == 0 {
        return Err(WebError::BadRequest("choose at least one file".into()));
    }
    Ok(page::see_other(&format!(
        "{}?done=uploaded",
        page::files_url(&dir, true)
    )))
}

/// `POST /file-actions/mkdir`
pub async fn make_dir(
    State(state): State<Arc<WebState>>,
    posted: Posted,
) -> Result<Response, WebError> {
    let dir = form_dir(posted.form.raw("dir"))?;
    let name = posted.form.required("name", "Folder name")?;
    let path = join(&dir, &name)?;
    state.files.make_dir(&posted.who.principal, &path).await?;
    Ok(page::see_other(&format!(
        "{}?done=created",
        page::files_url(&dir, true)
    )))
}

#[derive(Deserialize)]
pub struct Target {
    dir: Option<String>,
    name: Option<String>,
}

fn target_of(q: &Target) -> Result<(SitePath, String), WebError> {
    let dir = form_dir(q.dir.as_deref())?;
    let name = one_name(q.name.as_deref().unwrap_or(""))?.to_owned();
    Ok((dir, name))
}

/// `GET /file-actions/rename?dir=&name=`: the rename form.
pub async fn rename_form(
    State(state): State<Arc<WebState>>,
    Query(q): Query<Target>,
    who: Signed,
) -> Result<Response, WebError> {
    let (dir, name) = target_of(&q)?;
    state
        .files
        .stat(&who.principal, &join(&dir, &name)?)
        .await?;
    Ok(page::layout(
        &who,
        Menu::Files,
        "Rename",
        html! {
            (breadcrumbs(&dir))
            form.card method="post" action="/file-actions/rename" {
                (page::csrf(&who))
                input type="hidden" name="dir" value=(dir.as_str());
                input type="hidden" name="name" value=(name);
                p { "Rename " strong { (name) } ":" }
                label for="new-name" { "New name" }
                input #new-name type="text" name="new_name" value=(name) required maxlength="255";
                div {
                    button type="submit" { "Rename" } " "
                    a.button.secondary href=(page::files_url(&dir, true)) { "Cancel" }
                }
            }
        },
    ))
}

/// `POST /file-actions/rename`: never over an existing name.
pub async fn rename(
    State(state): State<Arc<WebState>>,
    posted: Posted,
) -> Result<Response, WebError> {
    let dir = form_dir(posted.form.raw("dir"))?;
    let from = join(&dir, posted.form.raw("name").unwrap_or(""))?;
    let to = join(&dir, posted.form.raw("new_name").unwrap_or("").trim())?;
    state
        .files
        .rename(&posted.who.principal, &from, &to, false)
        .await?;
    Ok(page::see_other(&format!(
        "{}?done=renamed",
        page::files_url(&dir, true)
    )))
}

/// `GET /file-actions/delete?dir=&name=`: the confirmation step.
pub async fn delete_form(
    State(state): State<Arc<WebState>>,
    Query(q): Query<Target>,
    who: Signed,
) -> Result<Response, WebError> {
    let (dir, name) = target_of(&q)?;
    let meta = state
        .files
        .stat(&who.principal, &join(&dir, &name)?)
        .await?;
    let what = if meta.is_dir() { "folder" } else { "file" };
    Ok(page::layout(
        &who,
        Menu::Files,
        &format!("Delete {what}"),
        html! {
            (breadcrumbs(&dir))
            form.card method="post" action="/file-actions/delete" {
                (page::csrf(&who))
                input type="hidden" name="dir" value=(dir.as_str());
                input type="hidden" name="name" value=(name);
                p { "Delete the " (what) " " strong { (name) } "? This cannot be undone." @if meta.is_dir() { " Only empty folders can be deleted." } }
                button.danger type="submit" { "Delete" } " "
                a.button.secondary href=(page::files_url(&dir, true)) { "Cancel" }
            }
        },
    ))
}

/// `POST /file-actions/delete`
pub async fn delete(
    State(state): State<Arc<WebState>>,
    posted: Posted,
) -> Result<Response, WebError> {
    let dir = form_dir(posted.form.raw("dir"))?;
    let path = join(&dir, posted.form.raw("name").unwrap_or(""))?;
    let who = &posted.who.principal;
    let meta = state.files.stat(who, &path).await?;
    if meta.is_dir() {
        state.files.remove_dir(who, &path).await?;
    } else {
        state.files.remove_file(who, &path).await?;
    }
    Ok(page::see_other(&format!(
        "{}?done=deleted",
        page::files_url(&dir, true)
    )))
}
