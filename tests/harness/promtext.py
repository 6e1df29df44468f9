#!/usr/bin/env python3
"""tests/harness/promtext.py: a strict parser of the Prometheus text exposition format 0.0.4.

Usage: promtext.py FILE   (FILE "-" = stdin)

Validates every line and, if all is well, prints one canonical line per sample,
`name{label="value",...} value` with the labels sorted (no braces without labels), and exits 0.
On the first violation prints `promtext: line N: why` to stderr and exits 1.

What it checks (stricter than Prometheus' own parser where the format leaves room):
- every line is `# HELP name text`, `# TYPE name counter|gauge|histogram|summary|untyped`, or a
  sample `name{label="value",...} value [timestamp]`; no other comments, no blank lines, and
  the text ends with a newline;
- metric and label names follow the Prometheus grammar; label names do not start with `__`;
  label values use only the escapes \\\\, \\" and \\n; no label appears twice in a sample;
- at most one HELP and one TYPE per family, TYPE before the family's first sample, and a
  family's lines are contiguous (it is not reopened after another family);
- every sample belongs to a family with a declared TYPE: counter and gauge samples carry the
  family's name; histogram samples are name_bucket (with `le`), name_sum and name_count;
  summary samples name (with `quantile`), name_sum, name_count;
- no series (name and label set) appears twice; counter values are not negative;
- histograms: per label set, `le` values strictly increase and end with "+Inf", bucket counts
  never decrease, the +Inf bucket equals name_count, and name_sum is present.
"""
import math
import re
import sys

METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
TYPES = ("counter", "gauge", "histogram", "summary", "untyped")
FLOAT = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|[+-]?Inf|NaN")
TIMESTAMP = re.compile(r"-?[0-9]+")


class FormatError(Exception):
    pass


def parse_float(text):
    if not FLOAT.fullmatch(text):
        raise FormatError(f"bad number {text!r}")
    return float(text.replace("Inf", "inf").replace("NaN", "nan"))


def parse_labels(text, pos):
    """text[pos] == '{'. Returns (labels dict, position after '}')."""
    labels = {}
    pos += 1
    while True:
        if pos < len(text) and text[pos] == "}":
            return labels, pos + 1
        m = LABEL_NAME.match(text, pos)
        if not m:
            raise FormatError(f"bad label name at column {pos + 1}")
        name = m.group(0)
        if name.startswith("__"):
            raise FormatError(f"reserved label name {name!r}")
        if name in labels:
            raise FormatError(f"label {name!r} twice")
        pos = m.end()
        if text[pos:pos + 2] != '="':
            raise FormatError(f"expected =\" after label {name!r}")
        pos += 2
        value = []
        while True:
            if pos >= len(text):
                raise FormatError(f"unterminated value of label {name!r}")
            c = text[pos]
            if c == '"':
                pos += 1
                break
            if c == "\\":
                esc = text[pos + 1:pos + 2]
                if esc not in ("\\", '"', "n"):
                    raise FormatError(f"bad escape \\{esc} in label {name!r}")
                value.append("\n" if esc == "n" else esc)
                pos += 2
                continue
            if c == "\n":
                raise FormatError("raw newline in a label value")
            value.append(c)
            pos += 1
        labels[name] = "".join(value)
        if pos < len(text) and text[pos] == ",":
            pos += 1  # a trailing comma before '}' is allowed by the format
        elif pos >= len(text) or text[pos] != "}":
            raise FormatError(f"expected , or }} after label {name!r}")


def parse_sample(line):
    m = METRIC_NAME.match(line)
    if not m:
        raise FormatError("a sample must start with a metric name")
    name, pos = m.group(0), m.end()
    labels = {}
    if pos < len(line) and line[pos] == "{":
        labels, pos = parse_labels(line, pos)
    rest = line[pos:]
    if not rest.startswith(" "):
        raise FormatError("expected one space before the value")
    parts = rest[1:].split(" ")
    if len(parts) not in (1, 2) or "" in parts:
        raise FormatError(f"expected 'value [timestamp]', got {rest[1:]!r}")
    value = parse_float(parts[0])
    if len(parts) == 2 and not TIMESTAMP.fullmatch(parts[1]):
        raise FormatError(f"bad timestamp {parts[1]!r}")
    return name, labels, parts[0], value


def family_of(name, types):
    """The declared family a sample name belongs to, and the sample's role in it."""
    if types.get(name) in ("counter", "gauge", "untyped", "summary"):
        return name, "value"
    for suffix in ("_bucket", "_sum", "_count"):
        base = name[: -len(suffix)]
        if name.endswith(suffix) and types.get(base) in ("histogram", "summary"):
            if suffix == "_bucket" and types[base] != "histogram":
                break
            return base, suffix[1:]
    raise FormatError(f"sample {name} has no TYPE declared before it")


class Parser:
    def __init__(self):
        self.types, self.helps = {}, {}
        self.current = None  # the family whose lines are being read
        self.closed = set()  # families left behind: may not come back
        self.series = set()
        self.out = []
        self.hist = {}  # (family, labels without le) -> {"buckets": [], "sum": .., "count": ..}

    def enter(self, family):
        if family == self.current:
            return
        if family in self.closed:
            raise FormatError(f"family {family} reopened after other families")
        if self.current is not None:
            self.closed.add(self.current)
        self.current = family

    def comment(self, line):
        m = re.fullmatch(r"# (HELP|TYPE) (\S+)(?: (.*))?", line)
        if not m:
            raise FormatError("only '# HELP name text' and '# TYPE name type' comments allowed")
        kind, name, arg = m.group(1), m.group(2), m.group(3)
        if not METRIC_NAME.fullmatch(name):
            raise FormatError(f"bad metric name {name!r}")
        self.enter(name)
        if kind == "HELP":
            if name in self.helps:
                raise FormatError(f"second HELP for {name}")
            if arg is None or not re.fullmatch(r"(?:[^\\]|\\[\\n])*", arg):
                raise FormatError(f"HELP text of {name} missing or with a bad escape")
            self.helps[name] = arg
            return
        if name in self.types:
            raise FormatError(f"second TYPE for {name}")
        # A TYPE after the family's samples cannot happen: those samples would have had no
        # TYPE to belong to.
        if arg not in TYPES:
            raise FormatError(f"bad type {arg!r} for {name}")
        self.types[name] = arg

    def sample(self, line):
        name, labels, text, value = parse_sample(line)
        family, role = family_of(name, self.types)
        self.enter(family)
        key = (name, tuple(sorted(labels.items())))
        if key in self.series:
            raise FormatError(f"series {line.split(' ')[0]} twice")
        self.series.add(key)
        ftype = self.types[family]
        if ftype == "counter" and not value >= 0:
            raise FormatError(f"counter {name} is {text}")
        if ftype == "histogram":
            self.histogram_sample(family, role, labels, value)
        if ftype == "summary" and role == "value" and "quantile" not in labels:
            raise FormatError(f"summary sample {name} without quantile")
        body = ",".join(f'{k}="{escape(v)}"' for k, v in sorted(labels.items()))
        self.out.append(f"{name}{{{body}}} {text}" if labels else f"{name} {text}")

    def histogram_sample(self, family, role, labels, value):
        if (role == "bucket") != ("le" in labels):
            raise FormatError(f"{family}: le belongs on _bucket samples only")
        rest = tuple(sorted((k, v) for k, v in labels.items() if k != "le"))
        h = self.hist.setdefault((family, rest), {"buckets": [], "sum": None, "count": None})
        if role == "bucket":
            if h["count"] is not None or h["sum"] is not None:
                raise FormatError(f"{family}{dict(rest)}: bucket after _sum/_count")
            le = parse_float(labels["le"])
            if h["buckets"] and not le > h["buckets"][-1][0]:
                raise FormatError(f"{family}{dict(rest)}: le {labels['le']} not increasing")
            if h["buckets"] and value < h["buckets"][-1][1]:
                raise FormatError(f"{family}{dict(rest)}: buckets not cumulative at le {le}")
            h["buckets"].append((le, value))
        else:
            h[role] = value

    def finish(self):
        for (family, rest), h in self.hist.items():
            where = f"{family}{dict(rest)}"
            if not h["buckets"] or h["buckets"][-1][0] != math.inf:
                raise FormatError(f"{where}: the last bucket is not le=\"+Inf\"")
            if h["count"] is None or h["sum"] is None:
                raise FormatError(f"{where}: _sum or _count missing")
            if h["buckets"][-1][1] != h["count"]:
                raise FormatError(f"{where}: +Inf bucket {h['buckets'][-1][1]} != _count "
                                  f"{h['count']}")


def escape(v):
    return v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def parse(text):
    """Returns the canonical sample lines, or raises FormatError('line N: ...')."""
    if not text.endswith("\n"):
        raise FormatError("line 0: the text does not end with a newline")
    p = Parser()
    for n, line in enumerate(text[:-1].split("\n"), 1):
        try:
            if line.startswith("#"):
                p.comment(line)
            else:
                p.sample(line)
        except FormatError as e:
            raise FormatError(f"line {n}: {e}") from None
    p.finish()
    return p.out


def main():
    if len(sys.argv) != 2:
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    with (sys.stdin if sys.argv[1] == "-" else open(sys.argv[1], encoding="utf-8")) as f:
        text = f.read()
    try:
        lines = parse(text)
    except FormatError as e:
        print(f"promtext: {e}", file=sys.stderr)
        return 1
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
