//! Calls to the case register's API (`/doelpoort/…`, SPEC §8): read within the limits like
//! any request body, served by [`crate::cases::api`], and recorded in the audit chain like an
//! exchange (partner `doelpoort`, the register operation as its name, what changed).

use super::{admission, Outcome};
use crate::cases::api::{self, RegisterCall, RegisterFacts};
use crate::exchange::Exchange;
use crate::identity::{Connection, Consumer};
use crate::problem::{Problem, ProblemCode};
use crate::state::GatewayState;
use bytes::Bytes;

pub(super) async fn serve<B>(
    state: &GatewayState,
    connection: &Connection,
    exchange: &mut Exchange,
    consumer: &Consumer,
    parts: &http::request::Parts,
    path: &str,
    body: B,
) -> Outcome
where
    B: http_body::Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let mut facts = RegisterFacts::default();
    // The operation is known before anything else can fail, so even a refused call is
    // recorded as a register call.
    exchange.register_operation = Some("doelpoort/cases");
    let outcome = async {
        let policy = exchange.policy.clone().ok_or_else(|| {
            Problem::new(
                ProblemCode::NotGranted,
                "no valid policy set is loaded, so no case can be checked",
            )
        })?;
        let raw = admission::read_body(body, &parts.headers, &state.limits).await?;
        api::serve(
            &state.cases,
            &RegisterCall {
                consumer,
                connection,
                method: &parts.method,
                path,
                headers: &parts.headers,
                body: &raw,
                policy: &policy,
                tokens: state.tokens.as_deref(),
            },
            &mut facts,
        )
        .await
    }
    .await;
    if let Some(operation) = facts.operation {
        exchange.register_operation = Some(operation);
    }
    exchange.case_id = facts.case_id;
    exchange.actor = facts.actor;
    exchange.register_change = facts.change.filter(|_| outcome.is_ok());
    exchange.approvals = facts.approvals;
    outcome
}
