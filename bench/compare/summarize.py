#!/usr/bin/env python3
"""Summarizes bench/compare/run.sh results: a markdown table of medians per server.

usage: summarize.py OUTDIR

Reads OUTDIR/ROUND-SERVER-SCENARIO.json (stanzad-bench --json output) and prints, for each
metric, the median over the rounds for every server, and the ratios stanzad/ejabberd and
stanzad/prosody. A cell marked `*` includes a run that reported failures (lost messages,
failed logins, ...); `(n=K)` shows how many rounds a median is taken over when that is
not the same for all cells. Standard library only.
"""

import json
import re
import statistics
import sys
from pathlib import Path

SERVERS = ["stanzad", "prosody", "ejabberd"]
NAME = re.compile(r"^(\d+)-(stanzad|prosody|ejabberd)-([a-z0-9-]+)\.json$")

# (label, scenario, result key, better): better is "higher" or "lower".
METRICS = [
    ("logins/s, plain", "login-plain", "logins_per_sec", "higher"),
    ("logins/s, STARTTLS", "login-starttls", "logins_per_sec", "higher"),
    ("delivered msgs/s, {pairs2} connections", "msg-closed", "delivered_per_sec", "higher"),
    ("server CPU µs / delivered msg, {pairs2} connections", "msg-closed", "server_cpu_us_per_message", "lower"),
    ("latency p50 ms at {rate} msgs/s", "msg-open", "latency_p50_ms", "lower"),
    ("latency p99 ms at {rate} msgs/s", "msg-open", "latency_p99_ms", "lower"),
    ("offline stored/s", "offline", "stored_per_sec", "higher"),
    ("offline drain s, {messages} msgs", "offline", "drain_secs", "lower"),
]
IDLE = ("server RSS KiB / idle session, {count} sessions", "server_rss_per_session_kib", "lower")


def load(outdir):
    """{(server, scenario): [(round, json), ...]}"""
    runs = {}
    for path in sorted(outdir.iterdir()):
        m = NAME.match(path.name)
        if not m:
            continue
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as e:
            print(f"warning: {path.name}: {e}", file=sys.stderr)
            continue
        runs.setdefault((m.group(2), m.group(3)), []).append((int(m.group(1)), data))
    return runs


def param(runs, scenario, name):
    """A parameter of the scenario (from any run), for the row labels."""
    for (_, sc), items in runs.items():
        if sc == scenario:
            for _, data in items:
                if name in data.get("params", {}):
                    value = data["params"][name]
                    return int(value) if isinstance(value, float) and value.is_integer() else value
    return "?"


def value_of(results, key):
    """A result; the drain time is recomputed from drained_per_sec (the JSON rounds seconds
    to 0.01, too coarse for short drains)."""
    if key == "drain_secs":
        received, per_sec = results.get("received"), results.get("drained_per_sec")
        if isinstance(received, (int, float)) and isinstance(per_sec, (int, float)) and received > 0 and per_sec > 0:
            return received / per_sec
    return results.get(key)


def cell(runs, server, scenario, key):
    """(median or None, number of values, any run not ok)"""
    values, failed = [], False
    for _, data in runs.get((server, scenario), []):
        value = value_of(data.get("results", {}), key)
        if isinstance(value, (int, float)):
            values.append(float(value))
            failed |= not data.get("ok", True)
    return (statistics.median(values) if values else None), len(values), failed


def fmt(x):
    if x is None:
        return "–"
    if abs(x) >= 1000:
        return f"{x:,.0f}"
    if abs(x) >= 100:
        return f"{x:.0f}"
    if abs(x) >= 10:
        return f"{x:.1f}"
    if abs(x) >= 0.1 or x == 0:
        return f"{x:.2f}"
    return f"{x:.2g}"


def ratio(a, b):
    if a is None or b is None or b == 0:
        return "–"
    return f"{a / b:.2f}×"


def main():
    if len(sys.argv) != 2:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    outdir = Path(sys.argv[1])
    runs = load(outdir)
    if not runs:
        print(f"no results in {outdir}", file=sys.stderr)
        return 1
    servers = [s for s in SERVERS if any(srv == s for srv, _ in runs)]
    rows = []
    for label, scenario, key, better in METRICS:
        label = label.format(
            pairs2=2 * int(param(runs, scenario, "pairs")) if scenario.startswith("msg") else "",
            rate=param(runs, scenario, "rate"),
            messages=param(runs, scenario, "messages"),
        )
        rows.append((label, scenario, key, better))
    idle = sorted({sc for _, sc in runs if sc.startswith("idle-")}, key=lambda s: int(s.split("-")[1]))
    for scenario in idle:
        label, key, better = IDLE
        rows.append((label.format(count=scenario.split("-")[1]), scenario, key, better))

    header = ["metric", "better"] + servers
    others = [s for s in ("ejabberd", "prosody") if s in servers and "stanzad" in servers]
    header += [f"stanzad/{s}" for s in others]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] * 2 + ["---:"] * (len(header) - 2)) + "|"]
    rounds = {n for items in runs.values() for n in [len(items)]}
    uniform = len(rounds) == 1
    for label, scenario, key, better in rows:
        medians = {}
        cells = []
        for server in servers:
            median, n, failed = cell(runs, server, scenario, key)
            medians[server] = median
            text = fmt(median) + ("*" if failed else "")
            if median is not None and not uniform:
                text += f" (n={n})"
            cells.append(text)
        ratios = [ratio(medians.get("stanzad"), medians.get(s)) for s in others]
        lines.append("| " + " | ".join([label, "↑" if better == "higher" else "↓"] + cells + ratios) + " |")
    print("\n".join(lines))
    print()
    n_rounds = max(n for _, items in runs.items() for n in [len({r for r, _ in items})])
    print(f"Medians over {n_rounds} round(s); ratios are stanzad's median divided by the other's "
          "(↑: above 1 favours stanzad, ↓: below 1 favours stanzad). * = a run reported failures.")
    params = outdir / "params.txt"
    if params.exists():
        print()
        print("```")
        print(params.read_text().rstrip())
        print("```")
    failures = sorted(
        f"{r}-{srv}-{sc}" for (srv, sc), items in runs.items() for r, data in items if not data.get("ok", True)
    )
    if failures:
        print()
        print("Runs with failures: " + ", ".join(failures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
