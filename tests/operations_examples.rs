//! The operators' examples in `docs/examples/` stay honest: every metric, label name and
//! enumerated label value that the Prometheus alert rules and the Grafana dashboard use is one
//! the gateway really exports (read from `Metrics::render()`, not from a list kept by hand);
//! every rule is complete; every exported metric is on the dashboard and every alert is
//! explained in docs/deployment.md; and the systemd unit and the Containerfile run the gateway
//! the way docs/operations.md describes.
//!
//! The PromQL reading is deliberately small and conservative: it tokenises an expression,
//! checks selectors `metric{label op "value"}`, the `by (…)` / `without (…)` clause of every
//! aggregation against the labels of the metrics it aggregates, `on (…)` / `ignoring (…)` /
//! `group_left (…)` against the labels of the whole expression, that `rate`/`increase` only
//! see counters or histogram series, and that `histogram_quantile` gets `_bucket` series.

use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

const ALERTS: &str = "docs/examples/prometheus-alerts.yaml";
const DASHBOARD: &str = "docs/examples/grafana-dashboard.json";
const UNIT: &str = "docs/examples/doelpoort.service";
const CONTAINERFILE: &str = "docs/examples/Containerfile";
const DEPLOYMENT: &str = "docs/deployment.md";

/// Alerts docs/deployment.md promises.
const REQUIRED_ALERTS: &[&str] = &[
    "DoelpoortCertificateExpiringSoon",
    "DoelpoortAuditFailures",
    "DoelpoortAuditQueueBacklog",
    "DoelpoortPolicyReloadFailed",
    "DoelpoortUpstreamErrorRatio",
    "DoelpoortHighLatencyP99",
    "DoelpoortDown",
];

/// Labels Prometheus attaches to every scraped series.
const TARGET_LABELS: &[&str] = &["job", "instance"];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

// ------------------------------------------------------------------------------------------
// What the gateway exports
// ------------------------------------------------------------------------------------------

#[derive(Debug, Default)]
struct Family {
    /// `counter`, `gauge` or `histogram` (from `# TYPE`).
    kind: String,
    /// Label names on the family's samples (`le` excluded).
    labels: BTreeSet<String>,
}

struct Exported {
    families: BTreeMap<String, Family>,
    /// Known values of enumerated labels, from the gateway's own enums and sources.
    values: BTreeMap<&'static str, BTreeSet<String>>,
}

/// A metric name as an expression may use it.
struct Series<'a> {
    family: &'a str,
    kind: &'a str,
    /// `_bucket` of a histogram: carries `le`.
    bucket: bool,
    /// A histogram's `_bucket`, `_sum` or `_count`: a counter-like series.
    histogram_part: bool,
}

impl Exported {
    fn read() -> Self {
        let m = doelpoort::metrics::Metrics::with_example_series();
        let text = String::from_utf8(m.render()).expect("exposition is UTF-8");

        let mut families: BTreeMap<String, Family> = BTreeMap::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').expect("# TYPE <name> <type>");
                families.entry(name.to_string()).or_default().kind = kind.to_string();
            }
        }
        for line in text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
        {
            let (name, labels) = match line.find('{') {
                Some(i) => (
                    &line[..i],
                    &line[i + 1..line.find('}').expect("closing brace")],
                ),
                None => (line.split_whitespace().next().unwrap_or_default(), ""),
            };
            let family = families
                .contains_key(name)
                .then_some(name)
                .or_else(|| {
                    ["_bucket", "_sum", "_count"]
                        .iter()
                        .find_map(|s| name.strip_suffix(s))
                        .filter(|base| families.contains_key(*base))
                })
                .unwrap_or_else(|| panic!("sample {line:?} belongs to no # TYPE family"));
            let entry = families.get_mut(family).expect("family");
            for pair in labels.split(',').filter(|p| !p.is_empty()) {
                let (label, _) = pair.split_once('=').expect("label=value");
                if label != "le" {
                    entry.labels.insert(label.to_string());
                }
            }
        }

        // Every metric gateway/metrics.rs defines must have an example series, or an example
        // using a new metric would be reported as using a metric that does not exist.
        let source = read("gateway/metrics.rs");
        for defined in metric_names(&source) {
            assert!(
                families.contains_key(&defined),
                "gateway/metrics.rs defines {defined}, but Metrics::with_example_series() gives \
                 it no series, so it is missing from the exposition this test reads"
            );
        }

        Self {
            families,
            values: enumerated_label_values(),
        }
    }

    fn series(&self, name: &str) -> Option<Series<'_>> {
        if let Some((family, f)) = self.families.get_key_value(name) {
            return Some(Series {
                family,
                kind: &f.kind,
                bucket: false,
                histogram_part: false,
            });
        }
        for suffix in ["_bucket", "_sum", "_count"] {
            if let Some(base) = name.strip_suffix(suffix) {
                if let Some((family, f)) = self.families.get_key_value(base) {
                    if f.kind == "histogram" {
                        return Some(Series {
                            family,
                            kind: &f.kind,
                            bucket: suffix == "_bucket",
                            histogram_part: true,
                        });
                    }
                }
            }
        }
        None
    }

    /// Label names a selector or grouping may use on this series.
    fn labels_of(&self, name: &str) -> BTreeSet<String> {
        let mut labels: BTreeSet<String> = TARGET_LABELS.iter().map(|s| s.to_string()).collect();
        if let Some(series) = self.series(name) {
            labels.extend(self.families[series.family].labels.iter().cloned());
            if series.bucket {
                labels.insert("le".into());
            }
        }
        labels
    }
}

/// `doelpoort_…` and `process_…` names (at a word boundary) in a text.
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for prefix in ["doelpoort_", "process_"] {
        names.extend(names_with(text, prefix));
    }
    names
}

fn names_with(text: &str, prefix: &str) -> BTreeSet<String> {
    let bytes = text.as_bytes();
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_' || b == b':';
    let mut names = BTreeSet::new();
    let mut from = 0;
    while let Some(i) = text[from..].find(prefix).map(|i| i + from) {
        let mut end = i + prefix.len();
        while end < bytes.len()
            && (bytes[end].is_ascii_lowercase()
                || bytes[end].is_ascii_digit()
                || bytes[end] == b'_')
        {
            end += 1;
        }
        let at_boundary = i == 0 || !word(bytes[i - 1]);
        if at_boundary && end > i + prefix.len() {
            names.insert(text[i..end].to_string());
        }
        from = end;
    }
    names
}

/// Values of the labels that take a fixed set of values. Taken from the gateway's enums where
/// it has them (an exhaustive `match` makes a new variant a compile error here); otherwise
/// checked to still occur as literals in the source that sets them.
fn enumerated_label_values() -> BTreeMap<&'static str, BTreeSet<String>> {
    use doelpoort::exchange::Decision;
    use doelpoort::tls::HandshakeFailure as Failure;
    use doelpoort::upstream::UpstreamErrorKind as Kind;

    let decisions = [Decision::Allow, Decision::Deny, Decision::Error];
    for d in decisions {
        match d {
            Decision::Allow | Decision::Deny | Decision::Error => {}
        }
    }
    let kinds = [
        Kind::Connect,
        Kind::Timeout,
        Kind::Protocol,
        Kind::TooLarge,
        Kind::Status,
        Kind::FscToken,
    ];
    for k in kinds {
        match k {
            Kind::Connect
            | Kind::Timeout
            | Kind::Protocol
            | Kind::TooLarge
            | Kind::Status
            | Kind::FscToken => {}
        }
    }
    let from_source = |file: &str, values: &[&str]| -> BTreeSet<String> {
        let source = read(file);
        for v in values {
            assert!(
                source.contains(&format!("\"{v}\"")),
                "{file} no longer sets the label value {v:?}: update enumerated_label_values()"
            );
        }
        values.iter().map(|v| v.to_string()).collect()
    };

    let mut values = BTreeMap::new();
    values.insert(
        "decision",
        decisions.iter().map(|d| d.as_str().to_string()).collect(),
    );
    values.insert(
        "kind",
        kinds.iter().map(|k| k.as_str().to_string()).collect(),
    );
    values.insert(
        "code",
        doelpoort::problem::ProblemCode::ALL
            .iter()
            .map(|c| c.as_str().to_string())
            .collect(),
    );
    values.insert(
        "result",
        from_source("gateway/policy/store.rs", &["ok", "failed"]),
    );
    let failures = [
        Failure::NoClientCertificate,
        Failure::CertificateExpired,
        Failure::CertificateRevoked,
        Failure::CertificateUntrusted,
        Failure::ProtocolVersion,
        Failure::Other,
    ];
    for f in failures {
        match f {
            Failure::NoClientCertificate
            | Failure::CertificateExpired
            | Failure::CertificateRevoked
            | Failure::CertificateUntrusted
            | Failure::ProtocolVersion
            | Failure::Other => {}
        }
    }
    let mut reasons: BTreeSet<String> = failures.iter().map(|f| f.as_str().to_string()).collect();
    reasons.extend(from_source("gateway/server.rs", &["timeout"]));
    values.insert("reason", reasons);
    values
}

// ------------------------------------------------------------------------------------------
// A small PromQL reader
// ------------------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Str(String),
    Num,
    /// `[…]`: a range or subquery; its content (durations, Grafana variables) is not read.
    Range,
    LParen,
    RParen,
    LBrace,
    RBrace,
    Comma,
    Op(String),
}

fn tokenize(expr: &str) -> Result<Vec<Tok>, String> {
    let chars: Vec<char> = expr.chars().collect();
    let mut toks = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            c if c.is_whitespace() => i += 1,
            '#' => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
            }
            '"' | '\'' | '`' => {
                let mut value = String::new();
                i += 1;
                loop {
                    match chars.get(i) {
                        None => return Err(format!("unterminated string {value:?}")),
                        Some(&q) if q == c => break,
                        Some('\\') if c != '`' => {
                            value.push(*chars.get(i + 1).ok_or("dangling backslash")?);
                            i += 2;
                        }
                        Some(&ch) => {
                            value.push(ch);
                            i += 1;
                        }
                    }
                }
                i += 1;
                toks.push(Tok::Str(value));
            }
            '[' => {
                let close = chars[i..]
                    .iter()
                    .position(|&ch| ch == ']')
                    .ok_or("unterminated [")?;
                i += close + 1;
                toks.push(Tok::Range);
            }
            ']' => return Err("] without [".into()),
            '(' => {
                toks.push(Tok::LParen);
                i += 1;
            }
            ')' => {
                toks.push(Tok::RParen);
                i += 1;
            }
            '{' => {
                toks.push(Tok::LBrace);
                i += 1;
            }
            '}' => {
                toks.push(Tok::RBrace);
                i += 1;
            }
            ',' => {
                toks.push(Tok::Comma);
                i += 1;
            }
            c if c.is_ascii_alphabetic() || c == '_' || c == ':' || c == '$' => {
                let start = i;
                i += 1;
                while i < chars.len()
                    && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == ':')
                {
                    i += 1;
                }
                toks.push(Tok::Ident(chars[start..i].iter().collect()));
            }
            c if c.is_ascii_digit()
                || (c == '.' && chars.get(i + 1).is_some_and(char::is_ascii_digit)) =>
            {
                while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                    i += 1;
                }
                toks.push(Tok::Num);
            }
            _ => {
                let start = i;
                while i < chars.len() && "=!<>~+-*/%^@".contains(chars[i]) {
                    i += 1;
                }
                if i == start {
                    return Err(format!("unexpected character {c:?}"));
                }
                toks.push(Tok::Op(chars[start..i].iter().collect()));
            }
        }
    }
    Ok(toks)
}

/// Index of the token closing the group opened at `open` (a `(` or `{`).
fn closing(toks: &[Tok], open: usize) -> Option<usize> {
    let (o, c) = match toks[open] {
        Tok::LParen => (Tok::LParen, Tok::RParen),
        Tok::LBrace => (Tok::LBrace, Tok::RBrace),
        _ => return None,
    };
    let mut depth = 0usize;
    for (i, t) in toks.iter().enumerate().skip(open) {
        if *t == o {
            depth += 1;
        } else if *t == c {
            depth -= 1;
            if depth == 0 {
                return Some(i);
            }
        }
    }
    None
}

/// Index of the `(` that the `)` at `close` closes.
fn opening(toks: &[Tok], close: usize) -> Option<usize> {
    let mut depth = 0usize;
    for i in (0..=close).rev() {
        match toks[i] {
            Tok::RParen => depth += 1,
            Tok::LParen => {
                depth -= 1;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
    }
    None
}

/// `( ident, ident, … )` starting at `open`: the names and the index of the `)`.
fn label_list(toks: &[Tok], open: usize) -> Result<(Vec<String>, usize), String> {
    let close = closing(toks, open).ok_or("unbalanced label list")?;
    let mut labels = Vec::new();
    for (n, t) in toks[open + 1..close].iter().enumerate() {
        match (n % 2, t) {
            (0, Tok::Ident(l)) => labels.push(l.clone()),
            (1, Tok::Comma) => {}
            _ => return Err(format!("cannot read label list at token {t:?}")),
        }
    }
    Ok((labels, close))
}

/// Everything wrong with one expression, as messages.
fn check_expr(exported: &Exported, expr: &str) -> Vec<String> {
    let mut problems = Vec::new();
    for name in metric_names(expr) {
        if exported.series(&name).is_none() {
            problems.push(format!(
                "uses {name}, which the gateway does not export (exported: {})",
                exported
                    .families
                    .keys()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
    }
    let toks = match tokenize(expr) {
        Ok(t) => t,
        Err(e) => {
            problems.push(format!("cannot tokenise: {e}"));
            return problems;
        }
    };
    let (parens, braces) = toks.iter().fold((0i32, 0i32), |(p, b), t| match t {
        Tok::LParen => (p + 1, b),
        Tok::RParen => (p - 1, b),
        Tok::LBrace => (p, b + 1),
        Tok::RBrace => (p, b - 1),
        _ => (p, b),
    });
    if parens != 0 || braces != 0 {
        problems.push("unbalanced parentheses or braces".into());
        return problems;
    }

    let is_ours = |t: &Tok| matches!(t, Tok::Ident(n) if exported.series(n).is_some());
    let labels_in = |range: &[Tok]| -> (BTreeSet<String>, usize) {
        let mut labels: BTreeSet<String> = TARGET_LABELS.iter().map(|s| s.to_string()).collect();
        let mut ours = 0;
        for t in range {
            if let Tok::Ident(n) = t {
                if exported.series(n).is_some() {
                    labels.extend(exported.labels_of(n));
                    ours += 1;
                }
            }
        }
        (labels, ours)
    };

    for (i, tok) in toks.iter().enumerate() {
        let Tok::Ident(ident) = tok else { continue };
        let next_is = |t: Tok| toks.get(i + 1) == Some(&t);

        // metric{label op "value", …}
        if is_ours(tok) && next_is(Tok::LBrace) {
            let allowed = exported.labels_of(ident);
            let close = closing(&toks, i + 1).expect("balanced");
            let inner = &toks[i + 2..close];
            for matcher in inner.split(|t| *t == Tok::Comma) {
                let [Tok::Ident(label), Tok::Op(op), Tok::Str(value)] = matcher else {
                    problems.push(format!("cannot read the matcher {matcher:?} on {ident}"));
                    continue;
                };
                if !allowed.contains(label) {
                    problems.push(format!(
                        "selects {ident} by label {label:?}, which it does not have (it has: {})",
                        join(&allowed)
                    ));
                    continue;
                }
                let Some(known) = exported.values.get(label.as_str()) else {
                    continue;
                };
                if value.contains('$') {
                    continue; // a Grafana variable
                }
                let alternatives: Vec<&str> = match op.as_str() {
                    "=" | "!=" => vec![value.as_str()],
                    "=~" | "!~"
                        if value
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || "_-|".contains(c)) =>
                    {
                        value.split('|').collect()
                    }
                    _ => vec![],
                };
                for v in alternatives {
                    if !known.contains(v) {
                        problems.push(format!(
                            "matches {ident}{{{label}{op}{value:?}}}, but the gateway never sets \
                             {label}={v:?} (it sets: {})",
                            join(known)
                        ));
                    }
                }
            }
        }

        // sum by (…) (expr)  |  sum (expr) by (…)  |  … without (…)
        if (ident == "by" || ident == "without") && next_is(Tok::LParen) {
            let (labels, close) = match label_list(&toks, i + 1) {
                Ok(x) => x,
                Err(e) => {
                    problems.push(format!("{ident} clause: {e}"));
                    continue;
                }
            };
            let scope: &[Tok] = if toks.get(close + 1) == Some(&Tok::LParen) {
                &toks[close + 1..=closing(&toks, close + 1).expect("balanced")]
            } else if i > 0 && toks[i - 1] == Tok::RParen {
                &toks[opening(&toks, i - 1).expect("balanced")..i]
            } else {
                &toks[..]
            };
            let (allowed, ours) = labels_in(scope);
            for l in labels {
                if !allowed.contains(&l) {
                    problems.push(format!(
                        "groups {ident} ({l}), a label {} (available: {})",
                        if ours == 0 {
                            "of no doelpoort metric".to_string()
                        } else {
                            "the aggregated metrics do not have".to_string()
                        },
                        join(&allowed)
                    ));
                }
            }
        }

        // a binary operation's vector matching
        if ["on", "ignoring", "group_left", "group_right"].contains(&ident.as_str())
            && next_is(Tok::LParen)
        {
            let (labels, _) = match label_list(&toks, i + 1) {
                Ok(x) => x,
                Err(e) => {
                    problems.push(format!("{ident} clause: {e}"));
                    continue;
                }
            };
            let (allowed, _) = labels_in(&toks);
            for l in labels {
                if !allowed.contains(&l) {
                    problems.push(format!(
                        "matches {ident} ({l}), a label no metric in the expression has (available: {})",
                        join(&allowed)
                    ));
                }
            }
        }

        // rate/increase over counters; histogram_quantile over buckets
        if next_is(Tok::LParen) {
            let close = closing(&toks, i + 1).expect("balanced");
            let args = &toks[i + 2..close];
            let ours: Vec<Series<'_>> = args
                .iter()
                .filter_map(|t| match t {
                    Tok::Ident(n) => exported.series(n),
                    _ => None,
                })
                .collect();
            match ident.as_str() {
                "rate" | "irate" | "increase" => {
                    for s in ours
                        .iter()
                        .filter(|s| s.kind != "counter" && !s.histogram_part)
                    {
                        problems.push(format!(
                            "applies {ident}() to {}, a {} (only counters and histogram \
                             _bucket/_sum/_count series)",
                            s.family, s.kind
                        ));
                    }
                }
                "histogram_quantile" if !ours.iter().any(|s| s.bucket) => {
                    problems.push(
                        "histogram_quantile() over no doelpoort histogram _bucket series".into(),
                    );
                }
                "label_values" => {
                    // Grafana: label_values(metric{…}, label)
                    if let (Some(Tok::Ident(metric)), Some(Tok::Ident(label))) =
                        (args.first(), args.last())
                    {
                        let allowed = exported.labels_of(metric);
                        if is_ours(&args[0]) && !allowed.contains(label) {
                            problems.push(format!(
                                "label_values of {label:?}, a label {metric} does not have"
                            ));
                        }
                    }
                }
                _ => {}
            }
        }
    }
    problems
}

fn join(set: &BTreeSet<String>) -> String {
    set.iter().cloned().collect::<Vec<_>>().join(", ")
}

/// Asserts no expression has problems, naming the file, the place and the expression.
fn assert_exprs(exported: &Exported, file: &str, exprs: &[(String, String)]) {
    let mut report = Vec::new();
    for (place, expr) in exprs {
        for p in check_expr(exported, expr) {
            report.push(format!("{file}: {place}: {p}\n    expr: {}", expr.trim()));
        }
    }
    assert!(report.is_empty(), "\n{}", report.join("\n"));
}

// ------------------------------------------------------------------------------------------
// The files
// ------------------------------------------------------------------------------------------

/// The rules of the alert file, as (alert name, rule).
fn alert_rules() -> Vec<(String, Value)> {
    let text = read(ALERTS);
    let doc: Value =
        serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{ALERTS} is not YAML: {e}"));
    let groups = doc["groups"]
        .as_array()
        .unwrap_or_else(|| panic!("{ALERTS}: no `groups:` list"));
    assert!(!groups.is_empty(), "{ALERTS}: `groups:` is empty");
    let mut rules = Vec::new();
    for (g, group) in groups.iter().enumerate() {
        let gname = group["name"]
            .as_str()
            .unwrap_or_else(|| panic!("{ALERTS}: group {g} has no name"));
        let list = group["rules"]
            .as_array()
            .unwrap_or_else(|| panic!("{ALERTS}: group {gname} has no `rules:` list"));
        for (r, rule) in list.iter().enumerate() {
            let name = rule["alert"]
                .as_str()
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| panic!("{ALERTS}: group {gname} rule {r} has no `alert:`"))
                .to_string();
            rules.push((name, rule.clone()));
        }
    }
    rules
}

fn is_duration(s: &str) -> bool {
    // Prometheus durations: one or more <number><unit>, e.g. 0s, 5m, 1h30m.
    let mut rest = s;
    if rest.is_empty() {
        return false;
    }
    while !rest.is_empty() {
        let digits = rest.chars().take_while(char::is_ascii_digit).count();
        if digits == 0 {
            return false;
        }
        rest = &rest[digits..];
        let Some(unit) = ["ms", "s", "m", "h", "d", "w", "y"]
            .into_iter()
            .find(|u| rest.starts_with(u))
        else {
            return false;
        };
        rest = &rest[unit.len()..];
    }
    true
}

#[test]
fn every_alert_rule_is_complete_and_the_required_ones_exist() {
    let rules = alert_rules();
    let mut problems = Vec::new();
    let mut seen = BTreeSet::new();
    for (name, rule) in &rules {
        if !seen.insert(name.clone()) {
            problems.push(format!("{ALERTS}: alert {name} is defined twice"));
        }
        if rule["expr"].as_str().is_none_or(|e| e.trim().is_empty()) {
            problems.push(format!("{ALERTS}: alert {name} has no `expr:`"));
        }
        match rule["for"].as_str() {
            Some(d) if is_duration(d) => {}
            other => problems.push(format!(
                "{ALERTS}: alert {name} needs `for:` as a Prometheus duration, has {other:?}"
            )),
        }
        match rule["labels"]["severity"].as_str() {
            Some("critical" | "warning") => {}
            other => problems.push(format!(
                "{ALERTS}: alert {name} needs labels.severity critical or warning, has {other:?}"
            )),
        }
        for field in ["summary", "description"] {
            if rule["annotations"][field]
                .as_str()
                .is_none_or(|s| s.trim().is_empty())
            {
                problems.push(format!("{ALERTS}: alert {name} has no annotations.{field}"));
            }
        }
    }
    for required in REQUIRED_ALERTS {
        if !seen.contains(*required) {
            problems.push(format!("{ALERTS}: the alert {required} is missing"));
        }
    }
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}

#[test]
fn alert_expressions_use_only_exported_metrics_labels_and_values() {
    let exported = Exported::read();
    let exprs: Vec<(String, String)> = alert_rules()
        .into_iter()
        .map(|(name, rule)| {
            let expr = rule["expr"].as_str().unwrap_or_default().to_string();
            (format!("alert {name}"), expr)
        })
        .collect();
    assert_exprs(&exported, ALERTS, &exprs);
}

/// Every `expr` in the dashboard (recursively), and every templating query, with a path.
fn dashboard_exprs(dashboard: &Value) -> Vec<(String, String)> {
    fn walk(v: &Value, path: &str, out: &mut Vec<(String, String)>) {
        match v {
            Value::Object(map) => {
                for (k, child) in map {
                    let here = match map.get("title").and_then(Value::as_str) {
                        Some(title) if path.ends_with(']') => format!("{path} \"{title}\""),
                        _ => path.to_string(),
                    };
                    let child_path = format!("{here}.{k}");
                    match (k.as_str(), child) {
                        ("expr", Value::String(s)) => out.push((child_path, s.clone())),
                        ("query" | "definition", Value::String(s)) if s.contains('(') => {
                            out.push((child_path, s.clone()))
                        }
                        _ => walk(child, &child_path, out),
                    }
                }
            }
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    walk(item, &format!("{path}[{i}]"), out);
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(dashboard, "", &mut out);
    out
}

fn dashboard() -> Value {
    serde_json::from_str(&read(DASHBOARD))
        .unwrap_or_else(|e| panic!("{DASHBOARD} is not JSON: {e}"))
}

#[test]
fn dashboard_expressions_use_only_exported_metrics_labels_and_values() {
    let exported = Exported::read();
    let exprs = dashboard_exprs(&dashboard());
    assert!(
        exprs.iter().filter(|(p, _)| p.ends_with(".expr")).count() >= 10,
        "{DASHBOARD}: found too few `expr` fields ({}); is the panel structure still read?",
        exprs.len()
    );
    assert_exprs(&exported, DASHBOARD, &exprs);
}

#[test]
fn dashboard_is_importable_and_shows_every_exported_metric() {
    let d = dashboard();
    assert!(
        d["schemaVersion"].as_u64().is_some_and(|v| v >= 36),
        "{DASHBOARD}: schemaVersion missing or older than 36"
    );
    assert!(
        d["title"].as_str().is_some() && d["uid"].as_str().is_some(),
        "{DASHBOARD}: needs a title and a uid"
    );
    let variables = d["templating"]["list"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(
        variables
            .iter()
            .any(|v| v["name"] == "DS_PROMETHEUS" && v["type"] == "datasource"),
        "{DASHBOARD}: needs a datasource variable DS_PROMETHEUS"
    );

    let mut problems = Vec::new();
    let mut ids = BTreeSet::new();
    let mut panels: Vec<&Value> = Vec::new();
    for p in d["panels"].as_array().expect("panels") {
        panels.push(p);
        panels.extend(p["panels"].as_array().into_iter().flatten());
    }
    for p in &panels {
        let title = p["title"].as_str().unwrap_or("(untitled)");
        if !p["id"].as_u64().is_some_and(|id| ids.insert(id)) {
            problems.push(format!(
                "{DASHBOARD}: panel {title:?} has no id or a duplicate id"
            ));
        }
        if p["type"] == "row" {
            continue;
        }
        if p["datasource"]["uid"] != "${DS_PROMETHEUS}" {
            problems.push(format!(
                "{DASHBOARD}: panel {title:?} does not use the ${{DS_PROMETHEUS}} datasource"
            ));
        }
        let targets = p["targets"].as_array().cloned().unwrap_or_default();
        if targets.is_empty()
            || targets
                .iter()
                .any(|t| t["expr"].as_str().is_none_or(|e| e.trim().is_empty()))
        {
            problems.push(format!(
                "{DASHBOARD}: panel {title:?} needs targets, each with an expr"
            ));
        }
    }

    // A new metric needs a panel: operators learn about metrics from the dashboard.
    let exported = Exported::read();
    let used: BTreeSet<String> = dashboard_exprs(&d)
        .iter()
        .flat_map(|(_, e)| metric_names(e))
        .filter_map(|n| exported.series(&n).map(|s| s.family.to_string()))
        .collect();
    for family in exported.families.keys() {
        if !used.contains(family) {
            problems.push(format!("{DASHBOARD}: no panel shows {family}"));
        }
    }
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}

#[test]
fn deployment_guide_explains_every_alert() {
    let guide = read(DEPLOYMENT);
    let missing: Vec<String> = alert_rules()
        .into_iter()
        .map(|(name, _)| name)
        .filter(|name| !guide.contains(name.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "{DEPLOYMENT} does not explain the alerts {missing:?} of {ALERTS}"
    );
    for example in [ALERTS, DASHBOARD, UNIT, CONTAINERFILE] {
        let file = example.rsplit('/').next().expect("file name");
        assert!(
            guide.contains(&format!("examples/{file}")),
            "{DEPLOYMENT} does not link {example}"
        );
    }
}

/// `Key=value` lines of a unit file.
fn unit_values<'a>(unit: &'a str, key: &str) -> Vec<&'a str> {
    unit.lines()
        .filter_map(|l| l.trim().strip_prefix(key)?.strip_prefix('='))
        .collect()
}

#[test]
fn systemd_unit_runs_reloads_and_stops_the_gateway_as_documented() {
    let unit = read(UNIT);
    let grace = doelpoort::config::Limits::default().shutdown_grace;

    let start = unit_values(&unit, "ExecStart");
    assert!(
        start.len() == 1 && start[0].contains(" run --config "),
        "{UNIT}: needs one ExecStart= with `run --config FILE`, has {start:?}"
    );
    let reload = unit_values(&unit, "ExecReload");
    assert!(
        reload.len() == 1 && reload[0].contains("-HUP"),
        "{UNIT}: needs ExecReload= sending SIGHUP (policy reload), has {reload:?}"
    );
    assert_eq!(
        unit_values(&unit, "KillSignal"),
        ["SIGTERM"],
        "{UNIT}: the gateway drains on SIGTERM"
    );
    let stop = unit_values(&unit, "TimeoutStopSec");
    let stop = stop
        .first()
        .and_then(|s| humantime::parse_duration(s).ok())
        .unwrap_or_else(|| panic!("{UNIT}: needs TimeoutStopSec= as a duration"));
    assert!(
        stop > grace,
        "{UNIT}: TimeoutStopSec={stop:?} must exceed the default shutdown grace {grace:?}, or \
         systemd kills the gateway while it drains"
    );
    for (key, value) in [
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("ReadWritePaths", "/var/lib/doelpoort"),
        ("CapabilityBoundingSet", ""),
        ("User", "doelpoort"),
    ] {
        assert_eq!(
            unit_values(&unit, key),
            [value],
            "{UNIT}: expected exactly {key}={value}"
        );
    }
}

#[test]
fn containerfile_builds_locked_and_runs_unprivileged() {
    let file = read(CONTAINERFILE);
    assert!(
        file.contains("cargo build --release --locked"),
        "{CONTAINERFILE}: must build with `cargo build --release --locked`"
    );
    let manifest = read("Cargo.toml");
    let msrv = manifest
        .lines()
        .find_map(|l| l.strip_prefix("rust-version = "))
        .map(|v| v.trim_matches('"'))
        .expect("rust-version in Cargo.toml");
    assert!(
        file.contains(&format!("rust:{msrv}-")),
        "{CONTAINERFILE}: the build image should be the rust-version of Cargo.toml ({msrv})"
    );
    let user = file
        .lines()
        .filter_map(|l| l.strip_prefix("USER "))
        .next_back()
        .unwrap_or_else(|| panic!("{CONTAINERFILE}: no USER: the gateway would run as root"));
    assert!(
        !user.starts_with("root") && !user.starts_with("0"),
        "{CONTAINERFILE}: USER {user} is root"
    );
    let command = file
        .lines()
        .filter(|l| l.starts_with("ENTRYPOINT") || l.starts_with("CMD"))
        .collect::<Vec<_>>()
        .join(" ");
    for part in ["\"run\"", "\"--config\"", "/etc/doelpoort/doelpoort.yaml"] {
        assert!(
            command.contains(part),
            "{CONTAINERFILE}: ENTRYPOINT/CMD should run `doelpoort run --config \
             /etc/doelpoort/doelpoort.yaml`, lacks {part}"
        );
    }
    let stop = file
        .split("--stop-timeout=")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|s| s.parse::<u64>().ok())
        .map(Duration::from_secs)
        .unwrap_or_else(|| panic!("{CONTAINERFILE}: the run example needs --stop-timeout="));
    let grace = doelpoort::config::Limits::default().shutdown_grace;
    assert!(
        stop > grace,
        "{CONTAINERFILE}: --stop-timeout must exceed the default shutdown grace {grace:?}"
    );
}

#[test]
fn the_reader_itself_catches_what_it_should() {
    // Guards against a reader that silently accepts everything.
    let exported = Exported::read();
    let bad = [
        "rate(doelpoort_requests{job=\"x\"}[5m])",
        "sum by (reason) (rate(doelpoort_requests_total[5m]))",
        "sum(rate(doelpoort_requests_total[5m])) by (kind)",
        "doelpoort_requests_total{decisoin=\"allow\"}",
        "doelpoort_requests_total{decision=\"denied\"}",
        "doelpoort_policy_reloads_total{result=~\"ok|failure\"}",
        "rate(doelpoort_audit_queue_depth[5m])",
        "histogram_quantile(0.99, sum by (le) (rate(doelpoort_request_duration_seconds_count[5m])))",
        "sum by (partner, le) (rate(doelpoort_upstream_duration_seconds_count[5m]))",
        "up == 1 unless on (job, version) doelpoort_connections_active",
        "sum(rate(doelpoort_requests_total[5m])",
    ];
    for expr in bad {
        assert!(
            !check_expr(&exported, expr).is_empty(),
            "the reader accepted {expr}"
        );
    }
    let good = [
        "sum by (partner, le) (rate(doelpoort_upstream_duration_seconds_bucket{job=\"$job\"}[$__rate_interval]))",
        "count by (job) (count by (job, version) (doelpoort_policy_info))",
        "(up{job=\"doelpoort\"} == 1) unless on (job, instance) (doelpoort_policy_info == 1)",
        "doelpoort_tls_handshake_failures_total{reason=~\"certificate_expired|timeout\"}",
    ];
    for expr in good {
        assert_eq!(
            check_expr(&exported, expr),
            Vec::<String>::new(),
            "the reader refused {expr}"
        );
    }
}
