"""The real gateway's ``/metrics`` after real requests: it parses as Prometheus text, it counts
per adapter and version, and every metric the Grafana dashboard and the alert rules query is one
the gateway exports."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from monitoring.metrics import GatewayMetrics, GaugeSources, LoadedAdapter
from tests.utils.adapters import good_adapter
from tests.utils.server import RemoteGateway

DEPLOY = Path(__file__).parents[2] / "deploy"
DASHBOARD = DEPLOY / "grafana" / "switchyard-dashboard.json"
ALERTS = DEPLOY / "prometheus" / "alerts.yaml"
ADAPTER = "metrics-bot"
MESSAGES = [{"role": "user", "content": "Count to three."}]


def parse(text: str) -> list[Sample]:
    return [sample for family in text_string_to_metric_families(text) for sample in family.samples]


@pytest.fixture(scope="module")
def served(
    gateway: RemoteGateway, admin_http: httpx.Client, demo_model: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[list[Sample], dict[tuple[int, str], int]]]:
    """Two versions of an adapter served real requests; then one scrape. Returns the samples and
    the completion tokens the responses reported, per (version, endpoint)."""
    folder = tmp_path_factory.mktemp("exposition")
    for version in (1, 2):
        source = str(good_adapter(demo_model, folder / f"v{version}", seed=40 + version))
        response = admin_http.post(f"/admin/adapters/{ADAPTER}/versions", json={"source": source})
        assert response.status_code == 201, response.text
    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=gateway.admin_key, max_retries=0)
    tokens: dict[tuple[int, str], int] = {}

    def count(version: int, endpoint: str, completion_tokens: int) -> None:
        tokens[(version, endpoint)] = tokens.get((version, endpoint), 0) + completion_tokens

    assert admin_http.post(f"/admin/adapters/{ADAPTER}/promote", json={"version": 1}).status_code == 200
    answer = client.chat.completions.create(model=ADAPTER, messages=MESSAGES, max_tokens=4)
    count(1, "chat.completions", answer.usage.completion_tokens)  # type: ignore[union-attr]
    stream = client.chat.completions.create(
        model=ADAPTER, messages=MESSAGES, max_tokens=4, stream=True, stream_options={"include_usage": True}
    )
    count(1, "chat.completions", [c for c in stream][-1].usage.completion_tokens)  # type: ignore[union-attr]
    assert admin_http.post(f"/admin/adapters/{ADAPTER}/promote", json={"version": 2}).status_code == 200
    answer = client.chat.completions.create(model=ADAPTER, messages=MESSAGES, max_tokens=4)
    count(2, "chat.completions", answer.usage.completion_tokens)  # type: ignore[union-attr]
    pinned = client.completions.create(model=f"{ADAPTER}@1", prompt="one two", max_tokens=3)
    count(1, "completions", pinned.usage.completion_tokens)  # type: ignore[union-attr]
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model=f"{ADAPTER}@9", messages=MESSAGES)
    scrape = admin_http.get("/metrics")
    assert scrape.status_code == 200 and scrape.headers["content-type"].startswith("text/plain")
    yield parse(scrape.text), tokens


def value(samples: list[Sample], name: str, **labels: str) -> float:
    found = [s.value for s in samples if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())]
    assert found, f"no {name}{labels}"
    return sum(found)


def test_requests_tokens_and_latency_per_adapter_version(served) -> None:  # type: ignore[no-untyped-def]
    samples, tokens = served
    for version, endpoint, requests in ((1, "chat.completions", 2), (2, "chat.completions", 1), (1, "completions", 1)):
        labels = {"adapter": ADAPTER, "adapter_version": str(version), "endpoint": endpoint, "status": "200"}
        assert value(samples, "switchyard_requests_total", **labels) == requests
        assert value(samples, "switchyard_request_seconds_count", **labels) == requests
        assert value(samples, "switchyard_time_to_first_token_seconds_count", **labels) == requests
        assert value(samples, "switchyard_tokens_total", kind="completion", **labels) == tokens[(version, endpoint)]
        assert value(samples, "switchyard_tokens_total", kind="prompt", **labels) > 0
    # A version that does not exist is an error of the adapter, not of any version.
    assert value(samples, "switchyard_requests_total", adapter="", adapter_version="", status="404") >= 1


def test_engine_and_tuning_gauges(served) -> None:  # type: ignore[no-untyped-def]
    samples, _ = served
    assert value(samples, "switchyard_adapter_loaded", adapter=ADAPTER, adapter_version="2") == 1
    assert value(samples, "switchyard_adapters_loaded") >= 2
    assert value(samples, "switchyard_sequences_limit") == 16  # SWITCHYARD_SERVER__MAX_QUEUED_REQUESTS
    assert value(samples, "switchyard_sequences_in_flight") == 0
    assert value(samples, "switchyard_requests_waiting_for_slot") == 0
    statuses = {s.labels["status"] for s in samples if s.name == "switchyard_training_jobs"}
    assert statuses == {"validating_files", "queued", "running", "succeeded", "failed", "cancelled"}
    assert value(samples, "vllm:num_requests_waiting") == 0  # the engine's own gauges follow ours


# -- queries in deploy/ ------------------------------------------------------------------------

_LABEL_LISTS = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_NAME = re.compile(r"(?<![\w.:])[A-Za-z_:][A-Za-z0-9_:]*")  # not the unit of a duration (5m)
_KEYWORDS = frozenset(
    {"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring", "group_left", "group_right"}
)


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression (or Grafana's ``label_values(selector, label)``) reads."""
    if (values := re.fullmatch(r"\s*label_values\((.*),\s*\w+\s*\)\s*", expr)) is not None:
        expr = values.group(1)
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # strings: label values, Grafana variables
    expr = re.sub(r"\{[^}]*\}", " ", expr)  # label matchers
    expr = re.sub(r"\[[^\]]*\]", " ", expr)  # range and subquery windows
    expr = _LABEL_LISTS.sub(" ", expr)
    return {
        m.group()
        for m in _NAME.finditer(expr)
        if m.group() not in _KEYWORDS and not expr[m.end() :].lstrip().startswith("(")  # a function
    }


def test_the_promql_reader_finds_metrics_only() -> None:
    expr = (
        'histogram_quantile(0.95, sum by (le, adapter) (rate(a_bucket{x="y", z=~"$v"}[$__rate_interval])))'
        ' / on(instance) group_left b > 0 and c:recorded offset 5m unless label_replace(d, "k", "v", "k", "")'
    )
    assert metric_names(expr) == {"a_bucket", "b", "c:recorded", "d"}
    assert metric_names('label_values(e{adapter=~"$adapter"}, adapter_version)') == {"e"}


def panel_queries() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    panels = [p for top in dashboard["panels"] for p in (top, *top.get("panels", []))]
    return [t["expr"] for p in panels for t in p.get("targets", [])]


def dashboard_queries() -> list[str]:
    """The panels' queries and the template variables' (``label_values``)."""
    variables = json.loads(DASHBOARD.read_text())["templating"]["list"]
    return panel_queries() + [v["query"]["query"] for v in variables if v["type"] == "query"]


def declared_names() -> set[str]:
    """Every sample name the gateway's metrics can produce, with each source giving a value: some
    appear only once there is something to count (a drift result, an error)."""
    metrics = GatewayMetrics(
        GaugeSources(
            spool_backlog_bytes=lambda: 1,
            drain_failures=lambda: 1,
            sequences_in_flight=lambda: 1,
            spool_alert_bytes=1,
            max_sequences=1,
            loaded_adapters=lambda: [LoadedAdapter("a", 1, True)],
            training_jobs=lambda: {"queued": 1},
            drift_share=lambda: {"a": 0.5},
            drift_detected=lambda: {"a": True},
            drift_alerts=lambda: {"a": 1},
        )
    )
    row = {"endpoint": "completions", "status": 200, "prompt_tokens": 1, "latency_ms": 1.0, "ttft_ms": 1.0}
    metrics.observe(row)
    names = {s.name for s in parse(metrics.render().decode())}
    metrics.shutdown()
    return names


def test_the_dashboard_queries_only_exported_metrics(served) -> None:  # type: ignore[no-untyped-def]
    samples, _ = served
    scraped = {s.name for s in samples}
    declared = declared_names()
    # The live gateway exports every gateway metric but drift (no drift result exists here).
    assert {n for n in declared if "drift" not in n} <= scraped
    queried = set().union(*map(metric_names, dashboard_queries()))
    assert queried, "no query found in the dashboard"
    assert queried - (scraped | declared) == set()
    assert {"switchyard_drift_share", "switchyard_training_jobs", "vllm:num_requests_waiting"} <= queried


def test_the_dashboard_has_the_ops_panels() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    titles = {p["title"] for p in dashboard["panels"]}
    assert {
        "Request rate",
        "Error rate",
        "Latency p50 / p95",
        "Time to first token p50 / p95",
        "Tokens in / out",
        "Queue depth",
        "Loaded adapters",
        "Traffic-log spool backlog",
        "Training jobs by status",
        "Drift share per adapter",
    } <= titles
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    traffic = re.compile(r"switchyard_(requests_total|request_seconds|time_to_first_token_seconds|tokens_total)")
    per_version = [q for q in panel_queries() if traffic.search(q)]
    assert per_version and all("adapter_version" in q for q in per_version)


def test_the_alert_rules_query_only_exported_metrics(served) -> None:  # type: ignore[no-untyped-def]
    samples, _ = served
    rules = [r for group in yaml.safe_load(ALERTS.read_text())["groups"] for r in group["rules"]]
    queried = set().union(*(metric_names(r["expr"]) for r in rules))
    assert queried and queried - ({s.name for s in samples} | declared_names()) == set()
