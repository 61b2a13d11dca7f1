"""Checking the dashboard and alert rules of deploy/ against the metrics the services expose:
the metric names a PromQL expression reads (parsed by ``promql_parser``, a port of Prometheus'
own parser), the names a scrape of a service offers, and the shape of a Prometheus rule file
and of a Grafana dashboard."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from typing import Any

import promql_parser
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.parser import text_string_to_metric_families

SYNTHETIC = frozenset({"up", "scrape_duration_seconds", "scrape_samples_scraped"})
"""Series Prometheus writes itself for every scrape target; no service exposes them."""

TARGET_LABELS = frozenset({"job", "instance"})
"""Labels Prometheus adds to every series it scrapes."""

SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "summary": ("", "_count", "_sum", "_created"),
    "info": ("_info",),
    "stateset": ("",),
    "gaugehistogram": ("_bucket", "_gcount", "_gsum"),
    "unknown": ("",),
}
"""The series names each metric type is scraped as (the text format's sample names)."""

GRAFANA_VARIABLES = {
    "$__rate_interval": "5m",
    "$__interval": "1m",
    "$__range": "6h",
}
"""Grafana's built-in variables, replaced by a value of their kind before parsing."""

DURATION = re.compile(r"^(\d+(ms|s|m|h|d|w|y))+$")
"""A Prometheus duration, as rule files take them (``for``, ``interval``)."""


def exposed_series(text: str) -> set[str]:
    """Every series name a scrape of this Prometheus text can hold: each family's names by its
    type, also for a labelled family that has no sample yet."""
    return {
        family.name + suffix
        for family in text_string_to_metric_families(text)
        for suffix in SUFFIXES[family.type]
    }


def metric_names(expr: str) -> set[str]:
    """The metric names an expression selects (Grafana's variables replaced); raises
    ``ValueError`` when it does not parse, or selects series by something else than a name."""
    for variable, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    if "$" in re.sub(r'"[^"]*"', "", expr):  # a `$1` in label_replace's strings is fine
        raise ValueError(f"an unknown Grafana variable in {expr!r}")
    names: set[str] = set()
    nameless: list[str] = []

    def visit(node: Any) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            name = node.name or next(
                (m.value for m in node.matchers.matchers
                 if m.name == "__name__" and m.op == promql_parser.MatchOp.Equal),
                None,
            )  # fmt: skip
            if name is None:
                nameless.append(str(node))
            else:
                names.add(name)

    promql_parser.walk(promql_parser.parse(expr), visit)
    if nameless:
        raise ValueError(f"selectors without a metric name: {nameless}")
    return names


def unknown_metrics(exprs: Iterable[str], exposed: set[str]) -> dict[str, set[str]]:
    """Each expression's metric names that no service exposes (Prometheus' own series aside)."""
    found = {expr: metric_names(expr) - exposed - SYNTHETIC for expr in exprs}
    return {expr: names for expr, names in found.items() if names}


def series_labels(*holders: object) -> dict[str, frozenset[str]]:
    """The label names of every series the metric objects of ``holders`` (``ApiMetrics``,
    ``IngestMetrics``...) expose, by series name; ``le`` on histogram buckets. Read from the
    objects (prometheus_client's ``_labelnames``): a labelled metric with no sample yet shows
    no labels in a scrape."""
    found: dict[str, frozenset[str]] = {}
    for holder in holders:
        for metric in vars(holder).values():
            if isinstance(metric, MetricWrapperBase):
                labels = frozenset(metric._labelnames)
                for suffix in SUFFIXES[metric._type]:
                    extra = {"le"} if suffix == "_bucket" else set()
                    found[metric._name + suffix] = labels | extra
    return found


def label_errors(expr: str, labels: dict[str, frozenset[str]]) -> list[str]:
    """Labels an expression matches on, groups by or joins on that the series at that point do
    not carry (Prometheus' target labels aside), following each label through aggregations,
    joins and ``label_replace``. A misspelt label matches nothing or groups everything into
    one series: Prometheus raises no error, the alert only stays silent."""
    for variable, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    errors: list[str] = []

    def check(used: set[str], known: frozenset[str] | None, where: Any) -> None:
        if known is not None and (missing := used - known):
            errors.append(f"{str(where)[:70]!r}: no label {sorted(missing)} there")

    def out(node: Any) -> frozenset[str] | None:
        """The labels of the series ``node`` gives; None where a metric is not known."""
        if isinstance(node, promql_parser.VectorSelector):
            known = labels.get(node.name or "")
            known = None if known is None else known | TARGET_LABELS
            check({m.name for m in node.matchers.matchers} - {"__name__"}, known, node.name)
            return known
        if isinstance(node, promql_parser.MatrixSelector):
            return out(node.vector_selector)
        if isinstance(node, (promql_parser.ParenExpr, promql_parser.UnaryExpr,
                             promql_parser.SubqueryExpr)):  # fmt: skip
            return out(node.expr)
        if isinstance(node, (promql_parser.NumberLiteral, promql_parser.StringLiteral)):
            return frozenset()
        if isinstance(node, promql_parser.Call):
            return _call(node, [out(arg) for arg in node.args])
        if isinstance(node, promql_parser.AggregateExpr):
            inner = out(node.expr)
            if node.modifier is None:
                return frozenset()
            grouping = set(node.modifier.labels)
            check(grouping, inner, node)
            if node.modifier.type == promql_parser.AggModifierType.By:
                return frozenset(grouping)
            return None if inner is None else inner - grouping
        if isinstance(node, promql_parser.BinaryExpr):
            lhs, rhs = out(node.lhs), out(node.rhs)
            modifier = node.modifier
            matching = modifier.matching if modifier is not None else None
            if matching is not None and matching.type == promql_parser.LabelModifierType.Include:
                check(set(matching.labels), lhs, node)  # on (...): both sides need them
                check(set(matching.labels), rhs, node)
            one_to_many = promql_parser.VectorMatchCardinality.OneToMany
            if modifier is not None and modifier.card == one_to_many:
                return rhs
            if str(node.op) == "or" and lhs is not None and rhs is not None:
                return lhs | rhs
            if isinstance(node.lhs, promql_parser.NumberLiteral):
                return rhs
            return lhs
        raise ValueError(f"an expression the check does not know: {type(node).__name__}")

    out(promql_parser.parse(expr))
    return errors


def _call(node: Any, args: list[frozenset[str] | None]) -> frozenset[str] | None:
    """The labels a function's result carries."""
    name = node.func.name
    literals = (promql_parser.NumberLiteral, promql_parser.StringLiteral)
    vectors = [a for a, arg in zip(args, node.args, strict=True) if not isinstance(arg, literals)]
    if not vectors:  # time(), vector(1)...
        return frozenset()
    result = vectors[0]
    if result is None:
        return None
    if name == "histogram_quantile":
        return result - {"le"}
    if name in ("label_replace", "label_join"):
        return result | {node.args[1].val}
    return result


def rule_exprs(rules: dict[str, Any]) -> Iterator[str]:
    for group in rules["groups"]:
        for rule in group["rules"]:
            yield rule["expr"]


def rule_file_errors(rules: Any) -> list[str]:
    """What makes a parsed rule file invalid for Prometheus (its ``rulefmt``): groups with
    unique names, each rule an alert or a record with a parsing ``expr``, durations, string
    labels and annotations; alerts here also need a summary, a description and a runbook."""
    if not isinstance(rules, dict) or set(rules) != {"groups"}:
        return ["the file must hold `groups` and nothing else"]
    errors: list[str] = []
    group_names: set[str] = set()
    for group in rules["groups"]:
        name = group.get("name")
        if not name or name in group_names:
            errors.append(f"group {name!r}: a name of its own is required")
        group_names.add(name)
        if unknown := set(group) - {"name", "interval", "limit", "rules", "query_offset"}:
            errors.append(f"group {name!r}: unknown keys {sorted(unknown)}")
        if "interval" in group and not DURATION.match(str(group["interval"])):
            errors.append(f"group {name!r}: interval {group['interval']!r} is not a duration")
        for rule in group.get("rules") or []:
            errors += [f"group {name!r}: {error}" for error in _rule_errors(rule)]
        if not group.get("rules"):
            errors.append(f"group {name!r}: no rules")
    return errors


def _rule_errors(rule: dict[str, Any]) -> list[str]:
    label = rule.get("alert") or rule.get("record")
    errors = []
    if ("alert" in rule) == ("record" in rule):
        return [f"rule {label!r}: exactly one of `alert` and `record` is required"]
    allowed = {"expr", "labels"} | (
        {"alert", "for", "keep_firing_for", "annotations"} if "alert" in rule else {"record"}
    )
    if unknown := set(rule) - allowed:
        errors.append(f"rule {label!r}: unknown keys {sorted(unknown)}")
    if not isinstance(rule.get("expr"), str):
        errors.append(f"rule {label!r}: `expr` must be a string")
    else:
        try:
            promql_parser.parse(rule["expr"])
        except ValueError as error:
            errors.append(f"rule {label!r}: `expr` does not parse: {error}")
    for key in ("for", "keep_firing_for"):
        if key in rule and not DURATION.match(str(rule[key])):
            errors.append(f"rule {label!r}: `{key}` {rule[key]!r} is not a duration")
    for key in ("labels", "annotations"):
        values = rule.get(key, {})
        if not isinstance(values, dict) or not all(
            isinstance(k, str) and re.fullmatch(r"[a-zA-Z_][a-zA-Z0-9_]*", k)
            and isinstance(v, str) for k, v in values.items()
        ):  # fmt: skip
            errors.append(f"rule {label!r}: `{key}` must map label names to strings")
    if "alert" in rule:
        missing = {"summary", "description", "runbook_url"} - set(rule.get("annotations") or {})
        if missing:
            errors.append(f"alert {label!r}: annotations {sorted(missing)} missing")
        if "severity" not in (rule.get("labels") or {}):
            errors.append(f"alert {label!r}: a `severity` label is required")
    return errors


def dashboard_errors(dashboard: Any) -> list[str]:
    """What keeps a Grafana dashboard JSON from importing as one that asks for its Prometheus
    data source: uid, title, schema version, a ``datasource`` variable of type datasource that
    every panel and target uses, unique panel ids, grid positions inside the 24 columns, and
    targets with a refId and an expression."""
    if not isinstance(dashboard, dict):
        return ["a dashboard is a JSON object"]
    errors = [f"`{key}` missing" for key in ("uid", "title", "schemaVersion", "panels")
              if not dashboard.get(key)]  # fmt: skip
    variables = {v.get("name"): v for v in dashboard.get("templating", {}).get("list", [])}
    source = variables.get("datasource", {})
    if source.get("type") != "datasource" or source.get("query") != "prometheus":
        errors.append("a `datasource` variable of type datasource, query prometheus, is required")
    wanted = {"type": "prometheus", "uid": "${datasource}"}
    ids: set[int] = set()
    for panel in panels(dashboard):
        title = panel.get("title")
        if panel.get("id") in ids or not isinstance(panel.get("id"), int):
            errors.append(f"panel {title!r}: an id of its own is required")
        ids.add(panel.get("id"))
        grid = panel.get("gridPos", {})
        if not all(isinstance(grid.get(k), int) for k in "hwxy") or grid["x"] + grid["w"] > 24:
            errors.append(f"panel {title!r}: gridPos must be h, w, x, y within 24 columns")
        if panel.get("type") == "row":
            continue
        if not title or not panel.get("type"):
            errors.append(f"panel {title!r}: a title and a type are required")
        if panel.get("datasource") != wanted:
            errors.append(f"panel {title!r}: its datasource must be {wanted}")
        targets = panel.get("targets") or []
        if not targets:
            errors.append(f"panel {title!r}: no targets")
        refs = [t.get("refId") for t in targets]
        if len(set(refs)) != len(refs) or not all(refs):
            errors.append(f"panel {title!r}: each target needs a refId of its own")
        for target in targets:
            if not isinstance(target.get("expr"), str) or not target["expr"].strip():
                errors.append(f"panel {title!r}: target {target.get('refId')} has no expr")
            if target.get("datasource", wanted) != wanted:
                errors.append(f"panel {title!r}: target {target.get('refId')}'s datasource")
    return errors


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, those inside collapsed rows too."""
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


def dashboard_exprs(dashboard: dict[str, Any]) -> Iterator[str]:
    for panel in panels(dashboard):
        for target in panel.get("targets", []):
            yield target["expr"]


def markdown_anchors(text: str) -> set[str]:
    """The anchors GitHub gives a Markdown file's headings."""
    anchors = set()
    for line in text.splitlines():
        if heading := re.match(r"#{1,6}\s+(.*)", line):
            slug = re.sub(r"[^\w\- ]", "", heading.group(1).strip().lower()).replace(" ", "-")
            anchors.add(slug)
    return anchors
