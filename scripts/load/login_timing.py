#!/usr/bin/env python3
"""Compares login time for an unknown identifier and for a wrong password.

Usage: scripts/load/login_timing.py BASE_URL [ROUNDS]
(for example http://127.0.0.1:8080 against `cargo run --release -p bff-app`).
Both must answer 401 in about the same time: a difference would tell an attacker
which identifiers have accounts. Prints median, mean and standard deviation.
"""
import json
import statistics
import sys
import time
import urllib.error
import urllib.request


def login(base, identifier, password):
    body = json.dumps({"identifier": identifier, "password": password}).encode()
    request = urllib.request.Request(base + "/api/v1/auth/login", data=body, headers={"content-type": "application/json"})
    start = time.perf_counter()
    try:
        urllib.request.urlopen(request).read()
        status = 200
    except urllib.error.HTTPError as error:
        error.read()
        status = error.code
    return status, (time.perf_counter() - start) * 1000


def main():
    base = sys.argv[1].rstrip("/")
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 60
    for _ in range(5):
        login(base, "customer@example.com", "warm-up, wrong")
    unknown, wrong = [], []
    for i in range(rounds):
        status_unknown, t_unknown = login(base, f"nobody-{i}@example.com", "a wrong password")
        status_wrong, t_wrong = login(base, "customer@example.com", "a wrong password")
        assert status_unknown == status_wrong == 401, (status_unknown, status_wrong)
        unknown.append(t_unknown)
        wrong.append(t_wrong)
    for name, samples in (("unknown identifier", unknown), ("wrong password", wrong)):
        print(f"{name:20} median {statistics.median(samples):6.2f} ms  mean {statistics.mean(samples):6.2f} ms"
              f"  stdev {statistics.stdev(samples):5.2f} ms  (n={len(samples)})")


if __name__ == "__main__":
    main()
