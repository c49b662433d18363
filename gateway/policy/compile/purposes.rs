//! Checking purposes: the legal basis, the processing activity and the special categories
//! a purpose may release, each with its legal exception.

use super::Compiler;
use crate::policy::model::{RawException, RawPurpose, RawRetention, S};
use crate::policy::schema::SPECIAL_CATEGORIES;
use crate::policy::{
    header_text, LegalBasis, Purpose, PurposeHeaders, RelativeDate, SpecialException,
};
use std::collections::BTreeMap;
use std::path::Path;

impl Compiler<'_> {
    pub(super) fn purpose(&mut self, file: &Path, p: &RawPurpose) -> Purpose {
        let legal_basis = match &p.legal_basis {
            Some(lb) => {
                let gdpr = gdpr_article(&lb.gdpr.value);
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
                continue;
            }
            if let Some(exception) = self.special_exception(file, category, exception) {
                special_categories.insert(category.value.clone(), exception);
            }
        }
        let (retention, retention_after_closure) = self.retention(file, p);
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
            retention,
            retention_after_closure,
            incompatible_with: p
                .incompatible_with
                .iter()
                .map(|s| s.value.clone())
                .collect(),
            refused: p.refused.clone(),
        }
    }
}

impl Compiler<'_> {
    /// A purpose's retention: the text for readers, and the term after closure where it is
    /// written as one (`after_closure: 1 year`). Whether a term is required depends on the
    /// grants (a registered case needs one); the grants check that.
    fn retention(&mut self, file: &Path, p: &RawPurpose) -> (Option<String>, Option<RelativeDate>) {
        match &p.retention {
            None => (None, None),
            Some(RawRetention::Text(text)) => (Some(text.trim().to_string()), None),
            Some(RawRetention::Structured(fields)) => {
                match RelativeDate::parse_term(&fields.after_closure.value) {
                    Ok(term) => {
                        let mut text =
                            format!("{} na afsluiting van de casus", term.describe_term());
                        if let Some(note) = &fields.note {
                            text.push_str(" (");
                            text.push_str(note.trim());
                            text.push(')');
                        }
                        (Some(text), Some(term))
                    }
                    Err(e) => {
                        self.error(file, &fields.after_closure, e);
                        // Kept as text: the purpose has a retention, only its term is unreadable
                        // (reported here, not again as missing).
                        (Some(fields.after_closure.value.clone()), None)
                    }
                }
            }
        }
    }

    /// Checks one special category's exception. Only a structured exception naming an article
    /// that fits the category and a national law is accepted: a text such as `ja` says nothing
    /// a reviewer (or the citizen asking on which ground) can check.
    fn special_exception(
        &mut self,
        file: &Path,
        category: &S,
        exception: &RawException,
    ) -> Option<SpecialException> {
        let fields = match exception {
            RawException::Structured(fields) => fields,
            RawException::Text(text) => {
                self.error(
                    file,
                    category,
                    format!(
                        "the exception for {} is the text {:?}; write it as a mapping with gdpr: {} and law: the national law that lays the exception down (article: and note: where you have them)",
                        category.value,
                        text.trim(),
                        expected_article(&category.value),
                    ),
                );
                return None;
            }
        };
        let gdpr = gdpr_article(&fields.gdpr.value);
        let mut sound = true;
        if let Some(problem) = article_problem(&category.value, &gdpr) {
            self.error(file, &fields.gdpr, problem);
            sound = false;
        }
        let law = fields.law.as_ref().map(|l| l.value.trim().to_string());
        match (&law, &fields.law) {
            (None, _) => {
                self.error(
                    file,
                    category,
                    format!(
                        "the exception for {} needs law: the national law that lays it down with its safeguards (GDPR art. {})",
                        category.value,
                        if gdpr == "10" { "10" } else { "9(2)" },
                    ),
                );
                sound = false;
            }
            (Some(text), Some(at)) if !names_a_national_law(text) => {
                self.error(
                    file,
                    at,
                    format!(
                        "{text:?} does not name a national law; write the law as the source names it (e.g. Jeugdwet, Wet gemeentelijke schuldhulpverlening), the GDPR itself is not one"
                    ),
                );
                sound = false;
            }
            _ => {}
        }
        sound.then(|| SpecialException {
            gdpr,
            law: law.unwrap_or_default(),
            article: fields.article.clone(),
            note: fields.note.clone(),
        })
    }
}

/// A GDPR article as written (`art. 6(1)(e)`, ` 10 `) in the form the checks compare.
fn gdpr_article(text: &str) -> String {
    text.trim().trim_start_matches("art.").trim().to_string()
}

/// How the GDPR article for a special category is written.
fn expected_article(category: &str) -> &'static str {
    if category == "health" {
        "9(2)(b) … 9(2)(j)"
    } else {
        "10"
    }
}

/// Why `gdpr` cannot be the exception for `category`, if it cannot.
fn article_problem(category: &str, gdpr: &str) -> Option<String> {
    let art9 = ["b", "c", "d", "e", "f", "g", "h", "i", "j"]
        .iter()
        .any(|l| gdpr == format!("9(2)({l})"));
    match category {
        "health" if gdpr == "9(2)(a)" => Some(
            "explicit consent (9(2)(a)) is no ground between a government body and a citizen who depends on it (Wams explanatory memorandum §3.2.1); name the exception in 9(2)(b) … 9(2)(j) and its law".into(),
        ),
        "health" if art9 => None,
        "health" if gdpr == "10" => Some(
            "art. 10 covers criminal convictions and offences; health data needs an exception in 9(2)(b) … 9(2)(j)".into(),
        ),
        "health" => Some(format!(
            "expected the GDPR art. 9 exception for health written as 9(2)(b) … 9(2)(j), found {gdpr:?}"
        )),
        _ if gdpr == "10" => None,
        _ if gdpr.starts_with("9(2)") => Some(format!(
            "{category} data (criminal convictions, offences, measures) falls under GDPR art. 10, not art. 9: write gdpr: 10 and the law that authorises it"
        )),
        _ => Some(format!(
            "expected the GDPR article for {category} data written as 10, found {gdpr:?}"
        )),
    }
}

/// A law's name: more than a yes, a placeholder or the GDPR itself. Deliberately lenient on
/// form (Jeugdwet, Wmo 2015, Uitvoeringswet AVG): the reviewer judges the law, the check
/// only refuses what cannot be one.
fn names_a_national_law(text: &str) -> bool {
    const NOT_A_LAW: &[&str] = &[
        "ja", "yes", "nee", "no", "true", "false", "ok", "akkoord", "nvt", "na", "todo", "tbd",
        "pm", "wet", "law",
    ];
    // Words that only point at the GDPR itself ("AVG art. 10", "GDPR 9(2)(h)").
    const GDPR_WORDS: &[&str] = &["avg", "gdpr", "art", "artikel", "article", "lid"];
    let lower = text.to_lowercase();
    let words: Vec<&str> = lower
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect();
    let squashed: String = words.concat();
    let only_gdpr = words
        .iter()
        .all(|w| GDPR_WORDS.contains(w) || w.len() == 1 || w.chars().all(|c| c.is_ascii_digit()));
    squashed.chars().count() >= 4 && !NOT_A_LAW.contains(&squashed.as_str()) && !only_gdpr
}

#[cfg(test)]
mod tests {
    use super::{article_problem, names_a_national_law};

    #[test]
    fn a_law_is_more_than_a_yes_or_the_gdpr() {
        for law in [
            "Jeugdwet",
            "Wmo 2015",
            "Uitvoeringswet AVG",
            "AVG-uitvoeringswet, art. 33",
            "Wet gemeentelijke schuldhulpverlening",
        ] {
            assert!(names_a_national_law(law), "{law}");
        }
        for not_law in [
            "ja",
            "JA.",
            "n.v.t.",
            "TODO",
            "",
            "  ",
            "AVG",
            "AVG art. 10",
            "gdpr 9(2)(h)",
            "wet",
        ] {
            assert!(!names_a_national_law(not_law), "{not_law:?}");
        }
    }

    #[test]
    fn the_article_fits_the_category() {
        assert!(article_problem("health", "9(2)(h)").is_none());
        assert!(article_problem("judicial", "10").is_none());
        assert!(article_problem("criminal", "10").is_none());
        for (category, gdpr) in [
            ("health", "9(2)(a)"),
            ("health", "10"),
            ("health", "ja"),
            ("judicial", "9(2)(h)"),
            ("criminal", "6(1)(e)"),
            ("judicial", ""),
        ] {
            assert!(
                article_problem(category, gdpr).is_some(),
                "{category} {gdpr}"
            );
        }
    }
}
