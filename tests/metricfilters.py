"""A small evaluator of the CloudWatch Logs JSON filter patterns components/monitoring.py uses."""

from __future__ import annotations

import re
from typing import Any

TERM = re.compile(r'\(\$\.(\w+) = ("[^"]*"|\*|[^)\s]+)\)')


def pattern_fields(pattern: str) -> list[tuple[str, str]]:
    """(field, wanted) per term of `{ ($.f = "v") && ($.g = *) }`; fails on any other syntax."""
    terms = TERM.findall(pattern)
    assert terms and pattern.count("&&") == len(terms) - 1, pattern
    return terms


def matches(pattern: str, line: dict[str, Any]) -> bool:
    """Whether a JSON log line (top-level fields) matches: `($.f = "v")` compares text, `($.f = *)` needs the
    field, terms are joined by `&&`."""
    for field, wanted in pattern_fields(pattern):
        if field not in line:
            return False
        if wanted != "*" and str(line[field]) != wanted.strip('"'):
            return False
    return True


def metric_value(value: str, line: dict[str, Any]) -> Any:
    """What a metric filter publishes for a matched line: `1`, or the number in `$.field` (a JSON number, or
    CloudWatch publishes nothing)."""
    if not value.startswith("$."):
        return float(value)
    found = line[value[2:]]
    assert isinstance(found, int | float) and not isinstance(found, bool), f"{value} is not a JSON number: {found!r}"
    return found
