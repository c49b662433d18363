//! `doelpoort demo` as a newcomer runs it: start it, paste the curl commands it prints.
//! Runs on a fresh PKI in a temporary root so it never depends on the committed one expiring.

mod harness;

use harness::{demo_command, demo_root, signal};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn the_printed_curl_commands_work() {
    if Command::new("curl").arg("--version").output().is_err() {
        panic!("curl is required for this test (.ci/run installs it)");
    }
    let root = demo_root();
    let bin = env!("CARGO_BIN_EXE_doelpoort");
    let mut child = demo_command(root.path(), &root.path().join("data"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    // (expected status, command): each command follows a comment ending in "expect: <status> …".
    let mut calls: Vec<(String, String)> = Vec::new();
    // The printed `doelpoort audit join CONSUMER PROVIDER` commands (SPEC §10).
    let mut joins: Vec<String> = Vec::new();
    let mut expect = None;
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut line = String::new();
    loop {
        line.clear();
        assert!(Instant::now() < deadline, "demo did not print its calls");
        if stdout.read_line(&mut line).unwrap() == 0 {
            panic!("demo exited early");
        }
        if let Some((_, e)) = line.split_once("— expect: ") {
            expect = e.split_whitespace().next().map(str::to_string);
        }
        if line.starts_with("curl ") {
            let status = expect.take().expect("every call says what to expect");
            calls.push((status, line.trim().to_string()));
        }
        if let Some(args) = line.trim().strip_prefix("doelpoort audit join ") {
            joins.push(args.to_string());
        }
        if line.starts_with("Press Ctrl-C") {
            break;
        }
    }
    assert!(calls.len() >= 4, "{calls:?}");
    let mut statuses = Vec::new();
    for (_, call) in &calls {
        let out = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "{call} -s -o /dev/null -w '%{{http_code}}' --max-time 10"
            ))
            .output()
            .unwrap();
        statuses.push(String::from_utf8_lossy(&out.stdout).to_string());
    }
    // Youth care and UWV answered through their own inways: each join shows both ends, and
    // youth care's shows the care content withheld at the source.
    assert_eq!(joins.len(), 2, "one join command per inway");
    let mut withheld_at_source = String::new();
    for args in &joins {
        let out = Command::new(bin)
            .args(["audit", "join"])
            .args(args.split_whitespace())
            .args(["--format", "json"])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(out.status.success(), "audit join {args}: {text}");
        for line in text.lines() {
            let joined: serde_json::Value = serde_json::from_str(line).unwrap();
            for side in joined["provider_side"].as_array().unwrap() {
                withheld_at_source.push_str(&side["fields_withheld"].to_string());
            }
        }
    }
    assert!(
        withheld_at_source.contains("zorginhoud") && withheld_at_source.contains("behandelaar"),
        "the care content is withheld by youth care's inway: {withheld_at_source}"
    );
    // The README's case-register example (an objection to youth care for the household of the
    // demo's own casus-2026-0001, which agreed to it), then a restart on the same data
    // directory: the demo must start again (an outsider found it stopped at registering its
    // own cases).
    let example = &calls
        .iter()
        .find(|(_, c)| c.contains("/clients/wijkteam-rotterdam.crt"))
        .expect("a call as the district team")
        .1;
    let words: Vec<&str> = example.split_whitespace().collect();
    let option = |name: &str| {
        let at = words.iter().position(|w| *w == name).expect(name);
        format!("{name} {}", words[at + 1])
    };
    let base = example
        .split_whitespace()
        .find_map(|w| w.trim_matches('\'').strip_prefix("https://localhost:"))
        .and_then(|rest| rest.split('/').next())
        .expect("the gateway's port");
    let put = format!(
        "curl -s -o /dev/null -w '%{{http_code}}' --max-time 10 {} {} {} -X PUT \
         -H 'Content-Type: application/json' -H 'Doelbinding-Actor: medewerker-0042' \
         -d '{{\"purposes\": [\"wams-onderzoek\"], \"household\": [\"999990019\"], \"agreed_partners\": [\"uwv\"], \"objections\": [\"jeugdhulp\"]}}' \
         https://localhost:{base}/doelpoort/v1/cases/casus-2026-0007",
        option("--cacert"),
        option("--cert"),
        option("--key"),
    );
    let out = Command::new("sh").arg("-c").arg(&put).output().unwrap();
    let status = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(status == "201" || status == "200", "{status}: {put}");
    signal(&child, rustix::process::Signal::INT);
    let _ = child.wait();
    let expected: Vec<&str> = calls.iter().map(|(s, _)| s.as_str()).collect();
    assert_eq!(statuses, expected, "{calls:#?}");

    let mut again = demo_command(root.path(), &root.path().join("data"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(again.stdout.take().unwrap());
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        line.clear();
        assert!(Instant::now() < deadline, "the demo did not start again");
        if stdout.read_line(&mut line).unwrap() == 0 {
            let mut err = String::new();
            let _ = std::io::Read::read_to_string(&mut again.stderr.take().unwrap(), &mut err);
            panic!("the demo did not start again on its data directory: {err}");
        }
        if line.starts_with("Press Ctrl-C") {
            break;
        }
    }
    signal(&again, rustix::process::Signal::INT);
    let _ = again.wait();
}
