"""The Grafana dashboard and the Prometheus alert rules of deploy/ read only metrics the
services really expose: the API's /metrics, an ingest worker's registry and the scheduler's,
built as ``flywheel serve``, ``flywheel ingest`` and ``flywheel schedule`` build them; the rule
file is valid Prometheus rule syntax with a runbook section for every alert, and the dashboard a
Grafana dashboard that asks for its Prometheus data source."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry, generate_latest

from api.main import create_app
from api.metrics import MULTIPROCESS_DIR, ApiMetrics
from api.sink import MemorySink
from flywheel.settings import load_settings
from flywheel.shell.schedule import SchedulerMetrics
from ingest.metrics import IngestMetrics
from tests.factories import WRITE_KEY, api_client
from tests.helpers.monitoring import (
    dashboard_errors,
    dashboard_exprs,
    exposed_series,
    label_errors,
    markdown_anchors,
    metric_names,
    rule_exprs,
    rule_file_errors,
    series_labels,
    unknown_metrics,
)
from warehouse.table import TableMetrics

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy" / "prometheus" / "alerts.yml"
RULE_TESTS = ROOT / "deploy" / "prometheus" / "alerts.test.yml"
CACHED_PROMTOOL = Path.home() / ".cache" / "flywheel" / "promtool" / "usr" / "bin" / "promtool"
DASHBOARD = ROOT / "deploy" / "grafana" / "flywheel.json"
OPERATIONS = ROOT / "docs" / "operations.md"


async def _api_scrape(metrics: ApiMetrics) -> str:
    settings = load_settings(api={"write_keys": [WRITE_KEY]})
    async with api_client(create_app(settings, MemorySink(), metrics=metrics)) as client:
        response = await client.get("/metrics")
    assert response.status_code == 200
    return response.text


@dataclass
class Services:
    exposed: set[str]
    """Every series name the three services can expose."""
    labels: dict[str, frozenset[str]]
    """Their label names, by series name."""


@pytest.fixture(scope="module")
def services() -> Services:
    api = ApiMetrics(CollectorRegistry())
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv(MULTIPROCESS_DIR, raising=False)
        scraped = asyncio.run(_api_scrape(api))
    ingest = IngestMetrics()  # as `flywheel ingest` builds its registry
    ingest_table = TableMetrics(ingest.registry)
    schedule = SchedulerMetrics()  # as `flywheel schedule` builds its registry
    schedule_table = TableMetrics(schedule.registry)
    texts = [scraped, generate_latest(ingest.registry).decode(),
             generate_latest(schedule.registry).decode()]  # fmt: skip
    return Services(
        exposed=set().union(*(exposed_series(text) for text in texts)),
        labels=series_labels(
            api,
            ingest,
            ingest_table,
            schedule,
            schedule.export,
            schedule.transforms,
            schedule_table,
        ),  # fmt: skip
    )


@pytest.fixture(scope="module")
def exposed(services: Services) -> set[str]:
    return services.exposed


@pytest.fixture(scope="module")
def rules() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(RULES.read_text())
    return loaded


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def test_the_scrapes_hold_each_services_metrics(exposed: set[str]) -> None:
    # A fixture that scraped nothing would let every name through as unknown, or none.
    assert {
        "flywheel_api_requests_total", "flywheel_api_produce_seconds_bucket",
        "flywheel_ingest_consumer_lag", "flywheel_lake_commit_seconds_sum",
        "flywheel_schedule_runs_total", "flywheel_export_last_published_timestamp_seconds",
    } <= exposed  # fmt: skip
    assert "flywheel_ingest_consumer_lag_total" not in exposed  # a gauge has no _total


def test_every_metric_of_the_alert_rules_is_exposed(
    rules: dict[str, Any], exposed: set[str]
) -> None:
    assert unknown_metrics(rule_exprs(rules), exposed) == {}


def test_every_metric_of_the_dashboard_is_exposed(
    dashboard: dict[str, Any], exposed: set[str]
) -> None:
    exprs = list(dashboard_exprs(dashboard))
    assert len(exprs) > 20
    assert unknown_metrics(exprs, exposed) == {}


def test_every_label_the_rules_and_the_dashboard_use_is_on_its_metrics(
    rules: dict[str, Any], dashboard: dict[str, Any], services: Services
) -> None:
    # The labels of every labelled metric are known, not only of those with samples.
    assert services.labels["flywheel_ingest_dead_letters_total"] == {"error_type"}
    exprs = [*rule_exprs(rules), *dashboard_exprs(dashboard)]
    found = {expr: errors for expr in exprs if (errors := label_errors(expr, services.labels))}
    assert found == {}


@pytest.mark.parametrize(
    ("expr", "error"),
    [
        ('flywheel_api_requests_total{code=~"5.."}', "no label ['code']"),
        ("sum by (errortype) (rate(flywheel_ingest_dead_letters_total[5m]))", "['errortype']"),
        (
            "sum by (job) (flywheel_ingest_consumer_lag) / on (partition) group_left "
            "sum by (job) (flywheel_schedule_runs_total)",
            "['partition']",
        ),
        (
            "histogram_quantile(0.9, sum by (le, dataset) "
            "(rate(flywheel_schedule_run_seconds_bucket[$__rate_interval])))",
            "['dataset']",
        ),
    ],
)
def test_a_misspelt_label_is_named(expr: str, error: str, services: Services) -> None:
    errors = label_errors(expr, services.labels)
    assert errors and all(error in e for e in errors), errors


@pytest.mark.parametrize(
    ("expr", "unknown"),
    [
        ("rate(flywheel_api_request_total[5m])", {"flywheel_api_request_total"}),
        ("flywheel_ingest_consumer_lag_total > 0", {"flywheel_ingest_consumer_lag_total"}),
        ("rate(flywheel_ingest_dead_letters[5m])", {"flywheel_ingest_dead_letters"}),
        (
            "histogram_quantile(0.9, sum by (le) "
            "(rate(flywheel_api_produce_bucket[$__rate_interval])))",
            {"flywheel_api_produce_bucket"},
        ),
        ('{__name__="flywheel_export_gate_result_total"}', {"flywheel_export_gate_result_total"}),
        ("up == 0 and flywheel_schedule_run_total > 0", {"flywheel_schedule_run_total"}),
    ],
)
def test_a_misspelt_metric_is_named(expr: str, unknown: set[str], exposed: set[str]) -> None:
    assert unknown_metrics([expr], exposed) == {expr: unknown}


def test_an_expression_that_does_not_parse_or_selects_no_name_is_refused() -> None:
    with pytest.raises(ValueError):
        metric_names("sum by (le (rate(flywheel_api_requests_total[5m]))")
    with pytest.raises(ValueError, match="without a metric name"):
        metric_names('{job="flywheel-api"}')
    with pytest.raises(ValueError, match="Grafana variable"):
        metric_names("rate(flywheel_api_requests_total[$interval])")


def test_the_rule_file_is_valid_prometheus_rule_syntax(rules: dict[str, Any]) -> None:
    assert rule_file_errors(rules) == []
    alerts = [rule["alert"] for group in rules["groups"] for rule in group["rules"]]
    assert len(alerts) == len(set(alerts))
    assert {
        "FlywheelIngestLagGrowing", "FlywheelDeadLetters", "FlywheelQualityGateFailed",
        "FlywheelNoExportPublished", "FlywheelApiErrors", "FlywheelApiUnavailable",
        "FlywheelIngestWorkerDown",
    } <= set(alerts)  # fmt: skip


def test_every_alert_points_at_its_runbook_section(rules: dict[str, Any]) -> None:
    anchors = markdown_anchors(OPERATIONS.read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            path, _, anchor = rule["annotations"]["runbook_url"].partition("#")
            assert path == "docs/operations.md"
            assert anchor == rule["alert"].lower() and anchor in anchors, rule["alert"]


@pytest.mark.parametrize(
    ("rule", "error"),
    [
        ({"alert": "A", "expr": "up == 0", "for": "5 minutes"}, "`for` '5 minutes'"),
        ({"alert": "A", "expr": "sum(up", "labels": {"severity": "x"}}, "does not parse"),
        ({"alert": "A", "record": "a:b", "expr": "up"}, "exactly one of"),
        ({"alert": "A", "expr": "up", "labels": {"severity": 1}}, "`labels` must map"),
        ({"alert": "A", "exp": "up"}, "unknown keys ['exp']"),
        ({"alert": "A", "expr": "up", "labels": {"severity": "x"}}, "annotations"),
    ],
)
def test_the_rule_check_finds_mistakes(rule: dict[str, Any], error: str) -> None:
    errors = rule_file_errors({"groups": [{"name": "g", "rules": [rule]}]})
    assert any(error in e for e in errors), errors


def test_the_dashboard_is_a_grafana_dashboard(dashboard: dict[str, Any]) -> None:
    assert dashboard_errors(dashboard) == []


def test_the_dashboard_check_finds_mistakes(dashboard: dict[str, Any]) -> None:
    broken = json.loads(json.dumps(dashboard))
    del broken["uid"]
    broken["templating"]["list"] = []
    chart = next(p for p in broken["panels"] if p["type"] != "row")
    chart["targets"] = []
    chart["datasource"] = {"type": "prometheus", "uid": "a-fixed-uid"}
    errors = dashboard_errors(broken)
    assert "`uid` missing" in errors
    assert any("`datasource` variable" in e for e in errors)
    assert any("no targets" in e for e in errors)
    assert any("its datasource must be" in e for e in errors)


def test_every_alert_has_a_promtool_case_where_it_fires(rules: dict[str, Any]) -> None:
    cases = yaml.safe_load(RULE_TESTS.read_text())
    firing = {
        case["alertname"]
        for test in cases["tests"]
        for case in test["alert_rule_test"]
        if case.get("exp_alerts")
    }
    assert firing == {rule["alert"] for group in rules["groups"] for rule in group["rules"]}


@pytest.fixture(scope="module")
def promtool() -> str:
    """Prometheus' promtool: on the PATH, or unpacked by .ci/run into the cache."""
    found = shutil.which("promtool") or (
        str(CACHED_PROMTOOL) if CACHED_PROMTOOL.is_file() else None
    )
    if found is None:
        pytest.skip("promtool is not installed (.ci/run unpacks it from Debian's prometheus)")
    return found


def test_promtool_accepts_the_rules_and_their_unit_tests_pass(promtool: str) -> None:
    for command in (["check", "rules", RULES.name], ["test", "rules", RULE_TESTS.name]):
        run = subprocess.run(
            [promtool, *command], cwd=RULES.parent, capture_output=True, text=True, timeout=120
        )
        assert run.returncode == 0, run.stdout + run.stderr
