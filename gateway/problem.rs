//! The one place where a refused or failed exchange becomes an HTTP response.
//!
//! Every phase of the pipeline ends an exchange it cannot continue with a [`Problem`]: a stable
//! [`ProblemCode`] (SPEC §2, part of the contract with calling systems) plus a human-readable
//! detail. [`Problem::into_response`] renders it as RFC 9457 `application/problem+json`.
//!
//! A detail must never contain personal data (BSN, case id, actor) nor text copied from an
//! upstream body: callers and partners are different organisations, and problem bodies end up
//! in their logs.

use bytes::Bytes;
use http::{header, HeaderName, HeaderValue, Response, StatusCode};
use http_body_util::Full;
use serde::Serialize;
use std::borrow::Cow;
use std::fmt;

/// Stable problem codes. The kebab-case string is the last segment of the problem `type` URI
/// and the value of `doelpoort.reason` in audit records; renaming one breaks callers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProblemCode {
    UnknownConsumer,
    PurposeMissing,
    PurposeUnknown,
    ContextInvalid,
    RequestInvalid,
    TokenInvalid,
    TokenMismatch,
    NotGranted,
    GrantExpired,
    SubjectMismatch,
    FourEyesRequired,
    ConditionFailed,
    CaseUnknown,
    CaseClosed,
    OutsideCaseScope,
    NotInHousehold,
    PurposeIncompatible,
    UnknownRoute,
    MethodNotAllowed,
    RequestTooLarge,
    RequestTimeout,
    PartnerRejected,
    MinimisationFailed,
    UpstreamUnavailable,
    UpstreamTimeout,
    AuditUnavailable,
    Internal,
}

impl ProblemCode {
    /// Every code, for documentation and tests.
    pub const ALL: [ProblemCode; 27] = [
        Self::UnknownConsumer,
        Self::PurposeMissing,
        Self::PurposeUnknown,
        Self::ContextInvalid,
        Self::RequestInvalid,
        Self::TokenInvalid,
        Self::TokenMismatch,
        Self::NotGranted,
        Self::GrantExpired,
        Self::SubjectMismatch,
        Self::FourEyesRequired,
        Self::ConditionFailed,
        Self::CaseUnknown,
        Self::CaseClosed,
        Self::OutsideCaseScope,
        Self::NotInHousehold,
        Self::PurposeIncompatible,
        Self::UnknownRoute,
        Self::MethodNotAllowed,
        Self::RequestTooLarge,
        Self::RequestTimeout,
        Self::PartnerRejected,
        Self::MinimisationFailed,
        Self::UpstreamUnavailable,
        Self::UpstreamTimeout,
        Self::AuditUnavailable,
        Self::Internal,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::UnknownConsumer => "unknown-consumer",
            Self::PurposeMissing => "purpose-missing",
            Self::PurposeUnknown => "purpose-unknown",
            Self::ContextInvalid => "context-invalid",
            Self::RequestInvalid => "request-invalid",
            Self::TokenInvalid => "token-invalid",
            Self::TokenMismatch => "token-mismatch",
            Self::NotGranted => "not-granted",
            Self::GrantExpired => "grant-expired",
            Self::SubjectMismatch => "subject-mismatch",
            Self::FourEyesRequired => "four-eyes-required",
            Self::ConditionFailed => "condition-failed",
            Self::CaseUnknown => "case-unknown",
            Self::CaseClosed => "case-closed",
            Self::OutsideCaseScope => "outside-case-scope",
            Self::NotInHousehold => "not-in-household",
            Self::PurposeIncompatible => "purpose-incompatible",
            Self::UnknownRoute => "unknown-route",
            Self::MethodNotAllowed => "method-not-allowed",
            Self::RequestTooLarge => "request-too-large",
            Self::RequestTimeout => "request-timeout",
            Self::PartnerRejected => "partner-rejected",
            Self::MinimisationFailed => "minimisation-failed",
            Self::UpstreamUnavailable => "upstream-unavailable",
            Self::UpstreamTimeout => "upstream-timeout",
            Self::AuditUnavailable => "audit-unavailable",
            Self::Internal => "internal-error",
        }
    }

    pub const fn status(self) -> StatusCode {
        match self {
            Self::PurposeMissing
            | Self::PurposeUnknown
            | Self::ContextInvalid
            | Self::RequestInvalid => StatusCode::BAD_REQUEST,
            Self::TokenInvalid => StatusCode::UNAUTHORIZED,
            Self::UnknownConsumer
            | Self::TokenMismatch
            | Self::NotGranted
            | Self::GrantExpired
            | Self::SubjectMismatch
            | Self::FourEyesRequired
            | Self::ConditionFailed
            | Self::CaseUnknown
            | Self::CaseClosed
            | Self::OutsideCaseScope
            | Self::NotInHousehold
            | Self::PurposeIncompatible => StatusCode::FORBIDDEN,
            Self::UnknownRoute => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            Self::RequestTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            // The partner's own 4xx status is carried in `Problem::status_override`.
            Self::PartnerRejected => StatusCode::BAD_GATEWAY,
            Self::MinimisationFailed | Self::UpstreamUnavailable => StatusCode::BAD_GATEWAY,
            Self::UpstreamTimeout => StatusCode::GATEWAY_TIMEOUT,
            Self::AuditUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub const fn title(self) -> &'static str {
        match self {
            Self::UnknownConsumer => "Unknown consumer",
            Self::PurposeMissing => "Purpose missing",
            Self::PurposeUnknown => "Purpose unknown",
            Self::ContextInvalid => "Request context invalid",
            Self::RequestInvalid => "Request body invalid",
            Self::TokenInvalid => "Token invalid",
            Self::TokenMismatch => "Token does not match the request",
            Self::NotGranted => "Not granted",
            Self::GrantExpired => "Grant expired",
            Self::SubjectMismatch => "Data subject mismatch",
            Self::FourEyesRequired => "Four-eyes approval required",
            Self::ConditionFailed => "Grant condition failed",
            Self::CaseUnknown => "Case unknown",
            Self::CaseClosed => "Case closed",
            Self::OutsideCaseScope => "Outside the case's agreed scope",
            Self::NotInHousehold => "Data subject not in the case's household",
            Self::PurposeIncompatible => "Purpose incompatible with the case",
            Self::UnknownRoute => "Unknown route",
            Self::MethodNotAllowed => "Method not allowed",
            Self::RequestTooLarge => "Request too large",
            Self::RequestTimeout => "Request timeout",
            Self::PartnerRejected => "Partner rejected the request",
            Self::MinimisationFailed => "Response could not be minimised",
            Self::UpstreamUnavailable => "Partner unavailable",
            Self::UpstreamTimeout => "Partner timeout",
            Self::AuditUnavailable => "Audit log unavailable",
            Self::Internal => "Internal error",
        }
    }
}

/// Where a problem arose: whose fault ends the exchange. The audit record and the metrics call
/// a caller's fault a denial and the others an error, so a partner's refusal or a gateway
/// failure is never counted against the caller (pingora's error source, in Doelpoort's terms).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The request: its context, token, body or what it asks for.
    Caller,
    /// The partner: unreachable, too slow, refusing, or answering what cannot be released.
    Partner,
    /// The gateway itself: the audit log, a signing key, a defect.
    Gateway,
}

impl ProblemCode {
    /// Where a problem with this code arises.
    pub const fn source(self) -> Source {
        match self {
            Self::PartnerRejected
            | Self::MinimisationFailed
            | Self::UpstreamUnavailable
            | Self::UpstreamTimeout => Source::Partner,
            Self::AuditUnavailable | Self::Internal => Source::Gateway,
            _ => Source::Caller,
        }
    }
}

impl fmt::Display for ProblemCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A refusal or failure that ends an exchange.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub code: ProblemCode,
    /// Safe to show to the caller: no personal data, no upstream text.
    pub detail: Cow<'static, str>,
    /// Only for `partner-rejected`: the partner's own 4xx status is relayed.
    pub status_override: Option<StatusCode>,
    /// Only for `method-not-allowed`: the methods the resource does allow (the `Allow` header
    /// RFC 9110 §15.5.6 requires).
    pub allow: Option<Cow<'static, str>>,
    /// An error within FSC's scope: FSC's code (`Fsc-Error-Code`) and the domain of the
    /// component answering (`ERROR_DOMAIN_INWAY`/`_OUTWAY`). The body then also holds FSC's
    /// error object, under `fsc` (Doelpoort's own `code` keeps its meaning).
    pub fsc: Option<&'static (&'static str, &'static str)>,
}

impl Problem {
    pub fn new(code: ProblemCode, detail: impl Into<Cow<'static, str>>) -> Self {
        Self {
            code,
            detail: detail.into(),
            status_override: None,
            allow: None,
            fsc: None,
        }
    }

    /// This problem as an error within FSC's scope: FSC's `(code, domain)`.
    pub fn with_fsc(mut self, tag: &'static (&'static str, &'static str)) -> Self {
        self.fsc = Some(tag);
        self
    }

    /// The method is not one this resource serves; `allow` lists those it does.
    pub fn method_not_allowed(
        detail: impl Into<Cow<'static, str>>,
        allow: impl Into<Cow<'static, str>>,
    ) -> Self {
        Self {
            allow: Some(allow.into()),
            ..Self::new(ProblemCode::MethodNotAllowed, detail)
        }
    }

    /// The partner answered with a client error (4xx). Its body is never relayed.
    pub fn partner_rejected(status: StatusCode) -> Self {
        Self {
            code: ProblemCode::PartnerRejected,
            detail: Cow::Owned(format!(
                "the partner answered {}; its response body is not released",
                status
            )),
            status_override: Some(status),
            allow: None,
            fsc: None,
        }
    }

    /// Where this problem arose (see [`Source`]).
    pub fn source(&self) -> Source {
        self.code.source()
    }

    pub fn status(&self) -> StatusCode {
        self.status_override.unwrap_or_else(|| self.code.status())
    }

    /// Renders the problem as `application/problem+json` (RFC 9457).
    pub fn into_response(self, type_base: &str, transaction_id: &str) -> Response<Full<Bytes>> {
        #[derive(Serialize)]
        struct Body<'a> {
            #[serde(rename = "type")]
            type_: String,
            title: &'static str,
            status: u16,
            detail: &'a str,
            code: &'static str,
            transaction_id: &'a str,
            #[serde(skip_serializing_if = "Option::is_none")]
            fsc: Option<FscObject<'a>>,
        }
        /// FSC core's error object (`components/schemas/error`).
        #[derive(Serialize)]
        struct FscObject<'a> {
            code: &'static str,
            domain: &'static str,
            message: &'a str,
        }
        let status = self.status();
        let body = Body {
            type_: format!("{}/{}", type_base.trim_end_matches('/'), self.code.as_str()),
            title: self.code.title(),
            status: status.as_u16(),
            detail: &self.detail,
            code: self.code.as_str(),
            transaction_id,
            fsc: self.fsc.map(|&(code, domain)| FscObject {
                code,
                domain,
                message: &self.detail,
            }),
        };
        // Serialising a struct of strings and integers cannot fail; fall back to a fixed body
        // rather than panic should that ever change.
        let bytes = serde_json::to_vec(&body).unwrap_or_else(|_| b"{}".to_vec());
        let mut response = Response::new(Full::new(Bytes::from(bytes)));
        *response.status_mut() = status;
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        response
            .headers_mut()
            .insert(header::CACHE_CONTROL, crate::headers::NO_STORE);
        if let Some(allow) = self
            .allow
            .as_deref()
            .and_then(|a| HeaderValue::from_str(a).ok())
        {
            response.headers_mut().insert(header::ALLOW, allow);
        }
        if let Some(code) = self.fsc.and_then(|(c, _)| HeaderValue::from_str(c).ok()) {
            response
                .headers_mut()
                .insert(HeaderName::from_static("fsc-error-code"), code);
        }
        if self.code == ProblemCode::TokenInvalid {
            // RFC 6750 §3: a 401 names the scheme and says the token was the trouble.
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(r#"Bearer error="invalid_token""#),
            );
        }
        response
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.detail)
    }
}

impl std::error::Error for Problem {}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[test]
    fn codes_are_unique_kebab_case() {
        let mut seen = std::collections::HashSet::new();
        for code in ProblemCode::ALL {
            let s = code.as_str();
            assert!(seen.insert(s), "duplicate code {s}");
            assert!(s.chars().all(|c| c.is_ascii_lowercase() || c == '-'));
        }
    }

    #[test]
    fn contract_statuses() {
        use ProblemCode::*;
        let expected = [
            (UnknownConsumer, 403),
            (PurposeMissing, 400),
            (PurposeUnknown, 400),
            (ContextInvalid, 400),
            (TokenInvalid, 401),
            (TokenMismatch, 403),
            (NotGranted, 403),
            (GrantExpired, 403),
            (SubjectMismatch, 403),
            (FourEyesRequired, 403),
            (ConditionFailed, 403),
            (UnknownRoute, 404),
            (RequestTooLarge, 413),
            (MinimisationFailed, 502),
            (UpstreamUnavailable, 502),
            (UpstreamTimeout, 504),
            (AuditUnavailable, 503),
        ];
        for (code, status) in expected {
            assert_eq!(code.status().as_u16(), status, "{code}");
        }
    }

    #[tokio::test]
    async fn renders_problem_json() {
        let response = Problem::new(ProblemCode::NotGranted, "no grant")
            .into_response("https://doelpoort.example/problems/", "tx-1");
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
        assert_eq!(
            response.headers()[header::CONTENT_TYPE],
            "application/problem+json"
        );
        let body = response.into_body().collect().await.unwrap().to_bytes();
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            json["type"],
            "https://doelpoort.example/problems/not-granted"
        );
        assert_eq!(json["status"], 403);
        assert_eq!(json["transaction_id"], "tx-1");
        assert_eq!(json["detail"], "no grant");
    }

    #[test]
    fn partner_rejection_relays_status_only() {
        let problem = Problem::partner_rejected(StatusCode::NOT_FOUND);
        assert_eq!(problem.status(), StatusCode::NOT_FOUND);
        assert_eq!(problem.code, ProblemCode::PartnerRejected);
    }
}
