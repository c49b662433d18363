//! What every page shares: the frame (language, officer, menu), rendering, the overview, the
//! refusal page and the stylesheet.

use super::i18n::{Lang, Texts};
use super::{Ask, Console};
use askama::Template;
use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::Full;

/// The frame around every page.
pub struct Frame {
    pub t: &'static Texts,
    pub lang: Lang,
    /// The officer's name, shown as "signed in as".
    pub officer: String,
    /// Which menu item is current (its path).
    pub active: &'static str,
    /// Appended to links to keep the language: `""` or `"?lang=en"`.
    pub q: &'static str,
    /// This page in the other language.
    pub other_lang_href: String,
    pub policy_version: String,
    pub instance: String,
    /// The menu: path and label.
    pub nav: [(&'static str, &'static str); 7],
}

impl Frame {
    pub fn new(console: &Console, ask: &Ask, active: &'static str) -> Self {
        let other = match ask.lang {
            Lang::Nl => "?lang=en",
            Lang::En => "?lang=nl",
        };
        Self {
            t: ask.lang.texts(),
            lang: ask.lang,
            officer: ask.officer.name.clone(),
            active,
            q: ask.lang.query(),
            other_lang_href: format!("{active}{other}"),
            policy_version: console
                .state
                .policies
                .current()
                .map(|p| p.version.clone())
                .unwrap_or_default(),
            instance: console.instance.clone(),
            nav: {
                let t = ask.lang.texts();
                [
                    ("/doelen", t.nav_purposes),
                    ("/matrix", t.nav_matrix),
                    ("/mag-ik-dit-zien", t.nav_decide),
                    ("/inzage", t.nav_inzage),
                    ("/audit", t.nav_audit),
                    ("/beleid", t.nav_history),
                    ("/zaken", t.nav_cases),
                ]
            },
        }
    }
}

/// Renders a page as an HTML answer.
pub fn html(status: StatusCode, page: &impl Template) -> Response<Full<Bytes>> {
    match page.render() {
        Ok(body) => with_type(status, "text/html; charset=utf-8", body),
        Err(e) => {
            tracing::error!(target: "doelpoort::console", error = %e, "cannot render a console page");
            with_type(
                StatusCode::INTERNAL_SERVER_ERROR,
                "text/plain; charset=utf-8",
                "the page could not be rendered\n",
            )
        }
    }
}

pub use crate::headers::answer as with_type;

#[derive(Template)]
#[template(path = "home.html")]
struct Home {
    f: Frame,
    officer_id: String,
}

pub fn home(console: &Console, ask: &Ask) -> Response<Full<Bytes>> {
    html(
        StatusCode::OK,
        &Home {
            f: Frame::new(console, ask, "/"),
            officer_id: ask.officer.id.to_string(),
        },
    )
}

#[derive(Template)]
#[template(path = "refusal.html")]
struct Refusal {
    t: &'static Texts,
    lang: Lang,
    status: u16,
    message: &'static str,
}

/// A refusal, before (or instead of) a page: no menu, nothing from the request echoed.
pub fn refusal(lang: Lang, status: StatusCode, message: &'static str) -> Response<Full<Bytes>> {
    html(
        status,
        &Refusal {
            t: lang.texts(),
            lang,
            status: status.as_u16(),
            message,
        },
    )
}

pub fn stylesheet() -> Response<Full<Bytes>> {
    with_type(
        StatusCode::OK,
        "text/css; charset=utf-8",
        include_str!("templates/console.css"),
    )
}
