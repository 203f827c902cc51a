#!/usr/bin/env python3
"""Runs schemathesis against a real server over a contract and judges the result per operation.

    tests/contract/run_schemathesis.py [--binary target/debug/obscura-relay]
        [--contract served|upstream|PATH] [--seed 1] [--max-examples 30] [--max-time 150]
        [--report-dir target/schemathesis] [--no-judge]

It starts the server on loopback (port 0, --ready-file, a temp data dir, rate limits
raised), runs `schemathesis run` with every check, a fixed seed and bounded examples and time,
and the hooks of schemathesis_hooks.py (a fresh user and device with valid keys for every
authenticated operation), then reads the ndjson report and prints, per operation, the checks
that failed.

With the served contract (the default: GET /openapi.yaml of the started server) every check must
pass on every operation except the failures listed in EXPECTED: the positive-data check on
operations whose validity no schema can express. Any other failure, or a schemathesis error,
makes the exit status 1. `--no-judge` (for the upstream contract, a comparison) only reports.
"""

import argparse
import base64
import json
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
UPSTREAM = HERE / "upstream" / "openapi-v1.yaml"
READY_TIMEOUT_SECS = 30
SCHEMATHESIS_TIMEOUT_SLACK_SECS = 120

# Failures that no schema can prevent, per operation: a schema-valid request that the server
# must refuse with 400 because its validity depends on what no schema expresses.
EXPECTED = {
    # A valid XEdDSA signature of the signed prekey by the identity key.
    "POST /v1/devices": {"positive_data_acceptance": "XEdDSA signature"},
    # A valid signature, an increasing signed-prekey id, unique one-time prekey ids.
    "POST /v1/devices/keys": {"positive_data_acceptance": "XEdDSA signature, increasing signed-prekey id"},
    "POST /v1/keys": {"positive_data_acceptance": "XEdDSA signature, increasing signed-prekey id"},
    # A protobuf `SendMessageRequest` with at least one submission.
    "POST /v1/messages": {"positive_data_acceptance": "protobuf body"},
    # The stored version the optimistic lock compares with.
    "POST /v1/backup": {"positive_data_acceptance": "optimistic-lock version"},
    # A WebSocket upgrade, which the fuzzer cannot perform.
    "GET /v1/gateway": {"positive_data_acceptance": "WebSocket upgrade"},
}
# Legacy registration is POST /v1/users with keys: its positive-data failures are expected only
# for bodies that carry the legacy key fields (a v1 registration must always be accepted).
LEGACY_KEY_FIELDS = ("identityKey", "registrationId", "signedPreKey", "oneTimePreKeys")
# The label of the stateful phase's scenarios (chains of operations), judged like an operation.
STATEFUL = "Stateful tests"


def server_args(port_dir: Path) -> list:
    return [
        "--server-host", "127.0.0.1",
        "--server-port", "0",
        "--server-mgmt-port", "0",
        "--ready-file", str(port_dir / "ready.json"),
        "--data-dir", str(port_dir / "data"),
        "--durability", "buffered",
        "--shards", "2",
        # The server refuses weak secrets: 64 hex characters, as `openssl rand -hex 32` makes.
        "--auth-jwt-secret", secrets.token_hex(32),
        "--rate-limit-per-second", "1000000",
        "--rate-limit-burst", "1000000",
        "--auth-rate-limit-per-second", "1000000",
        "--auth-rate-limit-burst", "1000000",
    ]


def start_server(binary: Path, work: Path):
    log = open(work / "server.log", "wb")
    process = subprocess.Popen([str(binary), *server_args(work)], stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + READY_TIMEOUT_SECS
    ready = work / "ready.json"
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}; see {work / 'server.log'}")
        try:
            return process, json.loads(ready.read_text())["main_port"]
        except (FileNotFoundError, json.JSONDecodeError, KeyError):
            time.sleep(0.05)
    process.kill()
    raise RuntimeError("server did not become ready")


def stop_server(process):
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def run_schemathesis(args, base_url: str, report: Path) -> int:
    if args.contract == "served":
        location, url = f"{base_url}/openapi.yaml", []
    else:
        location = str(UPSTREAM if args.contract == "upstream" else Path(args.contract).resolve())
        url = ["--url", base_url]
    command = [
        "schemathesis", "run", location, *url,
        "--checks", "all",
        "--seed", str(args.seed),
        "--max-examples", str(args.max_examples),
        "--max-time", str(args.max_time),
        "--workers", "1",
        "--continue-on-failure",
        # The server counts passwords and push tokens in UTF-8 bytes (as the reference does),
        # JSON Schema counts characters: in ASCII the two agree, so those bounds are exact.
        "--generation-codec", "ascii",
        "--generation-database", "none",
        "--request-timeout", "20",
        "--report", "ndjson",
        "--report-ndjson-path", str(report),
        "--no-color",
    ]
    env = {**os.environ, "SCHEMATHESIS_HOOKS": str(HERE / "schemathesis_hooks.py"), "OBSCURA_CONTRACT_BASE_URL": base_url}
    print("+", " ".join(command), flush=True)
    # Run where the report goes: schemathesis keeps a `.schemathesis` folder in its working directory.
    completed = subprocess.run(
        command, env=env, cwd=report.parent, timeout=args.max_time + SCHEMATHESIS_TIMEOUT_SLACK_SECS, check=False
    )
    return completed.returncode


def body_of(case) -> object:
    body = case.get("body")
    if isinstance(body, dict) and "$base64" in body:
        return base64.b64decode(body["$base64"])
    return body


def is_legacy_registration(case) -> bool:
    body = body_of(case)
    return isinstance(body, dict) and any(body.get(field) is not None for field in LEGACY_KEY_FIELDS)


def read_report(report: Path):
    """Per operation: the scenarios run, and the failed checks with the cases that failed them
    (each with the status it got)."""
    tested = defaultdict(int)
    failed = defaultdict(lambda: defaultdict(list))
    errors = []
    for line in report.read_text(encoding="utf-8").splitlines():
        event = json.loads(line)
        for kind, payload in event.items():
            if kind in ("NonFatalError", "FatalError"):
                value = payload.get("value", payload)
                text = value.get("message", value) if isinstance(value, dict) else value
                errors.append(f"{payload.get('label', '')}: {str(text)[:300]}")
            if kind != "ScenarioFinished":
                continue
            recorder = payload.get("recorder", {})
            label = recorder.get("label", "?")
            tested[label] += 1
            cases = recorder.get("cases", {})
            interactions = recorder.get("interactions", {})
            for case_id, checks in recorder.get("checks", {}).items():
                for check in checks:
                    if check.get("status", "").lower() == "failure":
                        case = cases.get(case_id, {}).get("value", {})
                        status = interactions.get(case_id, {}).get("response", {}).get("status_code")
                        failed[label][check.get("name")].append((case, status))
    return tested, failed, errors


def judge(label: str, check: str, cases: list) -> str:
    """Why this failure is expected, or None."""
    if label == "POST /v1/users" and check == "positive_data_acceptance":
        legacy = all(is_legacy_registration(case) for case, _ in cases)
        return "legacy registration: XEdDSA signature" if legacy else None
    return EXPECTED.get(label, {}).get(check)


def summarize(tested, failed, errors, judging: bool) -> int:
    """Prints the verdict per operation; the number of unexpected failures and errors."""
    unexpected = 0
    passed = 0
    for label in sorted(tested):
        checks = failed.get(label, {})
        if not checks:
            passed += label != STATEFUL
            print(f"  PASS      {label}")
            continue
        for check, cases in sorted(checks.items()):
            reason = judge(label, check, cases) if judging else None
            verdict = "expected" if reason else "FAIL"
            unexpected += reason is None
            statuses = sorted({str(status) for _, status in cases})
            because = f" - {reason}" if reason else ""
            print(f"  {verdict:9} {label}: {check} ({len(cases)} cases, got {', '.join(statuses)}){because}")
    operations = len(set(tested) - {STATEFUL})
    print(f"{passed} of {operations} operations passed every check")
    for error in errors:
        print(f"  ERROR {error}")
    return unexpected + len(errors)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--binary", default=str(ROOT / "target" / "debug" / "obscura-relay"))
    parser.add_argument("--contract", default="served", help="served, upstream or a path")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--max-examples", type=int, default=30)
    parser.add_argument("--max-time", type=int, default=150, help="seconds schemathesis may spend")
    parser.add_argument("--report-dir", default=str(ROOT / "target" / "schemathesis"))
    parser.add_argument("--no-judge", action="store_true", help="report only (the upstream comparison)")
    args = parser.parse_args()
    report_dir = Path(args.report_dir)
    report_dir.mkdir(parents=True, exist_ok=True)
    report = report_dir / f"{Path(args.contract).stem}.ndjson"
    with tempfile.TemporaryDirectory(prefix="obscura-schemathesis-") as work:
        process, port = start_server(Path(args.binary), Path(work))
        try:
            status = run_schemathesis(args, f"http://127.0.0.1:{port}", report)
        finally:
            stop_server(process)
            (report_dir / "server.log").write_bytes((Path(work) / "server.log").read_bytes())
    tested, failed, errors = read_report(report)
    if not tested:
        print(f"schemathesis ran nothing (exit {status}); see {report}")
        return 1
    bad = summarize(tested, failed, errors, judging=not args.no_judge)
    if args.no_judge:
        return 0
    if bad:
        print(f"{bad} unexpected failures or errors; the report is {report}")
        return 1
    print("no failure but the expected ones")
    return 0


if __name__ == "__main__":
    sys.exit(main())
