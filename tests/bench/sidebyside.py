#!/usr/bin/env python3
"""Doelpoort and nginx side by side, on loopback, in one run (issue 8).

Run from the repository root:

    python3 tests/bench/sidebyside.py            # the full run (about 12 minutes)
    python3 tests/bench/sidebyside.py --smoke    # a few seconds per scenario: does it run?
    python3 tests/bench/sidebyside.py --binary /tmp/doelpoort-before   # an earlier build
    python3 tests/bench/sidebyside.py --commit-delay 200us   # audit.commit_delay for the run

What it does (docs/performance.md, "Side by side with nginx", explains the method):
- builds `doelpoort` (release) and installs what is missing: nginx from Debian's packages,
  `oha` (the load generator; it presents a client certificate) from crates.io into
  target/bench-tools/;
- makes a fresh PKI with `doelpoort certs generate` (ECDSA P-256) under target/sidebyside/;
- starts a fixed upstream (nginx serving a 2 KB UWV-shaped JSON answer over mTLS), then
  Doelpoort (`doelpoort run`, the shipped policies and schemas, full pipeline with a durable
  audit log, or with the audit log off) and nginx as an mTLS pass-through proxy in front of
  the same upstream; the proxy under test is pinned to core 1 (`taskset -c 1`), the load
  generator and the upstream to core 0;
- measures each scenario for each proxy: req/s, latency percentiles from oha, the proxy
  process's own CPU time from /proc/PID/stat, RSS from /proc/PID/status; a 1 s warm-up run
  precedes every measured run and is not counted;
- measures this disk's fdatasync in the same run (1 KB appends into preallocated space in
  target/sidebyside/, as the audit writer does), because one target allows one fsync;
- prints one Markdown table with Doelpoort/nginx ratios, then the targets of issue 22 as a
  pass/fail table (`--strict` exits 1 when one is not met).

Only 127.0.0.1 is used. Every load run is bounded by its duration; every wait has a deadline.
"""

import argparse
import http.client
import json
import os
import resource
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
WORK = REPO / "target" / "sidebyside"
TOOLS = REPO / "target" / "bench-tools"
OHA_VERSION = "1.16.0"
UPSTREAM_PORT = 19441
NGINX_PORT = 28443
DOELPOORT_PORT = 18443
ADMIN_PORT = 18901
PATH_NGINX = "/uwv/v1/personen/999990019/inkomen"
PATH_DIRECT = "/v1/personen/999990019/inkomen"
CONTEXT_HEADERS = [
    "Doelbinding-Purpose: wams-onderzoek",
    "Doelbinding-Case-Id: casus-2026-0001",
    "Doelbinding-Data-Subject: bsn=999990019",
    "Doelbinding-Actor: medewerker-0042",
]
PROXY_CORE = "1"
LOAD_CORE = "0"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def log(msg):
    print(f"[sidebyside] {msg}", file=sys.stderr, flush=True)


def run(cmd, **kw):
    return subprocess.run(cmd, check=True, **kw)


# ---- setup ----------------------------------------------------------------------------------

def ensure_tools(binary=None):
    if shutil.which("nginx") is None and not Path("/usr/sbin/nginx").exists():
        log("installing nginx from Debian's packages")
        run(["apt-get", "update", "-qq"])
        run(["apt-get", "install", "-y", "-qq", "nginx"], env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
    oha = TOOLS / "bin" / "oha"
    if not oha.exists():
        log(f"installing oha {OHA_VERSION} from crates.io (a few minutes, once)")
        run(["cargo", "install", "--locked", "--root", str(TOOLS), "oha", "--version", OHA_VERSION])
    if binary is None:
        log("building doelpoort (release)")
        run(["cargo", "build", "--release", "--locked", "--bin", "doelpoort"], cwd=REPO)
        binary = REPO / "target" / "release" / "doelpoort"
    return str(oha), shutil.which("nginx") or "/usr/sbin/nginx", str(binary)


def uwv_body():
    """About 2 KB, valid against schemas/uwv-inkomen.response.schema.json (synthetic)."""
    benefit = {"soort": "WIA", "bedrag_per_maand": 987.25, "ingangsdatum": "2024-06-01",
               "arbeidsongeschiktheidspercentage": 55,
               "medische_reden": "Fictieve testdiagnose: chronische rugklachten (synthetisch)"}
    doc = {"bsn": "999990019",
           "inkomsten": [{"soort": "loon", "werkgever": "Voorbeeld Schoonmaak BV",
                          "werkgever_adres": "Teststraat 12, 9999 XX Voorbeeldstad",
                          "bedrag_per_maand": 1245.5, "sinds": "2023-03-01"}],
           "uitkeringen": []}
    while len(json.dumps(doc, separators=(",", ":"))) < 2048:
        doc["uitkeringen"].append(benefit)
    return json.dumps(doc, separators=(",", ":"))


def write_configs(audit_mode, commit_delay=None):
    pki = WORK / "pki"
    nginx_dir = WORK / "nginx"
    for d in (nginx_dir / "upstream", nginx_dir / "proxy", WORK / "www"):
        d.mkdir(parents=True, exist_ok=True)
    (WORK / "www" / "body.json").write_text(uwv_body())
    common = f"""worker_processes 1;
worker_rlimit_nofile 65536;
events {{ worker_connections 30000; }}
"""
    (nginx_dir / "upstream" / "nginx.conf").write_text(common + f"""pid {nginx_dir}/upstream/nginx.pid;
error_log {nginx_dir}/upstream/error.log warn;
http {{
  access_log off;
  server {{
    listen 127.0.0.1:{UPSTREAM_PORT} ssl;
    ssl_protocols TLSv1.3;
    ssl_certificate {pki}/partners/uwv.crt;
    ssl_certificate_key {pki}/partners/uwv.key;
    ssl_client_certificate {pki}/ca.crt;
    ssl_verify_client on;
    keepalive_requests 10000000;
    location / {{ root {WORK}/www; default_type application/json; try_files /body.json =404; }}
  }}
}}
""")
    # nginx as a plain mTLS pass-through proxy: client certificate required, its own client
    # certificate to the upstream, the upstream's certificate verified, upstream keep-alive.
    (nginx_dir / "proxy" / "nginx.conf").write_text(common + f"""pid {nginx_dir}/proxy/nginx.pid;
error_log {nginx_dir}/proxy/error.log warn;
http {{
  access_log off;
  upstream uwv {{ server 127.0.0.1:{UPSTREAM_PORT}; keepalive 256; }}
  server {{
    listen 127.0.0.1:{NGINX_PORT} ssl http2;
    ssl_protocols TLSv1.3;
    ssl_certificate {pki}/gateway.crt;
    ssl_certificate_key {pki}/gateway.key;
    ssl_client_certificate {pki}/ca.crt;
    ssl_verify_client on;
    keepalive_requests 10000000;
    # Idle keep-alive connections stay open while the memory scenario holds them (default 75 s).
    keepalive_timeout 600s;
    http2_max_concurrent_streams 128;
    location /uwv/ {{
      proxy_pass https://uwv/;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_ssl_certificate {pki}/gateway-client.crt;
      proxy_ssl_certificate_key {pki}/gateway-client.key;
      proxy_ssl_trusted_certificate {pki}/ca.crt;
      proxy_ssl_verify on;
      proxy_ssl_name localhost;
      proxy_ssl_server_name on;
      proxy_ssl_session_reuse on;
      proxy_ssl_protocols TLSv1.3;
    }}
  }}
}}
""")
    # Each mode in a directory of its own: its own store (the case register) and keys.
    home = WORK / audit_mode
    home.mkdir(parents=True, exist_ok=True)
    audit = (f"  dir: {home}/audit\n  subject_key: {home}/audit-subject.key"
             if audit_mode == "durable" else "  mode: off")
    if commit_delay is not None and audit_mode == "durable":
        audit += f"\n  commit_delay: {commit_delay}"
    partners = "".join(f"""  - id: {pid}
    oin: "{oin}"
    url: https://localhost:{UPSTREAM_PORT}
    client_certificate: {pki}/gateway-client.crt
    client_key: {pki}/gateway-client.key
    trust: [{pki}/ca.crt]
    max_idle_connections: 256
""" for pid, oin in [("uwv", "00000001999990011000"), ("svb", "00000001999990012000"),
                     ("cjib", "00000001999990013000"), ("jeugdhulp", "00000001999990014000")])
    config = home / "doelpoort.yaml"
    config.write_text(f"""instance: sidebyside
gateway_oin: "00000001999990000000"
listen: 127.0.0.1:{DOELPOORT_PORT}
admin_listen: 127.0.0.1:{ADMIN_PORT}
tls:
  certificate: {pki}/gateway.crt
  key: {pki}/gateway.key
  client_ca: [{pki}/ca.crt]
limits:
  max_connections: 20000
  idle_timeout: 600s
  header_timeout: 60s
policies: {REPO}/policies
schemas: {REPO}/schemas
pseudonym_secret: {WORK}/pseudonym.secret
audit:
{audit}
consumers:
  - id: wijkteam-rotterdam
    oin: "00000001999990001000"
    case_admin: true
  - id: schuldhulp-utrecht
    oin: "00000001999990002000"
partners:
{partners}""")
    return config


# ---- processes ------------------------------------------------------------------------------

class Proc:
    def __init__(self, name, cmd, pid_file=None, env=None):
        self.name = name
        # Output to a file, never a pipe nobody reads (a full pipe would stall the process).
        self.log = open(WORK / f"{name}.log", "ab")
        self.popen = subprocess.Popen(["taskset", "-c", PROXY_CORE if name != "upstream" else LOAD_CORE] + cmd,
                                      stdout=self.log, stderr=subprocess.STDOUT,
                                      env={**os.environ, **(env or {})})
        self.pid_file = pid_file

    def pids(self):
        """The processes doing the work: nginx's workers (not its master), else the process."""
        if self.pid_file is None:
            return [self.popen.pid]
        master = int(Path(self.pid_file).read_text().strip())
        children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
        return [int(c) for c in children] or [master]

    def cpu_seconds(self):
        total = 0
        for pid in self.pids():
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime + stime
        return total / CLOCK_TICKS

    def rss_mb(self):
        pids = self.pids()
        if self.pid_file is not None:
            pids = pids + [int(Path(self.pid_file).read_text().strip())]
        total = 0
        for pid in pids:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        return total / 1024

    def stop(self):
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=5)


def port_in_use(port):
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def wait_port(port, proc, deadline_s=30):
    """Waits until `proc` listens on `port`; fails if it exits first (e.g. a port taken)."""
    end = time.time() + deadline_s
    while time.time() < end:
        if proc.popen.poll() is not None:
            tail = (WORK / f"{proc.name}.log").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"{proc.name} exited with {proc.popen.returncode}:\n{tail}")
        if port_in_use(port):
            return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {deadline_s} s")


def start_nginx(nginx, which):
    conf = WORK / "nginx" / which / "nginx.conf"
    proc = Proc("upstream" if which == "upstream" else "nginx",
                [nginx, "-c", str(conf), "-p", str(WORK / "nginx" / which), "-g", "daemon off;"],
                pid_file=WORK / "nginx" / which / "nginx.pid")
    wait_port(UPSTREAM_PORT if which == "upstream" else NGINX_PORT, proc)
    end = time.time() + 10
    while not Path(proc.pid_file).exists() and time.time() < end:
        time.sleep(0.05)
    return proc


def start_doelpoort(doelpoort, config):
    # Warnings only: no access-log line per request, as nginx runs with `access_log off`.
    proc = Proc("doelpoort", [doelpoort, "run", "--config", str(config)], env={"DOELPOORT_LOG": "warn"})
    wait_port(DOELPOORT_PORT, proc)
    register_case()
    return proc


def client_context():
    pki = WORK / "pki"
    ctx = ssl.create_default_context(cafile=str(pki / "ca.crt"))
    ctx.load_cert_chain(str(pki / "clients" / "wijkteam-rotterdam.crt"), str(pki / "clients" / "wijkteam-rotterdam.key"))
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    return ctx


def register_case():
    """Registers the measured request's case (SPEC §8: the `wams-onderzoek` grant requires a
    registered case), then checks that the measured request is allowed: a run that measures
    refusals measures nothing."""
    body = json.dumps({"purposes": ["wams-onderzoek"], "household": ["999990019"],
                       "agreed_partners": ["uwv"], "objections": [], "status": "open"})
    conn = http.client.HTTPSConnection("localhost", DOELPOORT_PORT, context=client_context(), timeout=10)
    conn.request("PUT", "/doelpoort/v1/cases/casus-2026-0001", body=body,
                 headers={"Content-Type": "application/json", "Doelbinding-Actor": "medewerker-0042"})
    answer = conn.getresponse()
    text = answer.read()
    if answer.status not in (200, 201, 204):
        raise RuntimeError(f"registering the case: {answer.status} {text[:300]!r}")
    headers = dict(h.split(": ", 1) for h in CONTEXT_HEADERS)
    conn.request("GET", PATH_NGINX, headers=headers)
    answer = conn.getresponse()
    text = answer.read()
    conn.close()
    if answer.status != 200:
        raise RuntimeError(f"the measured request is not allowed: {answer.status} {text[:300]!r}")


# ---- load -----------------------------------------------------------------------------------

def oha(oha_bin, url, seconds=None, requests=None, connections=1, extra=()):
    pki = WORK / "pki"
    cmd = ["taskset", "-c", LOAD_CORE, oha_bin, "--no-tui", "--output-format", "json",
           "--cacert", str(pki / "ca.crt"),
           "--cert", str(pki / "clients" / "wijkteam-rotterdam.crt"),
           "--key", str(pki / "clients" / "wijkteam-rotterdam.key"),
           "-c", str(connections)]
    for h in CONTEXT_HEADERS:
        cmd += ["-H", h]
    if seconds is not None:
        cmd += ["-z", f"{seconds}s"]
    if requests is not None:
        cmd += ["-n", str(requests)]
    cmd += list(extra) + [url]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=(seconds or 60) + 60)
    return json.loads(out.stdout)


def measure(oha_bin, proc, url, seconds, connections, extra=()):
    """A 1 s warm-up run, then the measured run with the proxy's CPU time around it."""
    oha(oha_bin, url, seconds=1, connections=connections, extra=extra)
    before = proc.cpu_seconds() if proc else 0.0
    result = oha(oha_bin, url, seconds=seconds, connections=connections, extra=extra)
    after = proc.cpu_seconds() if proc else 0.0
    summary = result["summary"]
    codes = result.get("statusCodeDistribution", {})
    ok = int(codes.get("200", 0))
    total = sum(int(v) for v in codes.values())
    pct = result.get("latencyPercentiles", {})
    rps = ok / summary["total"] if summary.get("total") else 0.0
    return {
        "rps": rps,
        "ok": ok,
        # Requests still in flight when the duration ends are aborted by oha: not errors.
        "errors": total - ok + sum(int(v) for k, v in result.get("errorDistribution", {}).items()
                                   if k != "aborted due to deadline"),
        "p50_us": (pct.get("p50") or 0) * 1e6,
        "p99_us": (pct.get("p99") or 0) * 1e6,
        "p999_us": (pct.get("p99.9") or 0) * 1e6,
        "cpu_us_per_req": (after - before) * 1e6 / ok if ok and proc else float("nan"),
    }


def hold_connections(port, count, request=None, deadline_s=180):
    """Opens `count` mTLS connections one after another; returns them and how many got a 200.

    Without `request` each connection only completes the handshake. With it, each sends the
    request once and reads the whole answer before the next one opens, then stays open: the
    idle connection a pooled caller keeps between requests.
    """
    pki = WORK / "pki"
    ctx = ssl.create_default_context(cafile=str(pki / "ca.crt"))
    ctx.load_cert_chain(str(pki / "clients" / "wijkteam-rotterdam.crt"), str(pki / "clients" / "wijkteam-rotterdam.key"))
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    conns, ok = [], 0
    end = time.time() + deadline_s
    while len(conns) < count and time.time() < end:
        raw = socket.create_connection(("127.0.0.1", port), timeout=10)
        conn = ctx.wrap_socket(raw, server_hostname="localhost")
        if request is not None:
            try:
                conn.sendall(request)
                ok += read_answer(conn).startswith(b"HTTP/1.1 200")
            except OSError as e:  # a timeout or a reset: counted as not answered 200
                log(f"connection {len(conns) + 1}: {e}")
        conns.append(conn)
    return conns, ok


def read_answer(conn):
    """Reads one HTTP/1.1 answer (Content-Length or chunked, without trailers); returns its
    head, or b"" for anything else (counted as not answered 200)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    fields = {k.strip().lower(): v.strip() for k, _, v in
              (line.partition(b":") for line in head.split(b"\r\n")[1:])}
    if b"content-length" in fields:
        done = lambda: len(body) >= int(fields[b"content-length"])
    elif fields.get(b"transfer-encoding", b"").lower() == b"chunked":
        done = lambda: body.endswith(b"0\r\n\r\n")
    else:
        return b""
    while not done():
        chunk = conn.recv(65536)
        if not chunk:
            break
        body += chunk
    return head


def established(port):
    """Open TCP connections to `port` on 127.0.0.1, from the kernel's table: the ones a
    proxy's idle timeout has closed are not counted."""
    local = f"0100007F:{port:04X}"
    with open("/proc/net/tcp") as table:
        return sum(1 for line in table
                   if line.split()[1] == local and line.split()[3] == "01")


def fsync_latency(count, deadline_s=60):
    """This disk's fdatasync: `count` 1 KB appends into a preallocated, synced file under
    target/sidebyside/ (the audit writer's pattern: it zero-fills ahead, so a commit syncs data
    only). Returns (p50, p99) in µs."""
    path = WORK / "fsync-probe.bin"
    record = b"x" * 1023 + b"\n"
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.pwrite(fd, bytes(len(record) * count), 0)
        os.fsync(fd)
        times = []
        end = time.time() + deadline_s
        for i in range(count):
            if time.time() > end:
                break
            os.pwrite(fd, record, i * len(record))
            t0 = time.perf_counter()
            os.fdatasync(fd)
            times.append((time.perf_counter() - t0) * 1e6)
    finally:
        os.close(fd)
        path.unlink()
    times.sort()
    return times[len(times) // 2], times[min(len(times) - 1, int(len(times) * 0.99))]


def markdown_table(header, rows, numeric_from=None):
    """Prints a Markdown table; columns from `numeric_from` on are right-aligned."""
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---:" if numeric_from is not None and i >= numeric_from else "---"
                         for i in range(len(header))) + "|")
    for r in rows:
        print("| " + " | ".join(r) + " |")
    print()


# The targets of issue 22, side by side in one run: (label, measured, target, met).
def targets(n, d, o, base, fsync_p99, held_max):
    rows = []
    def add(label, measured, target, met):
        rows.append((label, measured, target, "**pass**" if met else "fail"))
    tp_ratio = d["tp"]["rps"] / n["tp"]["rps"] if n["tp"]["rps"] else 0.0
    cpu_ratio = d["tp"]["cpu_us_per_req"] / n["tp"]["cpu_us_per_req"]
    add("full pipeline, 64 conns: req/s", f"{tp_ratio:.2f}× nginx ({d['tp']['rps']:.0f} vs {n['tp']['rps']:.0f})",
        "≥ 0.80×", tp_ratio >= 0.8)
    add("full pipeline, 64 conns: CPU µs/req", f"{cpu_ratio:.2f}× nginx ({d['tp']['cpu_us_per_req']:.1f} vs {n['tp']['cpu_us_per_req']:.1f})",
        "≤ 1.30×", cpu_ratio <= 1.3)
    off_ratio = o["tp"]["rps"] / n["tp"]["rps"] if n["tp"]["rps"] else 0.0
    off_cpu = o["tp"]["cpu_us_per_req"] / n["tp"]["cpu_us_per_req"]
    add("audit off, 64 conns: req/s", f"{off_ratio:.2f}× nginx ({o['tp']['rps']:.0f})", "≥ 1.00×", off_ratio >= 1.0)
    add("audit off, 64 conns: CPU µs/req", f"{off_cpu:.2f}× nginx ({o['tp']['cpu_us_per_req']:.1f})", "≤ 1.00×", off_cpu <= 1.0)
    added_d = d["seq"]["p99_us"] - base["p99_us"]
    added_n = n["seq"]["p99_us"] - base["p99_us"]
    add("1 conn, sequential: added p99", f"{added_d:.0f} µs (nginx {added_n:.0f} + fsync p99 {fsync_p99:.0f} = {added_n + fsync_p99:.0f})",
        "≤ nginx's + one fsync", added_d <= added_n + fsync_p99)
    fixed = d["fixed"]
    sustained = fixed["rps"] >= 0.99 * 10000
    add("fixed 10k req/s, full pipeline", f"{fixed['rps']:.0f} req/s reached, p99 {fixed['p99_us'] / 1000:.1f} ms",
        "≥ 9,900 req/s, p99 ≤ 5 ms", sustained and fixed["p99_us"] <= 5000)
    (rn, _, _), (rd, _, okd) = n[f"rss_served_{held_max}"], d[f"rss_served_{held_max}"]
    add(f"{held_max:,} idle conns that each served a request: RSS",
        f"{rd:.1f} MB vs nginx {rn:.1f} MB ({okd} answered 200)", "≤ nginx's", rd <= rn and okd == held_max)
    new_ratio = d["new"]["rps"] / n["new"]["rps"] if n["new"]["rps"] else 0.0
    add("new mTLS conn per request: req/s (issue 8)", f"{new_ratio:.2f}× nginx", "≥ 1.50×", new_ratio >= 1.5)
    return rows


# ---- scenarios ------------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--smoke", action="store_true", help="a few seconds per scenario; only checks that it runs")
    ap.add_argument("--strict", action="store_true", help="exit 1 when a target is not met")
    ap.add_argument("--binary", type=Path, help="measure this doelpoort binary instead of building one")
    ap.add_argument("--commit-delay", help="audit.commit_delay for the durable run (default: the gateway's)")
    args = ap.parse_args()
    seconds = 2 if args.smoke else 10
    held = [10, 50] if args.smoke else [1000, 10000]

    taken = [p for p in (UPSTREAM_PORT, NGINX_PORT, DOELPOORT_PORT, ADMIN_PORT) if port_in_use(p)]
    if taken:
        sys.exit(f"ports already in use on 127.0.0.1 (a previous run still going?): {taken}")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 65536), hard))
    oha_bin, nginx, doelpoort = ensure_tools(args.binary)
    if WORK.exists():
        shutil.rmtree(WORK)
    WORK.mkdir(parents=True)
    run([doelpoort, "certs", "generate", str(WORK / "pki")], stdout=subprocess.DEVNULL)
    (WORK / "pseudonym.secret").write_text(os.urandom(32).hex())
    os.chmod(WORK / "pseudonym.secret", 0o600)
    configs = {mode: write_configs(mode, args.commit_delay) for mode in ("durable", "off")}

    log("this disk's fdatasync")
    fsync_p50, fsync_p99 = fsync_latency(200 if args.smoke else 2000)
    upstream = start_nginx(nginx, "upstream")
    try:
        direct = f"https://localhost:{UPSTREAM_PORT}{PATH_DIRECT}"
        base = measure(oha_bin, None, direct, min(seconds, 5), 1)

        def scenarios(proc, url_base):
            url = url_base + PATH_NGINX
            r = {}
            log(f"{proc.name}: 1. throughput, 64 keep-alive connections")
            r["tp"] = measure(oha_bin, proc, url, seconds, 64)
            log(f"{proc.name}: 2. one connection, sequential")
            r["seq"] = measure(oha_bin, proc, url, min(seconds, 5), 1)
            log(f"{proc.name}: 3. fixed load 10k req/s, latency-corrected")
            r["fixed"] = measure(oha_bin, proc, url, seconds, 64, ["-q", "10000", "--latency-correction"])
            log(f"{proc.name}: 4. new mTLS connection per request")
            r["new"] = measure(oha_bin, proc, url, seconds, 16, ["--disable-keepalive"])
            log(f"{proc.name}: 5. HTTP/2, 4 connections x 16 streams")
            r["h2"] = measure(oha_bin, proc, url, seconds, 4, ["--http2", "-p", "16"])
            log(f"{proc.name}: 6. memory idle and with open connections")
            r["rss_idle"] = proc.rss_mb()
            port = int(url_base.rsplit(":", 1)[1])
            conns = []
            for n in held:
                conns += hold_connections(port, n - len(conns))[0]
                time.sleep(1)
                r[f"rss_{n}"] = (proc.rss_mb(), established(port))
            for c in conns:
                c.close()
            return r

        def served_memory(proc, url_base):
            # In a fresh process: what the handshake-only connections left allocated (nginx
            # keeps its peak) must not count here.
            log(f"{proc.name}: 6. memory with open connections that have each served one request")
            port = int(url_base.rsplit(":", 1)[1])
            request = (f"GET {PATH_NGINX} HTTP/1.1\r\nHost: localhost\r\n"
                       + "".join(h + "\r\n" for h in CONTEXT_HEADERS) + "\r\n").encode()
            r = {"rss_fresh": proc.rss_mb()}
            conns, answered = [], 0
            for n in held:
                more, ok = hold_connections(port, n - len(conns), request)
                conns += more
                answered += ok
                time.sleep(1)
                r[f"rss_served_{n}"] = (proc.rss_mb(), established(port), answered)
            for c in conns:
                c.close()
            return r

        def each_process(start, url_base, run):
            proc = start()
            try:
                return run(proc, url_base)
            finally:
                proc.stop()

        starts = {"nginx": lambda: start_nginx(nginx, "proxy"),
                  "durable": lambda: start_doelpoort(doelpoort, configs["durable"]),
                  "off": lambda: start_doelpoort(doelpoort, configs["off"])}
        results = {}
        for name, start in starts.items():
            url_base = f"https://localhost:{NGINX_PORT if name == 'nginx' else DOELPOORT_PORT}"
            results[name] = each_process(start, url_base, scenarios)
            results[name].update(each_process(start, url_base, served_memory))
    finally:
        upstream.stop()

    rows = []  # (scenario, metric, nginx, Doelpoort full, Doelpoort audit off, full/nginx)
    n, d, o = results["nginx"], results["durable"], results["off"]
    def ratio(a, b):
        return f"{a / b:.2f}" if b else "-"
    def line(scenario, metric, key, field, fmt="{:.0f}"):
        a, b, c = n[key][field], d[key][field], o[key][field]
        rows.append((scenario, metric, fmt.format(a), fmt.format(b), fmt.format(c), ratio(b, a)))

    line("1. throughput, 64 conns", "req/s", "tp", "rps")
    line("1. throughput, 64 conns", "proxy CPU µs/req", "tp", "cpu_us_per_req", "{:.1f}")
    for key, label in (("seq", "2. 1 conn, sequential"),):
        for field, metric in (("p50_us", "added p50 µs"), ("p99_us", "added p99 µs")):
            a, b, c = (x[key][field] - base[field] for x in (n, d, o))
            rows.append((label, metric, f"{a:.0f}", f"{b:.0f}", f"{c:.0f}", ratio(b, a)))
    for field, metric in (("p50_us", "p50 µs"), ("p99_us", "p99 µs"), ("p999_us", "p99.9 µs")):
        line("3. 10k req/s fixed", metric, "fixed", field)
    line("3. 10k req/s fixed", "req/s reached", "fixed", "rps")
    line("4. new mTLS conn per request", "req/s", "new", "rps")
    line("4. new mTLS conn per request", "proxy CPU µs/req", "new", "cpu_us_per_req", "{:.1f}")
    line("5. HTTP/2, 4 conns x 16 streams", "req/s", "h2", "rps")
    line("5. HTTP/2, 4 conns x 16 streams", "proxy CPU µs/req", "h2", "cpu_us_per_req", "{:.1f}")
    rows.append(("6. memory", "RSS MB idle, after scenarios 1-5", f"{n['rss_idle']:.1f}", f"{d['rss_idle']:.1f}", f"{o['rss_idle']:.1f}", ratio(d["rss_idle"], n["rss_idle"])))
    for h in held:
        (a, ca), (b, cb), (c, cc) = n[f"rss_{h}"], d[f"rss_{h}"], o[f"rss_{h}"]
        rows.append(("6. memory", f"RSS MB, {h} open conns, handshake only (open {ca}/{cb}/{cc})", f"{a:.1f}", f"{b:.1f}", f"{c:.1f}", ratio(b, a)))
    rows.append(("6. memory", "RSS MB idle, fresh process", f"{n['rss_fresh']:.1f}", f"{d['rss_fresh']:.1f}", f"{o['rss_fresh']:.1f}", ratio(d["rss_fresh"], n["rss_fresh"])))
    for h in held:
        (a, ca, oa), (b, cb, ob), (c, cc, oc) = n[f"rss_served_{h}"], d[f"rss_served_{h}"], o[f"rss_served_{h}"]
        rows.append(("6. memory", f"RSS MB, {h} open conns, each served one request (open {ca}/{cb}/{cc}, 200s {oa}/{ob}/{oc})",
                     f"{a:.1f}", f"{b:.1f}", f"{c:.1f}", ratio(b, a)))

    errors = {k: sum(v[s]["errors"] for s in ("tp", "seq", "fixed", "new", "h2")) for k, v in results.items()}
    print(f"# Doelpoort vs nginx {subprocess.run([nginx, '-v'], capture_output=True, text=True).stderr.strip().split('/')[-1]}, "
          f"{time.strftime('%Y-%m-%d')}, {seconds} s per run after 1 s warm-up, 2 KB JSON, TLS 1.3, ECDSA P-256, "
          f"proxy on core {PROXY_CORE}, oha and upstream on core {LOAD_CORE}; "
          f"binary {doelpoort}" + (f", commit_delay {args.commit_delay}" if args.commit_delay else ""))
    print(f"direct to the upstream, 1 connection: p50 {base['p50_us']:.0f} µs, p99 {base['p99_us']:.0f} µs")
    print(f"this disk's fdatasync (1 KB append, preallocated): p50 {fsync_p50:.0f} µs, p99 {fsync_p99:.0f} µs")
    print(f"non-200 answers or errors: nginx {errors['nginx']}, Doelpoort full {errors['durable']}, audit off {errors['off']}")
    print()
    markdown_table(["scenario", "metric", "nginx", "Doelpoort (full pipeline, durable audit)",
                    "Doelpoort (audit off)", "full/nginx"], rows, numeric_from=2)
    print("7. scaling: `cargo bench --bench decision` (10 / 1,000 / 10,000 grants) and "
          "`cargo bench --bench minimise` (1 KB – 1 MB); see docs/performance.md")
    print()
    goals = targets(n, d, o, base, fsync_p99, held[-1])
    print("## Targets (issue 22)" + (" — smoke run: too short to judge" if args.smoke else ""))
    print()
    markdown_table(["target", "this run", "goal", ""], goals)
    print(f"{sum(1 for g in goals if g[3] != 'fail')} of {len(goals)} targets met")
    if base["ok"] == 0 or not all(v[k]["ok"] > 0 for v in results.values() for k in ("tp", "seq", "new", "h2")):
        sys.exit("a scenario got no 200 answer at all: the numbers above mean nothing (see target/sidebyside/*.log)")
    # Refusals are cheaper than exchanges: a run where more than 1 % were not 200 measured
    # something else (as happened when the case register began to refuse unregistered cases).
    bad = [f"{name} {k}" for name, v in results.items() for k in ("tp", "seq", "fixed", "new", "h2")
           if v[k]["errors"] > 0.01 * (v[k]["ok"] + v[k]["errors"])]
    if bad:
        sys.exit(f"more than 1 % of the answers were not 200 in: {', '.join(bad)}; the numbers above mean nothing")
    if args.strict and any(g[3] == "fail" for g in goals):
        sys.exit(1)


if __name__ == "__main__":
    main()
