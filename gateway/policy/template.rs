//! Partner path templates: `/v1/personen/{bsn}/inkomen`. A template matches a canonical path
//! (checked by `route`) segment by segment; `{name}` matches exactly one non-empty segment.

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    Param(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathTemplate {
    text: String,
    parts: Vec<Part>,
}

impl PathTemplate {
    pub fn parse(s: &str) -> Result<Self, String> {
        let expected = "expected a path template such as /v1/personen/{bsn}/inkomen";
        let rest = s
            .strip_prefix('/')
            .ok_or_else(|| format!("a path template starts with '/'; {expected}"))?;
        let mut parts = Vec::new();
        let mut names = std::collections::HashSet::new();
        for segment in rest.split('/') {
            if segment.is_empty() {
                return Err(format!("empty segment in '{s}'; {expected}"));
            }
            if let Some(name) = segment.strip_prefix('{').and_then(|x| x.strip_suffix('}')) {
                if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                {
                    return Err(format!("'{segment}' is not a parameter; {expected}"));
                }
                if !names.insert(name.to_string()) {
                    return Err(format!("parameter '{name}' appears twice"));
                }
                parts.push(Part::Param(name.to_string()));
            } else if segment.contains(['{', '}', '%', '?', '#']) {
                return Err(format!(
                    "'{segment}' is neither a literal segment nor a {{parameter}}"
                ));
            } else {
                parts.push(Part::Literal(segment.to_string()));
            }
        }
        Ok(Self {
            text: s.to_string(),
            parts,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    pub fn segment_count(&self) -> usize {
        self.parts.len()
    }

    pub fn params(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|p| match p {
            Part::Param(n) => Some(n.as_str()),
            Part::Literal(_) => None,
        })
    }

    /// Matches `path` (starting with '/'), returning the parameter values in order.
    pub fn matches<'p>(&self, path: &'p str) -> Option<Vec<(&str, &'p str)>> {
        let rest = path.strip_prefix('/')?;
        let mut params = Vec::new();
        let mut segments = rest.split('/');
        for part in &self.parts {
            let segment = segments.next()?;
            match part {
                Part::Literal(l) if l == segment => {}
                Part::Literal(_) => return None,
                Part::Param(_) if segment.is_empty() => return None,
                Part::Param(name) => params.push((name.as_str(), segment)),
            }
        }
        segments.next().is_none().then_some(params)
    }

    /// Whether some path could match both templates (then routing would be ambiguous).
    pub fn overlaps(&self, other: &PathTemplate) -> bool {
        self.parts.len() == other.parts.len()
            && self.parts.iter().zip(&other.parts).all(|pair| match pair {
                (Part::Literal(a), Part::Literal(b)) => a == b,
                _ => true,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_and_extracts() {
        let t = PathTemplate::parse("/v1/personen/{bsn}/inkomen").unwrap();
        assert_eq!(
            t.matches("/v1/personen/999990019/inkomen").unwrap(),
            [("bsn", "999990019")]
        );
        assert!(t.matches("/v1/personen/999990019/inkomen/x").is_none());
        assert!(t.matches("/v1/personen/999990019").is_none());
        assert!(t.matches("/v1/personen//inkomen").is_none());
        assert!(t.matches("/v2/personen/1/inkomen").is_none());
    }

    #[test]
    fn rejects_bad_templates() {
        for bad in [
            "v1/x",
            "/v1//x",
            "/v1/{}",
            "/v1/{a}/{a}",
            "/v1/x{y}",
            "/v1/%2f",
        ] {
            assert!(PathTemplate::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn overlap() {
        let a = PathTemplate::parse("/v1/personen/{bsn}/inkomen").unwrap();
        let b = PathTemplate::parse("/v1/personen/zoeken/inkomen").unwrap();
        let c = PathTemplate::parse("/v1/personen/{bsn}/uitkering").unwrap();
        assert!(a.overlaps(&b));
        assert!(!a.overlaps(&c));
    }
}
