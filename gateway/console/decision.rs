//! Page 3, "Mag ik dit zien?": a professional describes a request (who calls, for which
//! purpose, which partner operation, in which case, about whom) and gets the answer the
//! gateway itself would give — the same [`tools::explanation`] as `doelpoort policy explain`:
//! allowed or refused with the reason, the grant, the lawful basis that would be logged, and
//! every field of the answer released or withheld.
//!
//! Nothing is fetched from a partner and nothing is recorded: this is a question about the
//! policy, not an exchange. The BSN is posted, used to build the request the gateway would
//! see, and forgotten.

use super::page::{html, Frame};
use super::{Ask, Console};
use crate::context::{Bsn, ACTOR, CASE_ID, CASE_PARTNERS, DATA_SUBJECT, PURPOSE};
use crate::policy::tools::{self, Explanation, SimulatedRequest};
use crate::policy::{Operation, PolicySet, SubjectSource};
use askama::Template;
use bytes::Bytes;
use http::{Method, Response, StatusCode};
use http_body_util::Full;

/// The form's fields as entered (echoed back into the form).
#[derive(Default)]
pub struct Asked {
    pub consumer: String,
    pub purpose: String,
    pub operation: String,
    pub bsn: String,
    pub case_id: String,
    pub actor: String,
    /// `Doelbinding-Case-Partners`: the partners already involved in the case.
    pub case_partners: String,
}

#[derive(Template)]
#[template(path = "decision.html")]
struct Decision {
    f: Frame,
    consumers: Vec<(String, String)>,
    purposes: Vec<(String, String)>,
    /// Key and label.
    operations: Vec<(String, String)>,
    asked: Asked,
    answer: Option<Explanation>,
    /// The same question as a `doelpoort policy explain` command.
    command: String,
    error: Option<&'static str>,
    loaded: bool,
}

pub fn page(console: &Console, ask: &Ask) -> Response<Full<Bytes>> {
    let set = console.state.policies.current();
    let asked = Asked {
        consumer: ask.posted("consumer").unwrap_or_default().to_string(),
        purpose: ask.posted("purpose").unwrap_or_default().to_string(),
        operation: ask.posted("operation").unwrap_or_default().to_string(),
        bsn: ask.posted("bsn").unwrap_or_default().to_string(),
        case_id: ask.posted("case_id").unwrap_or_default().to_string(),
        actor: ask.posted("actor").unwrap_or_default().to_string(),
        case_partners: ask.posted("case_partners").unwrap_or_default().to_string(),
    };
    let (mut answer, mut command, mut error) = (None, String::new(), None);
    if let (Some(set), true) = (&set, ask.method == Method::POST) {
        match question(set, &asked) {
            Ok(request) => {
                command = cli_command(console, &request);
                answer = Some(tools::explanation(set, &request, None));
            }
            Err(e) => error = Some(e(ask.lang.texts())),
        }
    }
    let (consumers, purposes, operations) = set.as_deref().map(choices).unwrap_or_default();
    let status = if error.is_some() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    html(
        status,
        &Decision {
            f: Frame::new(console, ask, "/mag-ik-dit-zien"),
            consumers,
            purposes,
            operations,
            asked,
            answer,
            command,
            error,
            loaded: set.is_some(),
        },
    )
}

type Choices = (
    Vec<(String, String)>,
    Vec<(String, String)>,
    Vec<(String, String)>,
);

fn choices(set: &PolicySet) -> Choices {
    (
        set.consumers
            .values()
            .map(|c| (c.id.clone(), c.name.clone()))
            .collect(),
        set.purposes
            .values()
            .map(|p| (p.id.clone(), p.title.clone()))
            .collect(),
        set.operations
            .values()
            .map(|o| (o.key.clone(), o.label()))
            .collect(),
    )
}

type Refusal = fn(&'static super::i18n::Texts) -> &'static str;

/// The request the gateway would see for this question: the operation's path with the person
/// in it (or in the body), and the context headers a caller would send.
fn question(set: &PolicySet, asked: &Asked) -> Result<SimulatedRequest, Refusal> {
    // The lists offer only what the policy set knows; anything else was not chosen from them.
    let (Some(op), true, true) = (
        set.operations.get(&asked.operation),
        set.consumers.contains_key(&asked.consumer),
        set.purposes.contains_key(&asked.purpose),
    ) else {
        return Err(|t| t.choose_from_list);
    };
    let bsn = Bsn::parse(&asked.bsn).map_err(|_| (|t| t.bsn_invalid) as Refusal)?;
    let (path, body) = target(op, &bsn);
    let mut headers = vec![
        (PURPOSE.to_string(), asked.purpose.clone()),
        (DATA_SUBJECT.to_string(), format!("bsn={}", bsn.as_str())),
    ];
    if !asked.case_id.is_empty() {
        headers.push((CASE_ID.to_string(), asked.case_id.clone()));
    }
    if !asked.actor.is_empty() {
        headers.push((ACTOR.to_string(), asked.actor.clone()));
    }
    if !asked.case_partners.is_empty() {
        headers.push((CASE_PARTNERS.to_string(), asked.case_partners.clone()));
    }
    Ok(SimulatedRequest {
        consumer: asked.consumer.clone(),
        method: op.method.clone(),
        path,
        headers,
        body,
        approvals: Vec::new(),
        today: crate::policy::today(),
    })
}

/// The gateway path (`/<partner>/<path>`) with the person's BSN for the subject parameter,
/// and a JSON body naming the person when the operation takes them from its body.
fn target(op: &Operation, bsn: &Bsn) -> (String, Vec<u8>) {
    let mut path = format!("/{}", op.partner);
    for segment in op.template.as_str().split('/').filter(|s| !s.is_empty()) {
        path.push('/');
        match segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
            Some(param) if matches!(&op.subject, SubjectSource::Path(p) if p == param) => {
                path.push_str(bsn.as_str())
            }
            _ => path.push_str(segment),
        }
    }
    let body = match &op.subject {
        SubjectSource::Body(field) => {
            let mut value = serde_json::Value::String(bsn.as_str().to_string());
            for key in field.to_string().split('/').filter(|s| !s.is_empty()).rev() {
                value = serde_json::json!({ key: value });
            }
            serde_json::to_vec(&value).unwrap_or_default()
        }
        _ => Vec::new(),
    };
    (path, body)
}

/// The same question for `doelpoort policy explain`, to paste into a terminal: every value
/// single-quoted, so nothing typed into the form can run in the shell it is pasted into.
fn cli_command(console: &Console, request: &SimulatedRequest) -> String {
    let mut words = vec![
        "doelpoort".to_string(),
        "policy".into(),
        "explain".into(),
        quote(&console.policies_dir.display().to_string()),
        "--consumer".into(),
        quote(&request.consumer),
        "--request".into(),
        quote(&format!("{} {}", request.method, request.path)),
    ];
    for (name, value) in &request.headers {
        words.push("-H".into());
        words.push(quote(&format!("{}: {value}", header_case(name))));
    }
    if !request.body.is_empty() {
        words.push("--body".into());
        words.push(format!(
            "<(printf '%s' {})",
            quote(&String::from_utf8_lossy(&request.body))
        ));
    }
    words.join(" ")
}

/// A POSIX shell word for `text`: single quotes, each `'` written as `'\''`.
fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "'\\''"))
}

/// `doelbinding-case-id` → `Doelbinding-Case-Id`, as callers write it.
fn header_case(name: &str) -> String {
    name.split('-')
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        })
        .collect::<Vec<_>>()
        .join("-")
}

impl Decision {
    fn verdict_class(&self) -> &'static str {
        match &self.answer {
            Some(a) if a.allowed() => "allow",
            _ => "deny",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::quote;

    #[test]
    fn a_quoted_word_is_one_word_whatever_it_holds() {
        for text in [
            "plain",
            "it's",
            "$(touch x)",
            "a\"b",
            "`id`",
            "'; rm -rf /; '",
        ] {
            let out = std::process::Command::new("sh")
                .arg("-c")
                .arg(format!("printf '%s' {}", quote(text)))
                .output()
                .unwrap();
            assert_eq!(String::from_utf8_lossy(&out.stdout), text);
        }
    }
}
