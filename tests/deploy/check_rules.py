"""Checks of the Prometheus rules beyond promtool: one canonical copy, every
built-in SLI covered with the design's thresholds, contract metric names,
runbook anchors that exist, and promtool tests that exercise every alert.
"""
import os
import re

from _common import check, finish, load_yaml, path

canonical = path("helm", "log-gardener", "files", "prometheus-rules.yaml")
link = path("deploy", "prometheus", "rules.yaml")
check(os.path.islink(link) and os.path.realpath(link) == os.path.realpath(canonical),
      "deploy/prometheus/rules.yaml is a symlink to the chart's files/prometheus-rules.yaml")
with open(canonical, "rb") as a, open(link, "rb") as b:
    check(a.read() == b.read(), "deploy/prometheus/rules.yaml and the chart copy are identical")

rules = load_yaml(canonical)
allrules = [r for g in rules["groups"] for r in g["rules"]]
records = {r["record"]: r["expr"] for r in allrules if "record" in r}
alerts = {r["alert"]: r for r in allrules if "alert" in r}
for rec in ("gardener:sli_events:rate5m", "gardener:sli_bad_events:rate5m", "gardener:sli_ratio:rate5m"):
    check(rec in records and "sum by (sli, service)" in records[rec], f"recording rule {rec} sums by (sli, service)")
ratio = re.sub(r"\s+", " ", records.get("gardener:sli_ratio:rate5m", ""))
check("rate(gardener_sli_bad_events_total[5m])" in ratio.split("/")[0] and "rate(gardener_sli_events_total[5m])" in ratio.split("/")[-1],
      "gardener:sli_ratio:rate5m = bad rate / events rate")

metric_names = set(re.findall(r"\b(gardener_[a-z_]+)\b", "\n".join(r["expr"] for r in allrules)))
CONTRACT = {"gardener_records_total", "gardener_error_signature_total", "gardener_trace_context_total",
            "gardener_sli_events_total", "gardener_sli_bad_events_total", "gardener_sli_ratio", "gardener_alert_firing",
            "gardener_orphan_logs_total", "gardener_receiver_refused_records_total", "gardener_exporter_sent_records_total",
            "gardener_exporter_failed_records_total", "gardener_queue_depth"}
check(metric_names <= CONTRACT, "rules use only contract metric names", f"{sorted(metric_names - CONTRACT)}")

EXPECT = {"http_5xx": ("0.01", True), "websocket_failure": ("0.05", True), "agent_failure": ("0.1", True),
          "db_connection_error": ("0", False)}
with open(path("deploy", "prometheus", "runbooks.md")) as f:
    runbook_anchors = {m.strip() for m in re.findall(r"^##\s+(.+)$", f.read(), re.M)}
tests = load_yaml(path("deploy", "prometheus", "rules_test.yaml"))
for sli, (thr, ratio_alert) in EXPECT.items():
    mine = [a for a in alerts.values() if f'sli="{sli}"' in a["expr"]]
    check(len(mine) == 1, f"{sli}: exactly one alert")
    if not mine:
        continue
    a = mine[0]
    expr = re.sub(r"\s+", " ", a["expr"])
    if ratio_alert:
        check(f"> {thr}" in expr, f"{sli}: fires above {thr}")
        check(">= 100" in expr and "increase5m" in expr, f"{sli}: min-events guard (>= 100 events in 5m)")
    else:
        check(expr.rstrip().endswith("> 0") and "increase(" in expr, f"{sli}: fires on any increase of bad events")
    check(bool(a.get("for")), f"{sli}: has a for: duration")
    check(a.get("labels", {}).get("severity") in ("critical", "warning", "info"), f"{sli}: severity label")
    ann = a.get("annotations", {})
    check(bool(ann.get("summary")) and bool(ann.get("description")), f"{sli}: summary and description")
    check(ann.get("runbook_url", "").endswith(f"runbooks.md#{sli}") and sli in runbook_anchors,
          f"{sli}: runbook_url points at an existing runbooks.md#{sli} section")
    tested = [t for t in tests["tests"] for at in t.get("alert_rule_test", []) if at["alertname"] == a["alert"]]
    fires = any(at.get("exp_alerts") for t in tested for at in t["alert_rule_test"] if at["alertname"] == a["alert"])
    quiet = any(not at.get("exp_alerts") for t in tested for at in t["alert_rule_test"] if at["alertname"] == a["alert"])
    multi = any(len({re.search(r'pod="([^"]+)"', s["series"]).group(1) for s in t["input_series"]}) > 1
                and any(at.get("exp_alerts") for at in t["alert_rule_test"]) for t in tested)
    check(fires and quiet, f"{sli}: promtool tests cover firing and not firing")
    check(multi, f"{sli}: a promtool test sums two pods into one firing alert")
finish("rules")
