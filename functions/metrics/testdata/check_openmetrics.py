"""Parses an exposition with Python prometheus_client and prints what it read.

    check_openmetrics.py openmetrics < exposition   # the strict OpenMetrics 1.0 parser
    check_openmetrics.py prometheus < exposition    # the Prometheus text (0.0.4) parser

Reads the text from stdin, consumes every family the parser yields (its
checks run lazily, as the iterator advances) and prints one JSON object:

    {"families": N, "samples": M,
     "by_family": [{"name", "type", "unit", "samples": [{"name", "labels", "value"}]}]}

Values are printed with repr() ("inf", "nan", "0.1"), which Rust's f64
parser reads exactly. A parse error exits 1 with the parser's message on
stderr. Used by functions/metrics/tests/exposition.rs; needs
prometheus_client (requirements.txt, installed into target/pyenv by
`cargo xtask install`).
"""

import json
import sys

from prometheus_client import parser as prometheus_parser
from prometheus_client.openmetrics import parser as openmetrics_parser


def main() -> int:
    if len(sys.argv) != 2 or sys.argv[1] not in ("openmetrics", "prometheus"):
        print(__doc__, file=sys.stderr)
        return 2
    text = sys.stdin.buffer.read().decode("utf-8")
    parse = (
        openmetrics_parser.text_string_to_metric_families
        if sys.argv[1] == "openmetrics"
        else prometheus_parser.text_string_to_metric_families
    )
    families = []
    try:
        for family in parse(text):
            families.append(
                {
                    "name": family.name,
                    "type": family.type,
                    "unit": family.unit,
                    "samples": [
                        {
                            "name": s.name,
                            "labels": dict(s.labels),
                            "value": repr(float(s.value)),
                        }
                        for s in family.samples
                    ],
                }
            )
    except Exception as e:  # noqa: BLE001 - any parser complaint fails the check
        print(f"{type(e).__name__}: {e}", file=sys.stderr)
        return 1
    print(
        json.dumps(
            {
                "families": len(families),
                "samples": sum(len(f["samples"]) for f in families),
                "by_family": families,
            },
            ensure_ascii=False,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
