"""The chart's Grafana dashboard as tests read it: every PromQL expression, expanded as Grafana does, run.

`queries()` lists the expression of every panel target (rows' nested panels included) and of every query
variable; `expand()` substitutes the dashboard's variables (`$namespace`, `${model}`, `$__rate_interval`, ...)
the way Grafana does for a single selected value, and turns a `label_values(selector, label)` variable query
into the PromQL that returns the same label values; `instant()` runs one expression on a Prometheus HTTP API.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping
from typing import Any

from .cluster import REPO_ROOT

DASHBOARD = REPO_ROOT / "charts" / "thrifty" / "files" / "grafana-dashboard.json"
_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))
# `$name`, `${name}`, `${name:format}` and the deprecated `[[name]]`; `$1` in label_replace is no variable.
_VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$([A-Za-z_]\w*)|\[\[(\w+)\]\]")
# Grafana escapes a selected value's regex metacharacters with two backslashes (one survives PromQL's string).
_REGEX_SPECIAL = re.compile(r"([\\^$*+?.()|{}\[\]])")
_LABEL_VALUES = re.compile(r"^\s*label_values\((?P<selector>.+),\s*(?P<label>\w+)\s*\)\s*$", re.S)


@dataclasses.dataclass(frozen=True)
class Query:
    """One PromQL expression of the dashboard and where it is (panel title and refId, or variable)."""

    where: str
    expr: str


def load(path: pathlib.Path = DASHBOARD) -> dict[str, Any]:
    """The dashboard JSON."""
    doc: dict[str, Any] = json.loads(path.read_text())
    return doc


def panels(dashboard: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, rows' nested panels included (a collapsed row holds its panels)."""
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


def queries(dashboard: Mapping[str, Any]) -> list[Query]:
    """The expression of every panel target and query variable, in dashboard order."""
    found = [
        Query(f"panel {panel.get('title')!r} {target.get('refId')}", str(target.get("expr", "")))
        for panel in panels(dashboard)
        if panel.get("type") != "row"
        for target in panel.get("targets", [])
    ]
    for variable in dashboard.get("templating", {}).get("list", []):
        if variable.get("type") == "query":
            query = variable.get("query")
            text = query.get("query", "") if isinstance(query, dict) else query
            found.append(Query(f"variable {variable.get('name')!r}", str(text or "")))
    return found


def expand(expr: str, values: Mapping[str, str], rate_interval: str = "1m") -> str:
    """`expr` with the dashboard's variables replaced by `values` (regex-escaped as Grafana formats one
    selected value for Prometheus) and Grafana's interval variables by `rate_interval`; a `label_values`
    variable query becomes `group by (label) (selector)`.

    Raises:
        KeyError: The expression uses a variable neither `values` nor Grafana's built-ins give.
    """
    builtins = {"__rate_interval": rate_interval, "__interval": rate_interval, "__range": rate_interval}

    def value(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2) or match.group(3)
        if name in builtins:
            return builtins[name]
        return _REGEX_SPECIAL.sub(r"\\\\\1", values[name])

    expanded = _VARIABLE.sub(value, expr)
    label_values = _LABEL_VALUES.match(expanded)
    if label_values:
        return f"group by ({label_values['label']}) ({label_values['selector']})"
    return expanded


def instant(base_url: str, expr: str, timeout: float = 10.0) -> list[dict[str, Any]]:
    """The series an instant query returns (an empty list when none).

    Raises:
        ValueError: Prometheus refused the expression (it does not parse, or fails to evaluate).
    """
    url = f"{base_url}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    try:
        with _NO_PROXY.open(url, timeout=timeout) as response:
            body = json.loads(response.read())
    except urllib.error.HTTPError as err:
        body = json.loads(err.read() or b"{}")
    if body.get("status") != "success":
        raise ValueError(f"{body.get('errorType')}: {body.get('error')}")
    result: list[dict[str, Any]] = body["data"]["result"]
    return result
