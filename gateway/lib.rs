//! # Doelpoort
//!
//! An mTLS reverse gateway between municipal backend systems (*consumers*) and chain partners
//! (UWV, SVB, CJIB, youth-care providers). It knows which organisation calls (from its client
//! certificate), forwards over its own mTLS connection to the partner, and answers every
//! refusal with a stable RFC 9457 problem code.
//!
//! Every exchange is decided against purpose-bound policies (*doelbinding*): a consumer reaches
//! a partner operation only for a declared purpose it holds a valid grant for, with the context
//! the grant requires. Deny by default.
//!
//! A granted partner answer is minimised before it leaves: strictly parsed, checked against
//! its schema, and rebuilt from the granted fields only, each through its transform; what
//! cannot be checked is refused. Every decision, allowed, denied or failed, is recorded in a
//! durable, hash-chained audit log before anything is released.
//!
//! ## Layout: one module per phase or concern
//! | module | what it is for |
//! |---|---|
//! | [`server`] | listeners, connection tasks, limits, graceful shutdown |
//! | [`tls`] | phase *accept*: TLS contexts (inbound mTLS, outbound per partner), peer identity |
//! | [`identity`] | phase *identify*: certificate → [`identity::Consumer`]; `Oin`, fingerprints |
//! | [`route`] | phase *route*: `/<partner>/<path>`, canonical-path checks |
//! | [`context`] | phase *context*: `Doelbinding-*` headers; `Bsn` with the elfproef |
//! | [`policy`] | phase *decide*: purposes, operations, grants; `Permit`; reload; policy tools |
//! | [`proxy`] | the exchange pipeline that runs the phases and always finishes with metrics and logs |
//! | [`upstream`] | phase *forward*: pooled mTLS clients per partner, timeouts |
//! | [`minimise`] | phase *minimise*: one streaming pass (strict JSON, schema shape, granted fields, transforms), the tree path as reference |
//! | [`audit`] | phase *record*: the hash-chained audit log, group commit, verify and query |
//! | [`token`] | signed caller tokens bound to the client certificate, four-eyes approvals |
//! | [`assertion`] | the signed `Doelbinding-Assertion` to partners and the gateway's JWKS |
//! | [`problem`] | the one mapping from refusals to `application/problem+json` |
//! | [`trace`] | `traceparent` and the FSC transaction id |
//! | [`metrics`] | Prometheus metrics with bounded labels |
//! | [`admin`] | `/healthz`, `/readyz`, `/metrics` |
//! | [`config`] | the operator's YAML configuration, validated with file:line:col errors |
//! | [`diagnostic`] | located messages about input files |
//! | [`pki`] | example/test PKI generation (`doelpoort certs generate`) |
//! | [`demo`] | `doelpoort demo` and the mock partners |
//! | [`cli`] | subcommands |
#![forbid(unsafe_code)]

pub mod admin;
pub mod assertion;
pub mod audit;
pub mod cli;
pub mod config;
pub mod context;
pub mod demo;
pub mod diagnostic;
pub mod identity;
pub mod metrics;
pub mod minimise;
pub mod pki;
pub mod policy;
pub mod problem;
pub mod proxy;
pub mod route;
pub mod server;
pub mod tls;
pub mod token;
pub mod trace;
pub mod upstream;
