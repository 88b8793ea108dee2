//! The layout every page shares and small rendering helpers. maud escapes every
//! interpolation; nothing here writes raw HTML from data. No inline script or style (the
//! CSP forbids both): behaviour lives in the static script, looks in the stylesheet.

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{DOCTYPE, Markup, html};

use super::assets;
use super::session::Signed;

/// Which menu entry a page belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Menu {
    Files,
    Account,
    Keys,
    Users,
    History,
}

fn head(title: &str) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            title { (title) " · filegate" }
            link rel="stylesheet" href=(assets::css_url());
            script src=(assets::js_url()) defer {}
        }
    }
}

/// A signed-in page: menu, sign-out button, then `content`.
pub fn layout(who: &Signed, menu: Menu, title: &str, content: Markup) -> Response {
    let item = |href: &str, label: &str, this: Menu| {
        html! {
            @if menu == this {
                a href=(href) aria-current="page" { (label) }
            } @else {
                a href=(href) { (label) }
            }
        }
    };
    let markup = html! {
        (DOCTYPE)
        html lang="en" {
            (head(title))
            body {
                header.top {
                    a.brand href="/files" { "filegate" }
                    nav aria-label="Main" {
                        (item("/files", "Files", Menu::Files))
                        (item("/history", "History", Menu::History))
                        (item("/account", "My account", Menu::Account))
                        @if who.is_admin() {
                            (item("/keys", "API keys", Menu::Keys))
                            (item("/users", "Users", Menu::Users))
                        }
                    }
                    form.signout method="post" action="/sign-out" {
                        (csrf(who))
                        span.who { (who.username()) }
                        button type="submit" { "Sign out" }
                    }
                }
                main {
                    h1 { (title) }
                    (content)
                }
            }
        }
    };
    html_response(StatusCode::OK, markup)
}

/// A page outside a session (sign-in, errors).
pub fn bare_page(title: &str, content: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(title))
            body.bare {
                main {
                    p.brand-big { "filegate" }
                    (content)
                }
            }
        }
    }
}

/// An error page: a title and one plain message.
pub fn bare(title: &str, message: &str) -> Response {
    let markup = bare_page(
        title,
        html! {
            h1 { (title) }
            p.error role="alert" { (message) }
            p { a href="/" { "Back to the console" } }
        },
    );
    html_response(StatusCode::OK, markup)
}

pub fn html_response(status: StatusCode, markup: Markup) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        markup.into_string(),
    )
        .into_response()
}

/// The hidden CSRF field every state-changing form carries.
pub fn csrf(who: &Signed) -> Markup {
    html! { input type="hidden" name="csrf" value=(who.csrf); }
}

/// Redirect after a POST (303: the browser GETs the target).
pub fn see_other(to: &str) -> Response {
    Redirect::to(to).into_response()
}

/// A confirmation or refusal line at the top of a page.
pub fn notice(note: Option<&str>) -> Markup {
    html! {
        @if let Some(n) = note {
            p.notice role="status" { (n) }
        }
    }
}

/// Fixed confirmation messages a redirect may ask a page to show (`?done=<code>`): the URL
/// never carries free text.
pub fn done_message(code: Option<&str>) -> Option<&'static str> {
    Some(match code? {
        "key-deleted" => "The key was deleted.",
        "ssh-added" => "The SSH key was added.",
        "ssh-deleted" => "The SSH key was deleted.",
        "password" => "The password was changed.",
        "saved" => "Saved.",
        "granted" => "The folder was granted.",
        "revoked" => "The grant was removed.",
        "uploaded" => "Uploaded.",
        "created" => "The folder was created.",
        "renamed" => "Renamed.",
        "deleted" => "Deleted.",
        "2fa-off" => "Two-factor sign-in is off.",
        _ => return None,
    })
}

/// Unix seconds as `2026-12-01 18:00 UTC`; a dash for none.
pub fn time(t: Option<i64>) -> String {
    t.and_then(|t| chrono::DateTime::from_timestamp(t, 0))
        .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_else(|| "—".into())
}

/// Unix seconds as a date (`2026-12-01`); a dash for none.
pub fn date(t: Option<i64>) -> String {
    t.and_then(|t| chrono::DateTime::from_timestamp(t, 0))
        .map(|t| t.format("%Y-%m-%d").to_string())
        .unwrap_or_else(|| "—".into())
}

/// Percent-encodes one path segment or query value.
pub fn encode(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

/// The console URL of a site path under `/files` (each segment encoded; folders end in `/`).
pub fn files_url(path: &crate::path::SitePath, folder: bool) -> String {
    let mut url = String::from("/files");
    for seg in path.segments() {
        url.push('/');
        url.push_str(&encode(seg));
    }
    if folder {
        url.push('/');
    }
    url
}
