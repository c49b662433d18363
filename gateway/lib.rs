//! # Doelpoort
//!
//! An mTLS reverse gateway between municipal backend systems (*consumers*) and chain partners
//! (UWV, SVB, CJIB, youth-care providers). It knows which organisation calls (from its client
//! certificate), forwards over its own mTLS connection to the partner, and answers every
//! refusal with a stable RFC 9457 problem code.
//!
//! ## What it does not do (yet)
//! Purpose-bound grants (*doelbinding*), response minimisation and the lawful-basis audit log
//! plug into the pipeline as the phases `context`/`decide`, `minimise` and `record`; until they
//! exist, a configured consumer reaches every configured partner.
//!
//! ## Layout: one module per phase or concern
//! | module | what it is for |
//! |---|---|
//! | [`server`] | listeners, connection tasks, limits, graceful shutdown |
//! | [`tls`] | phase *accept*: TLS contexts (inbound mTLS, outbound per partner), peer identity |
//! | [`identity`] | phase *identify*: certificate → [`identity::Consumer`]; `Oin`, fingerprints |
//! | [`route`] | phase *route*: `/<partner>/<path>`, canonical-path checks |
//! | [`proxy`] | the exchange pipeline that runs the phases and always finishes with metrics and logs |
//! | [`upstream`] | phase *forward*: pooled mTLS clients per partner, timeouts |
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
pub mod cli;
pub mod config;
pub mod demo;
pub mod diagnostic;
pub mod identity;
pub mod metrics;
pub mod pki;
pub mod problem;
pub mod proxy;
pub mod route;
pub mod server;
pub mod tls;
pub mod trace;
pub mod upstream;
