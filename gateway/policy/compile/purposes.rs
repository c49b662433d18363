//! Checking purposes: the legal basis, the processing activity and the special categories
//! a purpose may release, each with its legal exception.

use super::Compiler;
use crate::policy::model::RawPurpose;
use crate::policy::schema::SPECIAL_CATEGORIES;
use crate::policy::{header_text, LegalBasis, Purpose, PurposeHeaders};
use std::collections::BTreeMap;
use std::path::Path;

impl Compiler<'_> {
    pub(super) fn purpose(&mut self, file: &Path, p: &RawPurpose) -> Purpose {
        let legal_basis = match &p.legal_basis {
            Some(lb) => {
                let gdpr = lb
                    .gdpr
                    .value
                    .trim()
                    .trim_start_matches("art.")
                    .trim()
                    .to_string();
                let valid = ["a", "b", "c", "d", "e", "f"]
                    .iter()
                    .any(|l| gdpr == format!("6(1)({l})"));
                if !valid {
                    self.error(
                        file,
                        &lb.gdpr,
                        "expected a GDPR art. 6 ground written as 6(1)(a) … 6(1)(f)",
                    );
                } else if gdpr == "6(1)(a)" {
                    self.error(
                        file,
                        &lb.gdpr,
                        "consent (6(1)(a)) is not a valid basis between a government body and a citizen: the citizen depends on it (Wams explanatory memorandum §3.2.1); name the task or obligation (6(1)(e) or 6(1)(c)) and its law",
                    );
                } else if gdpr == "6(1)(f)" {
                    self.error(
                        file,
                        &lb.gdpr,
                        "legitimate interests (6(1)(f)) do not apply to a public body performing its tasks (GDPR art. 6(1), last sentence); name the task (6(1)(e)) and its law",
                    );
                } else if matches!(gdpr.as_str(), "6(1)(c)" | "6(1)(e)")
                    && lb.law.as_deref().is_none_or(|l| l.trim().is_empty())
                {
                    self.error(
                        file,
                        &lb.gdpr,
                        "a legal obligation or public task (6(1)(c), 6(1)(e)) needs the national law that lays it down (GDPR art. 6(3)): add law",
                    );
                }
                Some(LegalBasis {
                    gdpr,
                    law: lb.law.clone(),
                    article: lb.article.clone(),
                    note: lb.note.clone(),
                })
            }
            None => {
                if p.refused.is_none() {
                    self.error(
                        file,
                        &p.id,
                        "a purpose needs a legal_basis (gdpr ground and law)",
                    );
                }
                None
            }
        };
        let processing_activity = match &p.processing_activity {
            Some(uri) if uri.value.starts_with("https://") || uri.value.starts_with("urn:") => {
                Some(uri.value.clone())
            }
            Some(uri) => {
                self.error(file, uri, "a processing activity is a URI (https://… or urn:…) into the register of processing activities");
                None
            }
            None => {
                if p.refused.is_none() {
                    self.error(file, &p.id, "a purpose needs a processing_activity URI");
                }
                None
            }
        };
        let mut special_categories = BTreeMap::new();
        for (category, exception) in &p.special_categories {
            if !SPECIAL_CATEGORIES.contains(&category.value.as_str()) {
                self.error(
                    file,
                    category,
                    format!(
                        "'{}' is not a special category; expected one of {}",
                        category.value,
                        SPECIAL_CATEGORIES.join(", ")
                    ),
                );
            } else if exception.trim().is_empty() {
                self.error(
                    file,
                    category,
                    "name the legal exception that allows this category",
                );
            }
            special_categories.insert(category.value.clone(), exception.clone());
        }
        let legal_basis_text = legal_basis.as_ref().map(LegalBasis::summary);
        let header_values = PurposeHeaders {
            purpose: header_text(&p.id.value),
            legal_basis: legal_basis_text.as_deref().map(header_text),
            processing_activity: processing_activity.as_deref().map(header_text),
        };
        Purpose {
            header_values,
            legal_basis_text,
            id: p.id.value.clone(),
            title: p.title.clone(),
            legal_basis,
            processing_activity,
            special_categories,
            retention: p.retention.clone(),
            incompatible_with: p
                .incompatible_with
                .iter()
                .map(|s| s.value.clone())
                .collect(),
            refused: p.refused.clone(),
        }
    }
}
