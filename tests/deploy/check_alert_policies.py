"""Checks of the Cloud Monitoring alert policies (deploy/cloud-monitoring/*.json).

Structure: valid JSON in the AlertPolicy REST shape (camelCase field names,
known enum values, durations as "<n>s"), one policy per built-in SLI, each
with one conditionPrometheusQueryLanguage condition.

Behaviour: with --promtool-dir DIR it writes DIR/cm_rules.yaml (the policies'
PromQL as Prometheus alerting rules) and DIR/cm_rules_test.yaml (the unit tests
of deploy/prometheus/rules_test.yaml with the series renamed to their Cloud
Monitoring PromQL names, e.g. gardener_sli_events_total ->
workload_googleapis_com:gardener_sli_events); the caller then runs
`promtool check rules` and `promtool test rules` on them, so the Cloud
Monitoring queries must fire and stay quiet exactly where the Prometheus
rules do.
"""
import glob
import json
import os
import re
import sys

import yaml

from _common import check, dig, finish, load_yaml, path

SLIS = {"http_5xx": "0.01", "websocket_failure": "0.05", "agent_failure": "0.1", "db_connection_error": None}
POLICY_FIELDS = {"name", "displayName", "documentation", "userLabels", "conditions", "combiner", "enabled",
                 "validity", "notificationChannels", "creationRecord", "mutationRecord", "alertStrategy", "severity"}
DOC_FIELDS = {"content", "mimeType", "subject", "links"}
COND_FIELDS = {"name", "displayName", "conditionThreshold", "conditionAbsent", "conditionMatchedLog",
               "conditionMonitoringQueryLanguage", "conditionPrometheusQueryLanguage", "conditionSql"}
PQL_FIELDS = {"query", "duration", "evaluationInterval", "labels", "ruleGroup", "alertRule", "disableMetricValidation"}
STRATEGY_FIELDS = {"notificationRateLimit", "notificationPrompts", "autoClose", "notificationChannelStrategy"}
DURATION = re.compile(r"^\d+(\.\d{1,9})?s$")
CM_METRIC = re.compile(r"workload_googleapis_com:gardener_([a-z_]+)")
EXPORTED = {"sli_events", "sli_bad_events", "error_signature", "trace_context", "records"}

files = sorted(glob.glob(path("deploy", "cloud-monitoring", "*.json")))
check(sorted(os.path.basename(f)[:-5] for f in files) == sorted(SLIS),
      "one policy file per built-in SLI", f"{[os.path.basename(f) for f in files]}")
prom_rules = load_yaml(path("deploy", "prometheus", "rules.yaml"))
prom_alerts = {r["alert"]: r for g in prom_rules["groups"] for r in g["rules"] if "alert" in r}
cm_rules = []
for f in files:
    sli = os.path.basename(f)[:-5]
    name = os.path.basename(f)
    try:
        with open(f) as fh:
            p = json.load(fh)
    except ValueError as e:
        check(False, f"{name}: valid JSON", str(e))
        continue
    check(isinstance(p, dict), f"{name}: a JSON object")
    check(set(p) <= POLICY_FIELDS, f"{name}: only AlertPolicy REST fields", f"{sorted(set(p) - POLICY_FIELDS)}")
    check(isinstance(p.get("displayName"), str) and 0 < len(p["displayName"]) <= 512, f"{name}: displayName")
    doc = p.get("documentation", {})
    check(set(doc) <= DOC_FIELDS and doc.get("mimeType") == "text/markdown" and bool(doc.get("content")),
          f"{name}: documentation {{content, mimeType: text/markdown}}")
    check(len(doc.get("content", "").encode()) <= 10240 and len(doc.get("subject", "")) <= 255,
          f"{name}: documentation within API size limits")
    check(f"runbooks.md#{sli}" in doc.get("content", ""), f"{name}: documentation links the {sli} runbook")
    check(p.get("combiner") in ("AND", "OR", "AND_WITH_MATCHING_RESOURCE"), f"{name}: combiner")
    check(p.get("severity", "SEVERITY_UNSPECIFIED") in ("SEVERITY_UNSPECIFIED", "CRITICAL", "ERROR", "WARNING"), f"{name}: severity enum")
    check(isinstance(p.get("enabled", True), bool), f"{name}: enabled is a boolean")
    ul = p.get("userLabels", {})
    check(all(re.fullmatch(r"[a-z][a-z0-9_-]{0,62}", k) and isinstance(v, str) and len(v) <= 63 for k, v in ul.items()),
          f"{name}: userLabels keys/values valid")
    strat = p.get("alertStrategy", {})
    check(set(strat) <= STRATEGY_FIELDS, f"{name}: alertStrategy fields", f"{sorted(set(strat) - STRATEGY_FIELDS)}")
    check("autoClose" not in strat or DURATION.match(strat["autoClose"]), f"{name}: alertStrategy.autoClose is a duration")
    check(all(x in ("OPENED", "CLOSED") for x in strat.get("notificationPrompts", [])), f"{name}: notificationPrompts enum")
    conds = p.get("conditions", [])
    check(len(conds) == 1, f"{name}: exactly one condition")
    if not conds:
        continue
    c = conds[0]
    check(set(c) <= COND_FIELDS and bool(c.get("displayName")), f"{name}: condition fields + displayName")
    pq = c.get("conditionPrometheusQueryLanguage", {})
    check(set(pq) <= PQL_FIELDS and bool(pq.get("query")), f"{name}: conditionPrometheusQueryLanguage {{query, ...}}",
          f"{sorted(set(pq) - PQL_FIELDS)}")
    for k in ("duration", "evaluationInterval"):
        check(DURATION.match(str(pq.get(k, ""))) is not None, f"{name}: {k} is a duration string", pq.get(k))
    ev = int(float(pq.get("evaluationInterval", "0s")[:-1] or 0))
    check(30 <= ev <= 86400, f"{name}: evaluationInterval within the API's range", pq.get("evaluationInterval"))
    check(re.fullmatch(r"[a-zA-Z_:][a-zA-Z0-9_:]*", pq.get("alertRule", "")) is not None
          and re.fullmatch(r"[a-zA-Z_:][a-zA-Z0-9_:-]*", pq.get("ruleGroup", "")) is not None,
          f"{name}: alertRule/ruleGroup are valid Prometheus names")
    check(all(re.fullmatch(r"[a-zA-Z_][a-zA-Z0-9_]*", k) for k in pq.get("labels", {})), f"{name}: label names valid")
    q = pq.get("query", "")
    metrics = set(CM_METRIC.findall(q))
    check(metrics and metrics <= EXPORTED, f"{name}: query uses exported Cloud Monitoring metrics only", f"{metrics}")
    check("gardener_sli_events_total" not in q and "workload.googleapis.com" not in q,
          f"{name}: query uses Cloud Monitoring PromQL names, not Prometheus/metric-type names")
    check(f'sli="{sli}"' in q and "sum by (sli, service)" in q, f"{name}: query selects sli={sli} and sums across instances")
    if SLIS[sli]:
        check(f"> {SLIS[sli]}" in q and ">= 100" in q, f"{name}: threshold {SLIS[sli]} and min-events guard 100")
    pa = prom_alerts.get(pq.get("alertRule"))
    check(pa is not None, f"{name}: alertRule names the Prometheus alert of the same SLI")
    if pa:
        check(f'sli="{sli}"' in pa["expr"], f"{name}: ... and that alert is for {sli}")
        check(pq.get("labels", {}).get("severity") == pa["labels"]["severity"], f"{name}: same severity label as the Prometheus alert")
        prom_for = pa.get("for", "0s")
        secs = {"s": 1, "m": 60, "h": 3600}
        pf = int(prom_for[:-1]) * secs[prom_for[-1]]
        check(int(float(pq["duration"][:-1])) == pf, f"{name}: duration equals the Prometheus alert's for ({prom_for})")
        cm_rules.append({"alert": pq["alertRule"], "expr": q, "for": pq["duration"],
                         "labels": dict(pa["labels"])})

# ---- promtool equivalence files ----
if "--promtool-dir" in sys.argv:
    out = sys.argv[sys.argv.index("--promtool-dir") + 1]
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "cm_rules.yaml"), "w") as fh:
        yaml.safe_dump({"groups": [{"name": "cloud-monitoring-policies", "rules": cm_rules}]}, fh, sort_keys=False)
    tests = load_yaml(path("deploy", "prometheus", "rules_test.yaml"))

    def rename(series):
        return re.sub(r"\bgardener_([a-z_]+?)(_total)?\{", r"workload_googleapis_com:gardener_\1{", series)

    for t in tests["tests"]:
        t.pop("promql_expr_test", None)  # recording rules have no Cloud Monitoring counterpart
        for s in t["input_series"]:
            s["series"] = rename(s["series"])
        for a in t.get("alert_rule_test", []):
            for e in a.get("exp_alerts", []):
                e.pop("exp_annotations", None)
    tests["rule_files"] = ["cm_rules.yaml"]
    with open(os.path.join(out, "cm_rules_test.yaml"), "w") as fh:
        yaml.safe_dump(tests, fh, sort_keys=False)
    print(f"  wrote {out}/cm_rules.yaml and cm_rules_test.yaml for promtool")

finish("cloud-monitoring")
