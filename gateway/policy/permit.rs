//! The [`Permit`]: proof that an exchange was decided and allowed. Its fields are private and
//! only the policy module builds one ([`super::decide::decide`]); forwarding needs one
//! ([`crate::upstream::UpstreamRequest::new`]), so a request that was not decided cannot reach
//! a partner.

use super::{Grant, Operation, Purpose};
use std::sync::Arc;

/// Proof that an exchange was decided and allowed. Only [`super::decide::decide`] constructs
/// it (its constructor is private to the policy module).
#[derive(Debug, Clone)]
pub struct Permit {
    grant: Arc<Grant>,
    operation: Arc<Operation>,
    purpose: Arc<Purpose>,
}

impl Permit {
    pub(super) fn new(grant: Arc<Grant>, operation: Arc<Operation>, purpose: Arc<Purpose>) -> Self {
        Self {
            grant,
            operation,
            purpose,
        }
    }

    pub fn grant(&self) -> &Arc<Grant> {
        &self.grant
    }
    pub fn operation(&self) -> &Arc<Operation> {
        &self.operation
    }
    pub fn purpose(&self) -> &Arc<Purpose> {
        &self.purpose
    }

    /// The query string with only the parameters the grant allows (in their original order).
    pub fn allowed_query(&self, query: Option<&str>) -> Option<String> {
        let query = query?;
        let kept: Vec<&str> = query
            .split('&')
            .filter(|pair| {
                let name = pair.split('=').next().unwrap_or_default();
                self.grant.query.iter().any(|q| q == name)
            })
            .collect();
        (!kept.is_empty()).then(|| kept.join("&"))
    }
}
