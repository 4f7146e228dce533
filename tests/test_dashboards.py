"""deploy/'s Grafana dashboard and Prometheus alert rules name only the metric families the bot exposes."""
from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

from bot.metrics import FAMILIES

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"
HISTOGRAM_SUFFIXES = ("_bucket", "_count", "_sum")
PROMQL_WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless",
                "offset", "le"}


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads: its identifiers, less functions and aggregations (a name
    followed by `(`), keywords, label matchers, grouping labels, ranges and strings."""
    expr = re.sub(r'"[^"]*"', "", expr)
    expr = re.sub(r"\{[^}]*\}", "", expr)
    expr = re.sub(r"\[[^\]]*\]", "", expr)
    expr = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", expr)
    names = set()
    for found in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", expr):
        rest = expr[found.end():].lstrip()
        if found.group() not in PROMQL_WORDS and not rest.startswith("(") and not found.group()[0].isdigit():
            names.add(found.group())
    return names


def exists(name: str) -> bool:
    return name in FAMILIES or any(name.removesuffix(s) in FAMILIES for s in HISTOGRAM_SUFFIXES if name.endswith(s))


def dashboard_exprs() -> list[str]:
    board = json.loads((DEPLOY / "grafana-dashboard.json").read_text())
    return [target["expr"] for panel in board["panels"] for target in panel["targets"]]


def alert_rules() -> list[dict]:
    return [rule for group in yaml.safe_load((DEPLOY / "prometheus-alerts.yml").read_text())["groups"]
            for rule in group["rules"]]


def test_metric_names_finds_what_an_expression_reads():
    """The name finder sees metrics inside functions, aggregations and comparisons, and nothing else."""
    expr = 'histogram_quantile(0.9, sum by (le, vm) (rate(nexy_x_bucket{vm="a b"}[5m]))) > 2 and max(up) > 0'
    assert metric_names(expr) == {"nexy_x_bucket", "up"}


def test_dashboard_and_alert_rules_name_only_families_that_exist():
    """Every expression of the dashboard and of the two alert rules reads only families bot/metrics.py declares,
    and between them they show every family."""
    rules = alert_rules()
    assert {rule["alert"] for rule in rules} == {"NexyQueueStuck", "NexyOutboxBacklog"}
    exprs = dashboard_exprs() + [rule["expr"] for rule in rules]
    used = set().union(*map(metric_names, exprs))
    assert used and {name for name in used if not exists(name)} == set()
    shown = {name for name in FAMILIES if any(u == name or u.startswith(name + "_") for u in used)}
    assert shown == set(FAMILIES), set(FAMILIES) - shown


def test_queue_stuck_fires_only_while_jobs_wait():
    """The queue-stuck rule needs both an old waiting job and a queue that is not empty."""
    stuck = next(rule for rule in alert_rules() if rule["alert"] == "NexyQueueStuck")
    assert metric_names(stuck["expr"]) == {"nexy_queue_oldest_waiting_seconds", "nexy_queue_depth"}
    assert " and " in stuck["expr"] and "nexy_queue_depth) > 0" in stuck["expr"]
