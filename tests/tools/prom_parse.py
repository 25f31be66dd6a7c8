#!/usr/bin/env python3
"""Parses Prometheus text exposition from stdin with the Prometheus project's own parser
(PyPI prometheus-client) and prints every sample as one JSON line:
{"family", "type", "name", "labels", "value"}.

An exposition the parser refuses makes it exit non-zero with the parser's message, so a test
that pipes a stage's /metrics through it checks the format independently of the Rust client
that wrote it.
"""

import json
import sys

from prometheus_client.parser import text_string_to_metric_families


def main() -> int:
    text = sys.stdin.read()
    try:
        families = list(text_string_to_metric_families(text))
    except Exception as error:  # the parser raises ValueError and friends
        print(f"invalid exposition: {error}", file=sys.stderr)
        return 1
    for family in families:
        if not family.documentation:
            print(f"invalid exposition: {family.name} has no HELP", file=sys.stderr)
            return 1
        for sample in family.samples:
            print(
                json.dumps(
                    {
                        "family": family.name,
                        "type": family.type,
                        "name": sample.name,
                        "labels": sample.labels,
                        "value": sample.value,
                    }
                )
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
