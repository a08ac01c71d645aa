#!/usr/bin/env python3
"""Summarizes bench/compare/run.sh results: a markdown table of medians per server.

usage: summarize.py OUTDIR

Reads OUTDIR/ROUND-SERVER-SCENARIO.json (stanzad-bench --json output) and prints, for each
metric, the median over the rounds for every server, and the ratios stanzad/ejabberd and
stanzad/prosody. Runs with the message archive on (`run.sh --archive on|both`) are named
SERVER+mam: they get a table of their own (stanzad+mam, prosody+mam, ejabberd+mam and the
same ratios between them), and when both settings are there, a third table gives each
server's archive-on median divided by its archive-off median. A cell marked `*` includes a
run that reported failures (lost messages, failed logins, ...); `(n=K)` shows how many
rounds a median is taken over when that is not the same for all cells of a table. Rows
with no result in a table (scenarios not run) are left out. Standard library only.
"""

import json
import re
import statistics
import sys
from pathlib import Path

SERVERS = ["stanzad", "prosody", "ejabberd"]
MAM = "+mam"  # the suffix run.sh gives a server's name on archive-on runs
NAME = re.compile(r"^(\d+)-((?:stanzad|prosody|ejabberd)(?:\+mam)?)-([a-z0-9-]+)\.json$")

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
    # The archive's own scenario (archive-on runs only): pages of `page` results.
    ("archive pages/s, {messages} msgs, {page} a page", "query", "pages_per_sec", "higher"),
    ("archive page latency p50 ms", "query", "page_p50_ms", "lower"),
    ("server CPU µs / archive page", "query", "query_server_cpu_us_per_page", "lower"),
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
    if key.startswith("page_") and key not in results:
        # stanzad-bench 0.1.0 names the query's page latencies page__p50_ms, ...
        return results.get("page__" + key[len("page_"):])
    return results.get(key)


def cell(runs, server, scenario, key):
    """(median or None, number of values, any run not ok)"""
    values, failed = [], False
    for _, data in runs.get((server, scenario), []):
        value = value_of(data.get("results", {}), key)
        ok = data.get("ok", True)
        if not ok and key.endswith("_ms") and value == 0:
            # A failed run whose client tasks had to be abandoned reports its latencies as 0
            # (no samples): no value, but the cell still shows the failure.
            failed = True
            continue
        if isinstance(value, (int, float)):
            values.append(float(value))
            failed |= not ok
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


def table(runs, rows, servers, pairs):
    """Markdown lines: a row per metric with a result in `servers`, the medians of `servers`,
    then a column per (numerator, denominator) in `pairs`."""
    header = ["metric", "better"] + servers + [f"{a}/{b}" for a, b in pairs]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] * 2 + ["---:"] * (len(header) - 2)) + "|"]
    counts = {len(items) for (srv, _), items in runs.items() if srv in servers}
    uniform = len(counts) <= 1
    wanted = {srv for pair in pairs for srv in pair} | set(servers)
    for label, scenario, key, better in rows:
        medians, cells = {}, {}
        for server in wanted:
            median, n, failed = cell(runs, server, scenario, key)
            medians[server] = median
            text = fmt(median) + ("*" if failed else "")
            if median is not None and not uniform:
                text += f" (n={n})"
            cells[server] = text
        ratios = [ratio(medians[a], medians[b]) for a, b in pairs]
        if all(medians[srv] is None for srv in servers) if servers else all(r == "–" for r in ratios):
            continue
        lines.append("| " + " | ".join([label, "↑" if better == "higher" else "↓"] + [cells[s] for s in servers] + ratios) + " |")
    return lines


def main():
    if len(sys.argv) != 2:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    outdir = Path(sys.argv[1])
    runs = load(outdir)
    if not runs:
        print(f"no results in {outdir}", file=sys.stderr)
        return 1
    rows = []
    for label, scenario, key, better in METRICS:
        pairs = param(runs, scenario, "pairs")  # "?" when the scenario did not run
        label = label.format(
            pairs2=2 * int(pairs) if isinstance(pairs, (int, float)) else pairs,
            rate=param(runs, scenario, "rate"),
            messages=param(runs, scenario, "messages"),
            page=param(runs, scenario, "page"),
        )
        rows.append((label, scenario, key, better))
    idle = sorted({sc for _, sc in runs if sc.startswith("idle-")}, key=lambda s: int(s.split("-")[1]))
    for scenario in idle:
        label, key, better = IDLE
        rows.append((label.format(count=scenario.split("-")[1]), scenario, key, better))

    present = {srv for srv, _ in runs}
    off = [s for s in SERVERS if s in present]
    on = [s + MAM for s in SERVERS if s + MAM in present]

    def versus(servers, suffix):
        # stanzad against the others, within one archive setting.
        if "stanzad" + suffix not in servers:
            return []
        return [("stanzad" + suffix, s + suffix) for s in ("ejabberd", "prosody") if s + suffix in servers]

    sections = []
    if off:
        sections.append(("Archive off", table(runs, rows, off, versus(off, ""))))
    if on:
        sections.append(("Archive on (XEP-0313 MAM)", table(runs, rows, on, versus(on, MAM))))
    both = [s for s in SERVERS if s in off and s + MAM in on]
    if both:
        # Each server against itself: archive-on median / archive-off median.
        lines = table(runs, rows, [], [(s + MAM, s) for s in both])
        lines[0] = "| " + " | ".join(["metric", "better"] + [f"{s}: on/off" for s in both]) + " |"
        sections.append(("Archive on / archive off, per server", lines))
    for i, (title, lines) in enumerate(sections):
        if len(sections) > 1:
            print(("\n" if i else "") + f"### {title}\n")
        print("\n".join(lines))
    print()
    n_rounds = max(n for _, items in runs.items() for n in [len({r for r, _ in items})])
    print(f"Medians over {n_rounds} round(s); ratios are stanzad's median divided by the other's "
          "(↑: above 1 favours stanzad, ↓: below 1 favours stanzad). * = a run reported failures.")
    if both:
        print("On/off ratios are a server's median with its archive on divided by its median with it off "
              "(↑: below 1, ↓: above 1 is what the archive costs that server).")
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
