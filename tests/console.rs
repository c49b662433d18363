//! The privacy officers' console in a real browser, against a running demo.
//!
//! Starts `doelpoort demo` as a child process (a fresh PKI and a copy of the policies in a
//! temporary root), makes the exchanges the demo prints, then runs
//! `tests/console/console.test.mjs` in Node.js: Debian's Chromium, driven by Playwright,
//! clicks through every page and checks it against the command-line tools (see that file).
//! Afterwards this test checks what the browser cannot see: a BSN typed into the console is in
//! no log line, no metric and no file of the demo's data directory.
//!
//! Node.js, npm and Chromium are installed by `tests/run` when missing (`.ci/run` calls it);
//! the npm packages (`tests/console/package-lock.json`) are installed here when missing.
//! Set `DOELPOORT_CONSOLE_SCREENSHOTS=docs/console` to refresh the documentation's screenshots.

mod harness;

use harness::{demo_command, demo_root, repo_root};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Has exchanges in the demo's log (the demo's household member).
const SUBJECT_BSN: &str = "999990019";
/// Typed into the console only (passes the elfproef; nowhere in the demo's data).
const QUIET_BSN: &str = "999900274";

fn tool(name: &str) -> bool {
    Command::new(name)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn chromium() -> String {
    std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into())
}

#[test]
fn officers_click_through_the_console_in_chromium() {
    for needed in ["node", "npm", "curl"] {
        assert!(
            tool(needed),
            "{needed} is required for the console's browser tests (tests/run installs it)"
        );
    }
    assert!(
        Path::new(&chromium()).is_file(),
        "Chromium is required at {} (tests/run installs Debian's chromium)",
        chromium()
    );
    let tests_dir = repo_root().join("tests").join("console");
    if !tests_dir
        .join("node_modules")
        .join("playwright-core")
        .is_dir()
    {
        let status = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(&tests_dir)
            .status()
            .unwrap();
        assert!(status.success(), "npm ci in tests/console failed");
    }

    let root = demo_root();
    let bin = env!("CARGO_BIN_EXE_doelpoort");
    let certs = root.path().join("certs-example");
    let data = root.path().join("data");
    let log = root.path().join("demo.log");
    let child = demo_command(root.path(), &data)
        .env("DOELPOORT_LOG", "debug")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let mut demo = StopOnDrop(child);

    // The addresses and the example calls the demo prints.
    let mut stdout = BufReader::new(demo.0.stdout.take().unwrap());
    let (mut console, mut admin, mut calls, mut printed) = (None, None, Vec::new(), String::new());
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut line = String::new();
    loop {
        line.clear();
        assert!(Instant::now() < deadline, "the demo did not start");
        assert!(
            stdout.read_line(&mut line).unwrap() > 0,
            "the demo exited early"
        );
        printed.push_str(&line);
        if let Some(rest) = line.trim().strip_prefix("console:") {
            console = rest.split_whitespace().next().map(str::to_string);
        }
        if let Some(rest) = line.trim().strip_prefix("admin listener:") {
            admin = rest.split_whitespace().next().map(str::to_string);
        }
        if line.starts_with("curl ") {
            calls.push(line.trim().to_string());
        }
        if line.starts_with("Press Ctrl-C") {
            break;
        }
    }
    let console = console.expect("the demo prints the console's URL");
    let admin = admin.expect("the demo prints the admin listener");
    assert!(
        printed.contains("officers/fg-voorbeeldstad.p12") && printed.contains("password"),
        "the demo says how to open the console:\n{printed}"
    );
    assert!(calls.len() >= 4);
    for call in &calls {
        let out = Command::new("sh")
            .arg("-c")
            .arg(format!("{call} -s -o /dev/null --max-time 10"))
            .current_dir(root.path())
            .output()
            .unwrap();
        assert!(out.status.success(), "{call}");
    }

    let node = Command::new("node")
        .arg(tests_dir.join("console.test.mjs"))
        .current_dir(&tests_dir)
        .env("CONSOLE_URL", &console)
        .env("DOELPOORT_BIN", bin)
        .env("POLICIES_DIR", root.path().join("policies"))
        .env("AUDIT_DIR", data.join("audit"))
        .env("SUBJECT_BSN", SUBJECT_BSN)
        .env("QUIET_BSN", QUIET_BSN)
        .env("CHROMIUM", chromium())
        .env(
            "OFFICER_CERT",
            certs.join("officers").join("fg-voorbeeldstad.crt"),
        )
        .env(
            "OFFICER_KEY",
            certs.join("officers").join("fg-voorbeeldstad.key"),
        )
        .env(
            "STRANGER_CERT",
            certs.join("clients").join("wijkteam-rotterdam.crt"),
        )
        .env(
            "STRANGER_KEY",
            certs.join("clients").join("wijkteam-rotterdam.key"),
        )
        // Playwright's client-certificate proxy checks the console's certificate with Node's
        // trust store: add the example CA rather than turning the check off.
        .env("NODE_EXTRA_CA_CERTS", certs.join("ca.crt"))
        .env(
            "SCREENSHOT_DIR",
            std::env::var("DOELPOORT_CONSOLE_SCREENSHOTS")
                .map(|d| repo_root().join(d))
                .unwrap_or_else(|_| root.path().join("screenshots")),
        )
        .output()
        .unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&node.stdout),
        String::from_utf8_lossy(&node.stderr)
    );
    println!("{report}");
    assert!(node.status.success(), "browser tests failed:\n{report}");

    // What an outside attack on the console found, with curl: each is a check here.
    let officer = Officer {
        console: console.trim_end_matches('/').to_string(),
        ca: certs.join("ca.crt"),
        cert: certs.join("officers").join("fg-voorbeeldstad.crt"),
        key: certs.join("officers").join("fg-voorbeeldstad.key"),
    };
    let form = "-HContent-Type: application/x-www-form-urlencoded";
    let quiet = format!("bsn={QUIET_BSN}");
    // A BSN in a path is answered 404 and not logged (the log names pages, not paths).
    assert_eq!(officer.curl(&[&format!("/inzage/{QUIET_BSN}")]).0, 404);
    assert_eq!(officer.curl(&[&format!("/schema/{QUIET_BSN}")]).0, 404);
    // Forged forms: a foreign Origin, and duplicated Origin or Sec-Fetch-Site headers.
    let own = format!("-HOrigin: {}", officer.console);
    for headers in [
        vec!["-HOrigin: https://elders.example".to_string()],
        vec![own.clone(), "-HOrigin: https://elders.example".into()],
        vec![
            "-HSec-Fetch-Site: same-origin".into(),
            "-HSec-Fetch-Site: cross-site".into(),
        ],
    ] {
        let mut args: Vec<&str> = headers.iter().map(String::as_str).collect();
        args.extend(["-d", &quiet, "/inzage"]);
        assert_eq!(officer.curl(&args).0, 403, "{headers:?}");
    }
    // Methods: 405 with Allow, for every page; a page without a form takes no POST.
    let (status, body) = officer.curl(&["-X", "PUT", "/inzage"]);
    assert_eq!(status, 405, "{body}");
    assert_eq!(officer.curl(&["-X", "POST", "-d", "x=1", "/doelen"]).0, 405);
    assert_eq!(officer.curl(&["-X", "DELETE", "/console.css"]).0, 405);
    // Wrong bodies say what is wrong.
    let (status, body) = officer.curl(&["-HContent-Type: text/plain", "-d", &quiet, "/inzage"]);
    assert!(
        status == 415 && body.contains("geen formulier"),
        "{status} {body}"
    );
    // A period that ends before it starts, or a date in another form, is refused (no letter
    // saying "nothing was exchanged"); so is an unknown format, and a consumer not in the list.
    for bad in [
        format!("{quiet}&from=2027-01-01&to=2026-01-01"),
        format!("{quiet}&from=2026-12-05T13:46:07Z"),
        format!("{quiet}&format=xml"),
    ] {
        let (status, body) = officer.curl(&[form, "-d", &bad, "/inzage"]);
        assert_eq!(status, 422, "{bad}: {body}");
    }
    let (status, body) = officer.curl(&[
        form,
        "-d",
        &format!("consumer=nobody&purpose=wams-onderzoek&operation=uwv/inkomen&{quiet}"),
        "/mag-ik-dit-zien",
    ]);
    assert!(
        status == 422 && body.contains("uit de lijsten"),
        "{status} {body}"
    );
    // A control character refuses the form whole (the gateway refuses such a header too);
    // nothing is echoed. So does a date in another shape than YYYY-MM-DD.
    for bad in [
        format!("{quiet}&from=2026-12-05%00"),
        "consumer=wijkteam-rotterdam&purpose=wams-onderzoek&operation=uwv/inkomen&actor=m%091&bsn=999990019".to_string(),
        format!("{quiet}&from=%2B2026-12-05"),
    ] {
        let (status, body) = officer.curl(&[form, "-d", &bad, "/inzage"]);
        assert_eq!(status, 422, "{bad}: {body}");
        assert!(!body.contains('\0') && !body.contains('\t'));
    }
    // A stranger's certificate is refused before anything else, whatever it sends; an
    // invented method is not logged as sent.
    let stranger = Officer {
        cert: certs.join("clients").join("wijkteam-rotterdam.crt"),
        key: certs.join("clients").join("wijkteam-rotterdam.key"),
        ..officer.clone()
    };
    let method = format!("Q{QUIET_BSN}");
    assert_eq!(stranger.curl(&["-X", &method, "/"]).0, 403);
    assert_eq!(stranger.curl(&["-X", "PUT", "/inzage"]).0, 403);
    // A case filter that holds a BSN is not applied (and not echoed).
    let (status, body) = officer.curl(&[&format!("/zaken?case={QUIET_BSN}")]);
    assert!(status == 200 && !body.contains(QUIET_BSN), "{body}");
    // The command to paste is quoted: what was typed cannot run in the shell.
    let (_, body) = officer.curl(&[
        form,
        "--data-urlencode",
        "case_id=c1$(touch pwned)",
        "-d",
        &format!(
            "consumer=wijkteam-rotterdam&purpose=wams-onderzoek&operation=uwv/inkomen&{quiet}"
        ),
        "/mag-ik-dit-zien",
    ]);
    assert!(
        body.contains("&#39;Doelbinding-Case-Id: c1$(touch pwned)&#39;"),
        "single-quoted: {body}"
    );

    // A damaged log: the letter says so (in the reader's language, without server paths),
    // and a download, which could not say so, is refused.
    let segment = std::fs::read_dir(data.join("audit"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "jsonl"))
        .unwrap();
    let text = std::fs::read_to_string(&segment).unwrap();
    std::fs::write(&segment, text.replacen("not-granted", "not-grantex", 1)).unwrap();
    let subject = format!("bsn={SUBJECT_BSN}");
    let (status, body) = officer.curl(&[form, "-d", &subject, "/inzage"]);
    assert_eq!(status, 200);
    assert!(
        body.contains("id=\"report-warning\"") && body.contains("beschadigd"),
        "{body}"
    );
    for format in ["csv", "json"] {
        let (status, body) =
            officer.curl(&[form, "-d", &format!("{subject}&format={format}"), "/inzage"]);
        assert_eq!(status, 409, "{format}: {body}");
        assert!(!body.contains("not-grantex"));
    }

    // What the browser cannot see: the BSN typed into the console is nowhere else.
    let metrics = Command::new("curl")
        .args(["-s", "--max-time", "10", &format!("{admin}/metrics")])
        .output()
        .unwrap();
    let metrics = String::from_utf8_lossy(&metrics.stdout);
    assert!(metrics.contains("doelpoort_"), "metrics were read");
    for bsn in [SUBJECT_BSN, QUIET_BSN] {
        assert!(!metrics.contains(bsn), "a BSN in the metrics");
    }
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(
        logged.contains("console request"),
        "the console's requests are logged (by path)"
    );
    for bsn in [SUBJECT_BSN, QUIET_BSN] {
        assert!(!logged.contains(bsn), "a BSN in the demo's log:\n{logged}");
    }
    assert!(!printed.contains(QUIET_BSN));
    assert_no_bsn_in_files(&data, QUIET_BSN);
}

/// curl with the officer's certificate.
#[derive(Clone)]
struct Officer {
    console: String,
    ca: std::path::PathBuf,
    cert: std::path::PathBuf,
    key: std::path::PathBuf,
}

impl Officer {
    /// `args` ending in a path; the status and the body.
    fn curl(&self, args: &[&str]) -> (u16, String) {
        let (path, rest) = args.split_last().unwrap();
        let out = Command::new("curl")
            .args(["-s", "--max-time", "10", "-w", "\n%{http_code}", "--cacert"])
            .arg(&self.ca)
            .arg("--cert")
            .arg(&self.cert)
            .arg("--key")
            .arg(&self.key)
            .args(rest)
            .arg(format!("{}{path}", self.console))
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let (body, status) = text.rsplit_once('\n').unwrap();
        (status.trim().parse().unwrap(), body.to_string())
    }
}

fn assert_no_bsn_in_files(dir: &Path, bsn: &str) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            assert_no_bsn_in_files(&path, bsn);
        } else {
            let bytes = std::fs::read(&path).unwrap();
            assert!(
                !bytes.windows(bsn.len()).any(|w| w == bsn.as_bytes()),
                "{} holds the BSN typed into the console",
                path.display()
            );
        }
    }
}

/// Stops the demo however the test ends.
struct StopOnDrop(std::process::Child);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
