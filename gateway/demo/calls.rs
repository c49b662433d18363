//! The calls `doelpoort demo` prints: ready to paste, each with the answer it gets (the demo's
//! tests run every one of them).

use std::net::SocketAddr;
use std::path::Path;

/// One call the demo prints: what it shows, the curl command, and what it answers.
pub struct ExampleCall {
    pub title: &'static str,
    pub command: String,
    /// Expected HTTP status and, for refusals, the problem code.
    pub expect: (u16, Option<&'static str>),
}

/// The ready-to-paste calls the demo prints.
pub fn example_calls(root: &Path, gateway: SocketAddr) -> Vec<ExampleCall> {
    let certs = root.join("certs-example");
    let certs = certs.display();
    let base = if gateway.ip().is_loopback() {
        format!("https://localhost:{}", gateway.port())
    } else {
        format!("https://{gateway}")
    };
    let curl = |consumer: &str| {
        format!(
            "curl --cacert {certs}/ca.crt --cert {certs}/clients/{consumer}.crt --key {certs}/clients/{consumer}.key"
        )
    };
    let ctx = |purpose: &str, case: &str, bsn: &str| {
        format!(
            "-H 'Doelbinding-Purpose: {purpose}' -H 'Doelbinding-Case-Id: {case}' -H 'Doelbinding-Data-Subject: bsn={bsn}' -H 'Doelbinding-Actor: medewerker-0042'"
        )
    };
    let time_out_body = format!(
        r#"{{"bsn":"999990019","vorderingen":[{{"vordering_id":"CJIB-2026-000123","categorie":"verkeersboete"}}],"einddatum":"{}","reden":"schuldhulpverlening gestart"}}"#,
        crate::policy::RelativeDate { days: 0, months: 3 }.resolve(crate::policy::today())
    );
    vec![
        ExampleCall {
            title: "Income at UWV for the Rotterdam district team's investigation (wams-onderzoek)",
            command: format!(
                "{} {} {base}/uwv/v1/personen/999990019/inkomen",
                curl("wijkteam-rotterdam"),
                ctx("wams-onderzoek", "casus-2026-0001", "999990019")
            ),
            expect: (200, None),
        },
        ExampleCall {
            title: "Child benefit at SVB, same team and purpose",
            command: format!(
                "{} {} {base}/svb/v1/personen/999990019/kinderbijslag",
                curl("wijkteam-rotterdam"),
                ctx("wams-onderzoek", "casus-2026-0001", "999990019")
            ),
            expect: (200, None),
        },
        ExampleCall {
            title: "Claims at CJIB for Utrecht debt counselling (schuldhulpverlening)",
            command: format!(
                "{} {} {base}/cjib/v1/personen/999990019/vorderingen",
                curl("schuldhulp-utrecht"),
                ctx("schuldhulpverlening", "shv-2026-0042", "999990019")
            ),
            expect: (200, None),
        },
        ExampleCall {
            title: "The same claims for the district team's investigation: no grant for that purpose",
            command: format!(
                "{} {} {base}/cjib/v1/personen/999990019/vorderingen",
                curl("wijkteam-rotterdam"),
                ctx("wams-onderzoek", "casus-2026-0001", "999990019")
            ),
            expect: (403, Some("not-granted")),
        },
        ExampleCall {
            title: "Another person than the one declared: no fishing",
            command: format!(
                "{} {} {base}/uwv/v1/personen/999990020/inkomen",
                curl("wijkteam-rotterdam"),
                ctx("wams-onderzoek", "casus-2026-0001", "999990019")
            ),
            expect: (403, Some("subject-mismatch")),
        },
        ExampleCall {
            title: "A time-out at CJIB within the rules, but without a team leader's approval",
            command: format!(
                "{} {} -H 'Doelbinding-Case-Partners: uwv, cjib' -H 'Content-Type: application/json' -d '{time_out_body}' {base}/cjib/v1/opschortingen",
                curl("schuldhulp-utrecht"),
                ctx("time-out", "shv-2026-0042", "999990019")
            ),
            expect: (403, Some("four-eyes-required")),
        },
        ExampleCall {
            title: "The same time-out, approved by a team leader in a signed token of the demo identity provider",
            command: format!(
                "{} {} -H 'Doelbinding-Case-Partners: uwv, cjib' -H \"Authorization: Bearer $({} token --root {} --consumer schuldhulp-utrecht --actor medewerker-0042 --purpose time-out --case shv-2026-0042 --subject 999990019 --case-partners uwv,cjib --approved-by teamleider-0007 --operation cjib/opschorting --body '{time_out_body}')\" -H 'Content-Type: application/json' -d '{time_out_body}' {base}/cjib/v1/opschortingen",
                curl("schuldhulp-utrecht"),
                ctx("time-out", "shv-2026-0042", "999990019"),
                doelpoort_command(),
                shell_path(root),
            ),
            expect: (201, None),
        },
        ExampleCall {
            title: "A person outside the household of the case (case register)",
            command: format!(
                "{} {} {base}/uwv/v1/personen/999990020/inkomen",
                curl("wijkteam-rotterdam"),
                ctx("wams-onderzoek", "casus-2026-0001", "999990020")
            ),
            expect: (403, Some("not-in-household")),
        },
        ExampleCall {
            title: "A case that has been closed",
            command: format!(
                "{} {} {base}/uwv/v1/personen/999990019/inkomen",
                curl("wijkteam-rotterdam"),
                ctx("wams-onderzoek", "casus-2026-0002", "999990019")
            ),
            expect: (403, Some("case-closed")),
        },
        ExampleCall {
            title: "Youth care, which the client of casus-2026-0003 did not agree to involve",
            command: format!(
                "{} {} {base}/jeugdhulp/v1/jeugdigen/999990019/trajecten",
                curl("wijkteam-rotterdam"),
                ctx("wams-coordinatie", "casus-2026-0003", "999990019")
            ),
            expect: (403, Some("outside-case-scope")),
        },
        ExampleCall {
            title: "A motivated override for youth care (serious problems), approved by two colleagues",
            command: format!(
                "{} -H 'Doelbinding-Actor: medewerker-0042' -H 'Content-Type: application/json' -d \"{{\\\"partner\\\":\\\"jeugdhulp\\\",\\\"reason\\\":\\\"ernstige zorgen over de veiligheid van de kinderen\\\",\\\"approvals\\\":\\\"$({} token --root {} --consumer wijkteam-rotterdam --actor medewerker-0042 --case casus-2026-0003 --approved-by teamleider-0007,gedragswetenschapper-0003 --operation doelpoort/case-override --body '{{\"partner\":\"jeugdhulp\",\"reason\":\"ernstige zorgen over de veiligheid van de kinderen\"}}')\\\"}}\" {base}/doelpoort/v1/cases/casus-2026-0003/overrides",
                curl("wijkteam-rotterdam"),
                doelpoort_command(),
                shell_path(root),
            ),
            expect: (201, None),
        },
        ExampleCall {
            title: "Youth care for casus-2026-0003 again, now within the override",
            command: format!(
                "{} {} {base}/jeugdhulp/v1/jeugdigen/999990019/trajecten",
                curl("wijkteam-rotterdam"),
                ctx("wams-coordinatie", "casus-2026-0003", "999990019")
            ),
            expect: (200, None),
        },
        ExampleCall {
            title: "The case as the register keeps it (the household as a count)",
            command: format!(
                "{} {base}/doelpoort/v1/cases/casus-2026-0003",
                curl("wijkteam-rotterdam"),
            ),
            expect: (200, None),
        },
        ExampleCall {
            title: "Which grants do I hold? (answered per certificate)",
            command: format!("{} {base}/.well-known/doelpoort/grants", curl("wijkteam-rotterdam")),
            expect: (200, None),
        },
        ExampleCall {
            title: "A trusted certificate of an organisation that is not a configured consumer",
            command: format!(
                "{} {} {base}/uwv/v1/personen/999990019/inkomen",
                curl("onbekend"),
                ctx("wams-onderzoek", "casus-2026-0001", "999990019")
            ),
            expect: (403, Some("unknown-consumer")),
        },
    ]
}

/// How to run this very binary from a shell (the demo prints commands that call it).
fn doelpoort_command() -> String {
    std::env::current_exe()
        .ok()
        .map(|p| shell_path(&p))
        .unwrap_or_else(|| "doelpoort".into())
}

/// A path as a single-quoted shell word.
fn shell_path(path: &Path) -> String {
    format!("'{}'", path.display().to_string().replace('\'', r"'\''"))
}

/// The calls as the demo prints them: a comment with the title and expected answer, then
/// the command.
pub fn format_example_calls(calls: &[ExampleCall]) -> String {
    let mut out = String::new();
    for call in calls {
        let expect = match call.expect {
            (status, Some(code)) => format!("{status} {code}"),
            (status, None) => status.to_string(),
        };
        out.push_str(&format!(
            "# {} — expect: {expect}\n{}\n\n",
            call.title, call.command
        ));
    }
    out
}
