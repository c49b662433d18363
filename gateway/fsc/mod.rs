//! FSC (Logius' Federated Service Connectivity, core 1.1 and logging 1.0): its vocabulary as
//! Doelpoort speaks it at both ends (SPEC §10).
//!
//! - [`tokens`]: access tokens: issued by an inway's token endpoint for configured contracts,
//!   verified at the inway (`Fsc-Authorization`), fetched and cached by the outway per
//!   partner.
//! - [`FscError`]: FSC's error codes; an FSC-scope refusal carries `Fsc-Error-Code` and the
//!   members FSC's error object requires (`code`, `domain`, `message`) inside Doelpoort's
//!   problem+json body (RFC 9457 extension members).
//! - [`TransactionLog`]: the FSC logging fields an audit record carries.
//!
//! What is not built (see docs/fsc.md): contract management (signing, directory, peer
//! listing), delegation, and the manager's `/v1/logs`. Contracts are configured as grant
//! hashes; the gateway treats a grant hash as an opaque string.

pub mod tokens;

use crate::problem::ProblemCode;
use http::HeaderName;

/// The access token the outway sends to the inway (FSC core: "Routing").
pub const FSC_AUTHORIZATION: HeaderName = HeaderName::from_static("fsc-authorization");
/// The code of an error within FSC's scope (FSC core: "Error handling").
pub const FSC_ERROR_CODE: HeaderName = HeaderName::from_static("fsc-error-code");

/// The path of an inway's token endpoint: its manager address is
/// `https://<inway>/doelpoort/fsc`, and FSC's manager API puts the endpoint at `/v1/token`.
pub const TOKEN_PATH: &str = "/doelpoort/fsc/v1/token";

/// FSC error codes Doelpoort answers with (inway) or reads (outway).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FscError {
    AccessTokenMissing,
    AccessTokenInvalid,
    AccessTokenExpired,
    WrongGroupIdInToken,
    ServiceNotFound,
    ServiceUnreachable,
    /// FSC logging: the record could not be written, so nothing is proxied.
    TransactionLogWriteError,
    MissingLogRecordId,
    InvalidLogRecordId,
}

impl FscError {
    pub const fn code(self) -> &'static str {
        match self {
            Self::AccessTokenMissing => "ERROR_CODE_ACCESS_TOKEN_MISSING",
            Self::AccessTokenInvalid => "ERROR_CODE_ACCESS_TOKEN_INVALID",
            Self::AccessTokenExpired => "ERROR_CODE_ACCESS_TOKEN_EXPIRED",
            Self::WrongGroupIdInToken => "ERROR_CODE_WRONG_GROUP_ID_IN_TOKEN",
            Self::ServiceNotFound => "ERROR_CODE_SERVICE_NOT_FOUND",
            Self::ServiceUnreachable => "ERROR_CODE_SERVICE_UNREACHABLE",
            Self::TransactionLogWriteError => "TRANSACTION_LOG_WRITE_ERROR",
            Self::MissingLogRecordId => "MISSING_LOG_RECORD_ID",
            Self::InvalidLogRecordId => "INVALID_LOG_RECORD_ID",
        }
    }

    /// The Doelpoort problem an FSC error is answered as. The status is Doelpoort's
    /// (SPEC §2); where FSC names another (a log write error is 500 in FSC, 503
    /// `audit-unavailable` here) Doelpoort's contract wins and the code says what FSC means.
    pub fn problem_code(self) -> ProblemCode {
        match self {
            Self::AccessTokenMissing | Self::AccessTokenInvalid | Self::AccessTokenExpired => {
                ProblemCode::TokenInvalid
            }
            Self::WrongGroupIdInToken => ProblemCode::TokenMismatch,
            Self::ServiceNotFound => ProblemCode::UnknownRoute,
            Self::ServiceUnreachable => ProblemCode::UpstreamUnavailable,
            Self::TransactionLogWriteError => ProblemCode::AuditUnavailable,
            Self::MissingLogRecordId | Self::InvalidLogRecordId => ProblemCode::ContextInvalid,
        }
    }

    /// The problem this error is answered with at an inway: Doelpoort's code and status,
    /// FSC's code in `Fsc-Error-Code` and in the body's `fsc` object.
    pub fn problem(self, detail: &'static str) -> crate::problem::Problem {
        crate::problem::Problem::new(self.problem_code(), detail).with_fsc(self.tag(Side::Inway))
    }

    /// The code with the domain of the side that answers with it (FSC's error object).
    pub fn tag(self, side: Side) -> &'static (&'static str, &'static str) {
        let index = self as usize;
        match side {
            Side::Inway => &INWAY_TAGS[index],
            Side::Outway => &OUTWAY_TAGS[index],
        }
    }

    /// The FSC error for a Doelpoort problem at an inway, where FSC names one.
    pub fn of_problem(code: ProblemCode) -> Option<Self> {
        match code {
            ProblemCode::AuditUnavailable => Some(Self::TransactionLogWriteError),
            ProblemCode::UnknownRoute => Some(Self::ServiceNotFound),
            ProblemCode::UpstreamUnavailable | ProblemCode::UpstreamTimeout => {
                Some(Self::ServiceUnreachable)
            }
            _ => None,
        }
    }
}

/// Which FSC component answers with an error (its `domain`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Inway,
    Outway,
}

const ALL: [FscError; 9] = [
    FscError::AccessTokenMissing,
    FscError::AccessTokenInvalid,
    FscError::AccessTokenExpired,
    FscError::WrongGroupIdInToken,
    FscError::ServiceNotFound,
    FscError::ServiceUnreachable,
    FscError::TransactionLogWriteError,
    FscError::MissingLogRecordId,
    FscError::InvalidLogRecordId,
];

/// `(code, domain)` per error, in declaration order: a problem carries a reference to one
/// (keeping the problem small; it travels in every `Result` of the pipeline).
static INWAY_TAGS: [(&str, &str); 9] = tags("ERROR_DOMAIN_INWAY");
static OUTWAY_TAGS: [(&str, &str); 9] = tags("ERROR_DOMAIN_OUTWAY");

const fn tags(domain: &'static str) -> [(&'static str, &'static str); 9] {
    let mut out = [("", domain); 9];
    let mut i = 0;
    while i < ALL.len() {
        out[i] = (ALL[i].code(), domain);
        i += 1;
    }
    out
}

/// Whether a partner's `Fsc-Error-Code` has the form of an FSC code (upper-case letters and
/// underscores): only such a value is recorded and passed on, never free text.
pub fn is_error_code(value: &str) -> bool {
    (1..=64).contains(&value.len()) && value.bytes().all(|b| b.is_ascii_uppercase() || b == b'_')
}

/// Which side of an FSC connection wrote a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// The outway, towards an inway.
    Outgoing,
    /// The inway, from an outway.
    Incoming,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Outgoing => "DIRECTION_OUTGOING",
            Self::Incoming => "DIRECTION_INCOMING",
        }
    }
}

/// FSC logging's record fields for one exchange (logging 1.0, "Log record"); the transaction
/// id and time are the audit record's own. Filled from the access token: `gth` → grant hash,
/// `sub` → source, `iss` → destination, `svc` → service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransactionLog {
    pub direction: Direction,
    pub grant_hash: String,
    /// The outway's peer id.
    pub source: String,
    /// The providing peer's id.
    pub destination: String,
    pub service: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_are_fscs_strings() {
        assert_eq!(
            FscError::AccessTokenMissing.code(),
            "ERROR_CODE_ACCESS_TOKEN_MISSING"
        );
        assert_eq!(FscError::MissingLogRecordId.code(), "MISSING_LOG_RECORD_ID");
        for (i, e) in ALL.iter().enumerate() {
            assert_eq!(*e as usize, i, "ALL is in declaration order");
            assert_eq!(e.tag(Side::Inway), &(e.code(), "ERROR_DOMAIN_INWAY"));
            assert_eq!(e.tag(Side::Outway), &(e.code(), "ERROR_DOMAIN_OUTWAY"));
        }
        assert!(is_error_code("ERROR_CODE_SERVICE_UNREACHABLE"));
        assert!(!is_error_code("error <script>"));
        assert!(!is_error_code(""));
    }
}
