//! Phase *route*: `/<partner>/<partner path>` → which partner, and the path to ask it for.
//!
//! The path must be in canonical form before anything is matched on it, because policies (a
//! later phase) grant operations by path template: `/uwv/v1/personen/{bsn}/inkomen` must not
//! be reachable as `/uwv/v1/personen/x/../../admin` or through `%2F`-encoded slashes. A path
//! that is not canonical is refused outright rather than normalised: a legitimate backend
//! system has no reason to send one, and normalising differently from the partner is how
//! proxies get bypassed.

use crate::problem::{Problem, ProblemCode};

/// The routing result: the partner id and the remaining path (starting with `/`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteTarget<'a> {
    pub partner: &'a str,
    pub path: &'a str,
}

/// Splits and checks the request path. Does not look the partner up.
pub fn split(path: &str) -> Result<RouteTarget<'_>, Problem> {
    check_canonical(path)?;
    let rest = &path[1..];
    let (partner, tail) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if partner.is_empty() {
        return Err(Problem::new(
            ProblemCode::UnknownRoute,
            "the path must start with a partner id: /<partner>/<path>",
        ));
    }
    Ok(RouteTarget {
        partner,
        path: tail,
    })
}

fn not_canonical(why: &'static str) -> Problem {
    Problem::new(
        ProblemCode::UnknownRoute,
        format!("the request path is not in canonical form: {why}"),
    )
}

fn check_canonical(path: &str) -> Result<(), Problem> {
    if !path.starts_with('/') {
        return Err(not_canonical("it must start with '/'"));
    }
    let bytes = path.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let decoded = bytes
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| not_canonical("malformed percent-encoding"))?;
                if matches!(decoded, b'/' | b'\\' | b'.' | b'%')
                    || decoded < 0x20
                    || decoded == 0x7f
                {
                    return Err(not_canonical(
                        "encoded '/', '\\', '.', '%' or control character",
                    ));
                }
                i += 3;
            }
            b'\\' => return Err(not_canonical("backslash")),
            b if b < 0x20 || b == 0x7f => return Err(not_canonical("control character")),
            _ => i += 1,
        }
    }
    for segment in path[1..].split('/') {
        match segment {
            "." | ".." => return Err(not_canonical("'.' or '..' segment")),
            "" => {}
            _ => {}
        }
    }
    if path.contains("//") {
        return Err(not_canonical("empty path segment"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_partner_and_path() {
        assert_eq!(
            split("/uwv/v1/personen/999990019/inkomen").unwrap(),
            RouteTarget {
                partner: "uwv",
                path: "/v1/personen/999990019/inkomen"
            }
        );
        assert_eq!(
            split("/uwv").unwrap(),
            RouteTarget {
                partner: "uwv",
                path: "/"
            }
        );
        assert_eq!(split("/uwv/").unwrap().path, "/");
    }

    #[test]
    fn refuses_non_canonical_paths() {
        for bad in [
            "/",
            "//uwv/x",
            "/uwv/v1/../admin",
            "/uwv/./v1",
            "/uwv/v1%2Fadmin",
            "/uwv/v1%2fadmin",
            "/uwv/%2e%2e/svb",
            "/uwv/v1%5cadmin",
            "/uwv/v1\\admin",
            "/uwv/v1%00",
            "/uwv/v1%zz",
            "/uwv/v1%2",
            "/uwv/v1//x",
            "uwv/v1",
            "/uwv/v1/..",
        ] {
            let err = split(bad).expect_err(bad);
            assert_eq!(err.code, ProblemCode::UnknownRoute, "{bad}");
        }
    }

    #[test]
    fn allows_harmless_encoding() {
        assert!(split("/uwv/v1/zoek%20term").is_ok());
    }
}
