//! Checking partner operations: method, path template, where the data subject is found and
//! the schemas their bodies are checked against.

use super::{suggestion, Compiler};
use crate::policy::fieldpath::FieldPath;
use crate::policy::model::{RawOperation, S};
use crate::policy::schema;
use crate::policy::template::PathTemplate;
use crate::policy::{Operation, SubjectSource};
use std::path::Path;

impl Compiler<'_> {
    pub(super) fn schema_ref(&mut self, file: &Path, name: &Option<S>) -> Option<String> {
        let name = name.as_ref()?;
        if self.schemas.get(&name.value).is_none() {
            let hint = suggestion(&name.value, self.schemas.names());
            self.error(
                file,
                name,
                format!("no schema '{}' in the schema directory{hint}", name.value),
            );
            return None;
        }
        Some(name.value.clone())
    }

    pub(super) fn operation(
        &mut self,
        file: &Path,
        partner: &str,
        raw: &RawOperation,
    ) -> Option<Operation> {
        let method = match raw.method.value.as_str() {
            "GET" => http::Method::GET,
            "POST" => http::Method::POST,
            "PUT" => http::Method::PUT,
            "PATCH" => http::Method::PATCH,
            "DELETE" => http::Method::DELETE,
            _ => {
                self.error(
                    file,
                    &raw.method,
                    "expected GET, POST, PUT, PATCH or DELETE",
                );
                return None;
            }
        };
        let template = match PathTemplate::parse(&raw.path.value) {
            Ok(t) => t,
            Err(e) => {
                self.error(file, &raw.path, e);
                return None;
            }
        };
        let words: Vec<&str> = raw.subject.value.split_whitespace().collect();
        let subject = match words.as_slice() {
            ["none"] => SubjectSource::None,
            ["path", param] if template.params().any(|p| p == *param) => {
                SubjectSource::Path((*param).to_string())
            }
            ["path", param] => {
                self.error(
                    file,
                    &raw.subject,
                    format!("the path template has no parameter '{{{param}}}'"),
                );
                return None;
            }
            ["body", field] => match FieldPath::parse(field) {
                Ok(f) => SubjectSource::Body(f),
                Err(e) => {
                    self.error(file, &raw.subject, e);
                    return None;
                }
            },
            _ => {
                self.error(
                    file,
                    &raw.subject,
                    "expected `path <parameter>`, `body <field>` or `none`",
                );
                return None;
            }
        };
        let response_schema = self.schema_ref(file, &raw.response_schema);
        let request_schema = self.schema_ref(file, &raw.request_schema);
        if let (SubjectSource::Body(field), Some(name)) = (&subject, &request_schema) {
            if let Some(schema) = self.schemas.get(name) {
                if schema::resolve(schema, field).is_none() {
                    self.error(
                        file,
                        &raw.subject,
                        format!("field '{field}' is not in {name}"),
                    );
                }
            }
        }
        Some(Operation {
            key: format!("{partner}/{}", raw.id.value),
            partner: partner.to_string(),
            id: raw.id.value.clone(),
            title: raw.title.clone(),
            method,
            template,
            subject,
            response_schema,
            request_schema,
        })
    }
}
