//! Phase *minimise*: only the fields a purpose needs leave the gateway.
//!
//! A granted partner response is parsed strictly (no duplicate keys, bounded nesting),
//! checked against the operation's JSON Schema in strict mode, and rebuilt from scratch with
//! only the granted paths, each through its transform. Nothing of the partner's body is
//! copied through unchecked: the output is written field by field from what the parser read,
//! so an ungranted value cannot survive by accident.
//!
//! Two paths do this and accept the same answers:
//! - `stream` (the usual one): a single pass over the bytes that checks the schema's
//!   compiled `shape::Shape` and writes the granted fields as it reads;
//! - the reference path: [`strict::parse`] into a tree, the `jsonschema` validator, and
//!   [`tree`]'s rebuild. It serves schemas the shape cannot express and names the reason when
//!   the streaming pass refuses an answer.
//!
//! Anything that cannot be checked — wrong content type, invalid JSON, duplicate keys,
//! nesting too deep, too large, schema violation — ends the exchange with
//! `minimisation-failed` and nothing of the body is released.
//!
//! The same machinery allow-lists request bodies: only the grant's `request_fields` are
//! forwarded to the partner.
//!
//! The result records which JSON pointers were released and which withheld (for the audit
//! record) and counts the withheld ones (for metrics). Values themselves are never recorded.

pub mod shape;
mod stream;
pub mod strict;
pub mod transform;
pub mod tree;

pub use shape::StrictSchema;
pub use tree::{Distinct, FieldTree, PointerList};

use crate::problem::{Problem, ProblemCode};
use serde_json::Value;

/// What minimising one body produced.
#[derive(Debug, Clone, PartialEq)]
pub struct Minimised {
    /// The body to release, serialised.
    pub body: Vec<u8>,
    /// JSON pointers (RFC 6901) of released values.
    pub released: PointerList,
    /// JSON pointers of values present in the partner's body but not released.
    pub withheld: PointerList,
}

/// A partner's body as it may leave the gateway: minimised for the grant, or empty. Only this
/// module builds one, and the pipeline answers a caller only with one, so a partner body that
/// was not minimised cannot be released. This does not compile:
///
/// ```compile_fail
/// # use doelpoort::minimise::Released;
/// let unchecked = Released { body: bytes::Bytes::from_static(b"{\"bsn\":\"999990019\"}") };
/// ```
#[derive(Debug)]
pub struct Released {
    body: bytes::Bytes,
    /// JSON pointers (RFC 6901) of released values.
    pub fields_released: PointerList,
    /// JSON pointers of values present in the partner's body but not released.
    pub fields_withheld: PointerList,
}

impl Released {
    /// Nothing: for an answer without a body (HEAD, 204, 304).
    pub fn nothing() -> Self {
        Self {
            body: bytes::Bytes::new(),
            fields_released: PointerList::default(),
            fields_withheld: PointerList::default(),
        }
    }

    /// The benchmark's pass-through baseline: a partner body relayed unminimised. Only in a
    /// build with the `benchmark-switches` feature (`cargo bench --bench proxy`).
    #[cfg(feature = "benchmark-switches")]
    pub fn unminimised(body: bytes::Bytes) -> Self {
        Self {
            body,
            ..Self::nothing()
        }
    }

    /// Takes the released and withheld pointers (for the exchange's record); the body stays.
    pub fn take_fields(&mut self) -> (PointerList, PointerList) {
        (
            std::mem::take(&mut self.fields_released),
            std::mem::take(&mut self.fields_withheld),
        )
    }

    /// The body to send to the caller.
    pub fn into_body(self) -> bytes::Bytes {
        self.body
    }
}

/// Minimises a partner's answer for a grant (see [`minimise_response`]) into what may be
/// released.
pub fn release(
    body: &[u8],
    content_type: Option<&http::HeaderValue>,
    tree: &FieldTree,
    schema: Option<&StrictSchema>,
    context: &transform::Context<'_>,
    limits: &Limits,
) -> Result<Released, Problem> {
    let minimised = minimise_response(body, content_type, tree, schema, context, limits)?;
    Ok(Released {
        body: bytes::Bytes::from(minimised.body),
        fields_released: minimised.released,
        fields_withheld: minimised.withheld,
    })
}

/// Settings that do not change per exchange.
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_depth: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self { max_depth: 32 }
    }
}

fn failed(detail: &'static str) -> Problem {
    Problem::new(ProblemCode::MinimisationFailed, detail)
}

/// Whether a `Content-Type` value is JSON (`application/json` or `application/*+json`).
pub fn is_json_content_type(value: Option<&http::HeaderValue>) -> bool {
    let Some(value) = value.and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let essence = value
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// Minimises a partner response body for a grant.
///
/// `schema` is the operation's compiled response schema (strict mode); `None` skips schema
/// validation, which only happens when the operation has no schema (policy check refuses
/// grants that release fields from such operations).
pub fn minimise_response(
    body: &[u8],
    content_type: Option<&http::HeaderValue>,
    tree: &FieldTree,
    schema: Option<&StrictSchema>,
    context: &transform::Context<'_>,
    limits: &Limits,
) -> Result<Minimised, Problem> {
    if !is_json_content_type(content_type) {
        return Err(failed(
            "the partner answered with a content type other than JSON; nothing of it is released",
        ));
    }
    let shape = match schema {
        None => Some(&shape::ANY),
        Some(schema) => schema.shape(),
    };
    if let Some(shape) = shape {
        return match stream::minimise(body, shape, tree, context, limits.max_depth) {
            Ok((body, log)) => Ok(Minimised {
                body,
                released: log.released,
                withheld: log.withheld,
            }),
            // The reference path names the reason. Should it accept what the pass refused
            // (a defect), the answer is still refused: fail closed.
            Err(stream::Stop) => Err(reference(body, tree, schema, context, limits)
                .err()
                .unwrap_or_else(|| {
                    failed("the partner's answer cannot be checked; nothing of it is released")
                })),
        };
    }
    reference(body, tree, schema, context, limits)
}

/// The reference path: strict parse into a tree, validation by the `jsonschema` crate,
/// rebuild from the tree.
pub fn reference(
    body: &[u8],
    tree: &FieldTree,
    schema: Option<&StrictSchema>,
    context: &transform::Context<'_>,
    limits: &Limits,
) -> Result<Minimised, Problem> {
    let value = strict::parse(body, limits.max_depth).map_err(|e| {
        // The reason is safe to show (it names no value); the body itself is not.
        Problem::new(
            ProblemCode::MinimisationFailed,
            format!("the partner's answer cannot be checked ({e}); nothing of it is released"),
        )
    })?;
    if let Some(schema) = schema {
        if !schema.is_valid(&value) {
            return Err(failed(
                "the partner's answer does not match its schema; nothing of it is released",
            ));
        }
    }
    Ok(apply(&value, tree, context))
}

/// A caller's request body, parsed strictly at most once, when first needed.
///
/// The decision reads it when a grant looks at the body (a body subject, conditions) and
/// [`minimise_request`] rebuilds it from the same parse. Both therefore see one value, read
/// the way partner answers are read (duplicate keys and deep nesting refused): what was
/// decided on is what is forwarded, and a body that cannot be checked is refused during the
/// decision, before a four-eyes approval is spent on it.
pub struct RequestBody<'a> {
    bytes: &'a [u8],
    max_depth: usize,
    parsed: std::cell::OnceCell<Result<Value, strict::StrictError>>,
}

impl<'a> RequestBody<'a> {
    pub fn new(bytes: &'a [u8], limits: &Limits) -> Self {
        Self {
            bytes,
            max_depth: limits.max_depth,
            parsed: std::cell::OnceCell::new(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// The parsed body, or why it cannot be checked (a refusal with `context-invalid`).
    pub fn json(&self) -> Result<&Value, Problem> {
        self.parsed
            .get_or_init(|| strict::parse(self.bytes, self.max_depth))
            .as_ref()
            .map_err(|e| {
                // The reason names no value of the body.
                Problem::new(
                    ProblemCode::ContextInvalid,
                    format!("the request body cannot be checked ({e})"),
                )
            })
    }
}

/// Allow-lists a request body: only the fields the grant lists go to the partner.
pub fn minimise_request(body: &RequestBody<'_>, tree: &FieldTree) -> Result<Minimised, Problem> {
    Ok(apply(body.json()?, tree, &transform::Context::none()))
}

/// Rebuilds `value` with only the granted paths, serialising as it goes.
pub fn apply(value: &Value, tree: &FieldTree, context: &transform::Context<'_>) -> Minimised {
    let mut log = tree::Log::default();
    let mut body = Vec::with_capacity(1024);
    if !tree.write(value, context, &mut body, &mut log) {
        body.clear();
        body.extend_from_slice(b"{}");
    }
    Minimised {
        body,
        released: log.released,
        withheld: log.withheld,
    }
}

#[cfg(test)]
mod differential;
#[cfg(test)]
mod tests;
