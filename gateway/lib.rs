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
//! From the top of the tree down; a module imports only modules below it.
//!
//! | module | what it is for |
//! |---|---|
//! | [`cli`] | subcommands (`run`, `demo`, `check`, `policy …`, `audit …`, `case …`, `certs …`) |
//! | [`demo`] | `doelpoort demo`: the mock partners (UWV, SVB, CJIB, jeugdhulp, the escalation team), their synthetic data, the demo's cases, the inways of youth care and UWV |
//! | [`server`] | listeners, connection tasks (idle HTTP/1.1 connections parked), limits, graceful shutdown |
//! | [`admin`] | `/healthz`, `/readyz`, `/metrics`, `/version`, the JWKS, the OpenAPI description |
//! | [`console`] | the privacy officers' console: purposes and grants, the matrix, "Mag ik dit zien?", art. 15 reports (themselves recorded), audit health, policy history and impact, the case register; server-rendered, behind mTLS with listed officers |
//! | [`state`] | [`state::GatewayState`]: everything an exchange needs, built once from the configuration |
//! | [`pipeline`] | the spine that runs one exchange through its phases, one file per phase: admission (identify, route, context, token, decide, admit), inbound (an inway's admission), forward, other end (FSC token, the provider's report), release, discovery, record, respond |
//! | [`cases`] | the case register (SPEC §8): its API on the data listener, phase *case* against each replica's copy in memory, the time-out ledger, purge |
//! | [`audit`] | phase *record*: the hash-chained audit log, group commit (to files or PostgreSQL), verify, query and import |
//! | [`store`] | state shared by replicas and restarts (SPEC §9): embedded SQLite or PostgreSQL, migrations, spent approvals, the case register's rows |
//! | [`exchange`] | [`exchange::Exchange`] (the facts one request establishes) and [`exchange::Concluded`], which the audit record, metrics and access log project from |
//! | [`upstream`] | pooled mTLS clients per partner; [`upstream::UpstreamRequest`] needs a `Permit` |
//! | [`policy`] | purposes, operations, grants; [`policy::decide`] (the `Permit`), [`policy::four_eyes`], the case register's rules ([`policy::case_rules`], [`policy::time_out`]), reload, the policy tools and test cases |
//! | [`minimise`] | one streaming pass (strict JSON, schema shape, granted fields, transforms), the tree path as reference; [`minimise::Released`] |
//! | [`token`] | signed caller tokens bound to the client certificate, and the approvals they carry |
//! | [`assertion`] | the signed `Doelbinding-Assertion` to partners and the gateway's JWKS |
//! | [`inway`] | the provider's end (`role: inway`, SPEC §10): the calling gateways' assertions, verified against their JWKS |
//! | [`fsc`] | FSC: access tokens (issued and checked at an inway, fetched and cached at an outway), error codes, logging fields |
//! | [`openapi`] | the gateway's own API in OpenAPI 3.1 (`docs/openapi.yaml`), published on both listeners |
//! | [`metrics`] | Prometheus metrics with bounded labels |
//! | [`tls`] | TLS contexts (inbound mTLS, outbound per partner), peer identity, handshake failures |
//! | [`identity`] | certificate → [`identity::Consumer`]; `Oin`, fingerprints |
//! | [`context`] | the `Doelbinding-*` headers; `Bsn` with the elfproef |
//! | [`route`] | `/<partner>/<path>`, canonical-path checks |
//! | [`config`] | the operator's YAML configuration, validated with file:line:col errors |
//! | [`id`] | [`id::Id`]: the one shape of consumer, partner, purpose, operation and grant ids |
//! | [`headers`] | the header vocabulary and the allow-lists in both directions |
//! | [`problem`] | the one mapping from refusals to `application/problem+json`; a problem's source |
//! | [`trace`] | `traceparent` and the FSC transaction id |
//! | [`secrets`], [`clock`] | the gateway's own secret files; the wall clock |
//! | [`canonical`] | the canonical form of JSON (RFC 8785) and its digest: audit chain, approved bodies |
//! | [`diagnostic`] | located messages about input files |
//! | [`pki`] | example/test PKI generation (`doelpoort certs generate`) |
//!
//! ## What Doelpoort does not do
//! - It does not pass anything through it cannot check: a partner answer that is not JSON,
//!   does not match its schema, or cannot be parsed strictly is not released at all; there is
//!   no "raw" mode in a production build.
//! - It does not tunnel the caller's TLS connection or forward its credentials: it terminates
//!   the caller's mTLS, decides, and calls the partner as itself.
//! - It does not judge whether a purpose is lawful: the privacy officers' policy files say
//!   which consumer may do what for which purpose; Doelpoort enforces and records that.
//! - It does not store payloads: the audit log holds lawful-basis metadata and JSON pointers,
//!   never a released value; a BSN is stored only as a keyed HMAC.
//! - It does not minimise XML/SOAP, compressed or streamed (unbounded) bodies: bodies are read
//!   whole within limits and must be JSON.
//! - It does not speak FSC's contract management or delegation (docs/fsc.md): contracts are
//!   configured as grant hashes. Replicas share spent approvals and the
//!   case register through the store; each instance keeps its own audit chain (in files, or
//!   side by side in PostgreSQL).
#![forbid(unsafe_code)]

pub mod admin;
pub mod assertion;
pub mod audit;
pub mod canonical;
pub mod cases;
pub mod cli;
pub mod clock;
pub mod config;
pub mod console;
pub mod context;
pub mod demo;
pub mod diagnostic;
pub mod exchange;
pub mod fsc;
pub mod headers;
pub mod id;
pub mod identity;
pub mod inway;
pub mod metrics;
pub mod minimise;
pub mod openapi;
pub mod pipeline;
pub mod pki;
pub mod policy;
pub mod problem;
pub mod route;
pub mod secrets;
pub mod server;
pub mod state;
pub mod store;
pub mod tls;
pub mod token;
pub mod trace;
pub mod upstream;
