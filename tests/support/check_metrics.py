#!/usr/bin/env python3
"""Checks a Prometheus text exposition (format 0.0.4) the way a scraper reads it.

    check_metrics.py FILE [NAME ...]

Parses FILE with the official Python client's parser (prometheus_client.parser, Debian's
python3-prometheus-client), which rejects malformed lines, then checks what that parser leaves
to the exporter: every family has HELP and TYPE before its samples and appears once, names and
label names are valid, no series is repeated, counters end in _total and are finite and
non-negative, histogram buckets are cumulative with a +Inf bucket equal to _count and a _sum,
and the text ends with a newline. Each NAME must be the name of a sample present. Exits 0 and
prints a summary when everything holds, 1 with the reasons otherwise (2: bad usage).
"""
import math
import re
import sys

from prometheus_client.parser import text_string_to_metric_families

NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
LABEL = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


def raw_checks(text, problems):
    """Line-level rules: HELP then TYPE, each once, before the family's samples."""
    if not text.endswith("\n"):
        problems.append("the exposition does not end with a newline")
    helped, typed, seen_family = set(), {}, []
    current = None
    for n, line in enumerate(text.split("\n")[:-1], 1):
        if line.startswith("# HELP "):
            name = line.split(" ", 3)[2]
            if name in helped:
                problems.append(f"line {n}: a second HELP for {name}")
            helped.add(name)
            current = name
        elif line.startswith("# TYPE "):
            parts = line.split(" ")
            if len(parts) != 4:
                problems.append(f"line {n}: malformed TYPE line")
                continue
            name = parts[2]
            if name in typed:
                problems.append(f"line {n}: a second TYPE for {name}")
            if name not in helped or current != name:
                problems.append(f"line {n}: TYPE of {name} without its HELP right before")
            typed[name] = parts[3]
            seen_family.append(name)
        elif line.startswith("#") or line == "":
            continue  # comments and empty lines are ignored by the format
        else:
            sample = re.split(r"[{ ]", line, 1)[0]
            family = seen_family[-1] if seen_family else None
            if family is None or not (sample == family or (
                    sample.startswith(family) and
                    sample[len(family):] in ("_bucket", "_sum", "_count", "_total", "_created"))):
                problems.append(f"line {n}: sample {sample} outside its family's block "
                                f"(current family {family})")
    for name in helped:
        if name not in typed:
            problems.append(f"{name} has HELP but no TYPE")


def family_checks(families, problems):
    series = set()
    names = set()
    for fam in families:
        if not fam.documentation:
            problems.append(f"{fam.name}: no HELP text")
        if fam.type in ("unknown", "untyped"):
            problems.append(f"{fam.name}: no TYPE")
        buckets = {}
        sums, counts = {}, {}
        for s in fam.samples:
            names.add(s.name)
            if not NAME.match(s.name):
                problems.append(f"invalid metric name {s.name!r}")
            for label in s.labels:
                if not LABEL.match(label) or label.startswith("__"):
                    problems.append(f"{s.name}: invalid label name {label!r}")
            key = (s.name, tuple(sorted(s.labels.items())))
            if key in series:
                problems.append(f"series repeated: {s.name}{dict(s.labels)}")
            series.add(key)
            if fam.type == "counter":
                if not s.name.endswith(("_total", "_created")):
                    problems.append(f"counter sample {s.name} does not end in _total")
                if not math.isfinite(s.value) or s.value < 0:
                    problems.append(f"counter {s.name} has value {s.value}")
            if fam.type == "histogram":
                rest = tuple(sorted((k, v) for k, v in s.labels.items() if k != "le"))
                if s.name.endswith("_bucket"):
                    if "le" not in s.labels:
                        problems.append(f"{s.name}: bucket without le")
                        continue
                    buckets.setdefault(rest, []).append((float(s.labels["le"]), s.value))
                elif s.name.endswith("_sum"):
                    sums[rest] = s.value
                elif s.name.endswith("_count"):
                    counts[rest] = s.value
        for rest, bs in buckets.items():
            les = [le for le, _ in bs]
            if les != sorted(les):
                problems.append(f"{fam.name}{dict(rest)}: buckets not in ascending le order")
            values = [v for _, v in bs]
            if any(b > a for a, b in zip(values[1:], values)):
                problems.append(f"{fam.name}{dict(rest)}: buckets are not cumulative: {values}")
            if not les or not math.isinf(les[-1]):
                problems.append(f"{fam.name}{dict(rest)}: no le=\"+Inf\" bucket")
            elif counts.get(rest) != values[-1]:
                problems.append(f"{fam.name}{dict(rest)}: _count {counts.get(rest)} != +Inf "
                                f"bucket {values[-1]}")
            if rest not in sums:
                problems.append(f"{fam.name}{dict(rest)}: no _sum")
    return names, len(series)


def main(argv):
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    with open(argv[1], encoding="utf-8") as f:
        text = f.read()
    problems = []
    try:
        families = list(text_string_to_metric_families(text))
    except Exception as e:  # the parser's own verdict: malformed exposition
        print(f"prometheus_client parser: {type(e).__name__}: {e}")
        return 1
    raw_checks(text, problems)
    names, nseries = family_checks(families, problems)
    for want in argv[2:]:
        if want not in names:
            problems.append(f"no sample named {want}")
    if problems:
        print("\n".join(problems))
        return 1
    print(f"ok: {len(families)} families, {nseries} series")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
