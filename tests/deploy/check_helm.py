"""Checks of the Helm chart's rendered manifests.

usage: check_helm.py DEFAULT_RENDER.yaml CUSTOM_RENDER.yaml [GC_NO_PROJECT_RENDER.yaml]
                     [--no-grpc RENDER.yaml] [--no-http RENDER.yaml]
(the output of `helm template` with the chart's defaults, with
tests/deploy/values-custom.yaml and, optionally, with only
`--set googleCloud.enabled=true`, `--set ports.otlpGrpc.enabled=false`,
`--set ports.otlpHttp.enabled=false`).
"""
import sys

import yaml

from _common import check, dig, finish, load_yaml, load_yaml_all, path

args = sys.argv[1:]
named = {}
for flag in ("--no-grpc", "--no-http"):
    if flag in args:
        i = args.index(flag)
        named[flag] = load_yaml_all(args[i + 1])
        del args[i:i + 2]
default_docs = load_yaml_all(args[0])
custom_docs = load_yaml_all(args[1])
gc_docs = load_yaml_all(args[2]) if len(args) > 2 else None
custom_values = load_yaml(path("tests", "deploy", "values-custom.yaml"))
canonical_rules = load_yaml(path("helm", "log-gardener", "files", "prometheus-rules.yaml"))


def by_kind(docs):
    out = {}
    for d in docs:
        out.setdefault(d["kind"], []).append(d)
    return out


def one(kinds, kind):
    items = kinds.get(kind, [])
    return items[0] if len(items) == 1 else None


def config_of(kinds):
    cm = one(kinds, "ConfigMap") or {}
    return yaml.safe_load(dig(cm, "data", "config.yaml", default="") or "") or {}


def check_common(label, kinds):
    """What must hold for any values."""
    ds = one(kinds, "DaemonSet")
    check(ds is not None, f"[{label}] exactly one DaemonSet")
    ds = ds or {}
    pod = dig(ds, "spec", "template", default={})
    podspec = pod.get("spec", {})
    containers = podspec.get("containers", [])
    check(len(containers) == 1, f"[{label}] one container")
    c = containers[0] if containers else {}
    pod_labels = dig(pod, "metadata", "labels", default={})
    sel = dig(ds, "spec", "selector", "matchLabels", default={})
    check(sel and all(pod_labels.get(k) == v for k, v in sel.items()),
          f"[{label}] DaemonSet selector matches the pod labels")
    ports = {p["name"]: p for p in c.get("ports", [])}
    cfg = config_of(kinds)
    protocols = set(dig(cfg, "receivers", "otlp", "protocols", default={}) or {})
    check(bool(protocols) and protocols <= {"grpc", "http"}, f"[{label}] the config enables OTLP gRPC, HTTP or both", f"{protocols}")
    want_ports = {f"otlp-{p}" for p in protocols} | {"admin"}
    check(set(ports) == want_ports, f"[{label}] container ports are admin and those of the enabled protocols ({sorted(want_ports)})",
          f"{list(ports)}")
    check("hostPort" not in ports.get("admin", {}), f"[{label}] the admin port is never a hostPort")
    lp, rp = c.get("livenessProbe", {}), c.get("readinessProbe", {})
    check(dig(lp, "httpGet", "path") == "/healthz" and dig(lp, "httpGet", "port") in ("admin", ports.get("admin", {}).get("containerPort")),
          f"[{label}] liveness probe /healthz on the admin port", f"{lp}")
    check(dig(rp, "httpGet", "path") == "/readyz" and dig(rp, "httpGet", "port") in ("admin", ports.get("admin", {}).get("containerPort")),
          f"[{label}] readiness probe /readyz on the admin port", f"{rp}")
    psc, csc = podspec.get("securityContext", {}), c.get("securityContext", {})
    check(csc.get("runAsNonRoot") is True or psc.get("runAsNonRoot") is True, f"[{label}] runAsNonRoot")
    check((csc.get("runAsUser") or psc.get("runAsUser") or 0) > 0, f"[{label}] numeric non-root runAsUser")
    check(csc.get("readOnlyRootFilesystem") is True, f"[{label}] readOnlyRootFilesystem")
    check(csc.get("allowPrivilegeEscalation") is False, f"[{label}] allowPrivilegeEscalation false")
    check(dig(csc, "capabilities", "drop") == ["ALL"] and not dig(csc, "capabilities", "add"),
          f"[{label}] capabilities drop ALL, add none")
    check(dig(csc, "seccompProfile", "type") == "RuntimeDefault" or dig(psc, "seccompProfile", "type") == "RuntimeDefault",
          f"[{label}] seccompProfile RuntimeDefault")
    check(not podspec.get("hostNetwork") and not podspec.get("hostPID"), f"[{label}] no hostNetwork/hostPID")
    res = c.get("resources", {})
    check(bool(dig(res, "requests", "cpu")) and bool(dig(res, "requests", "memory")) and bool(dig(res, "limits", "memory")),
          f"[{label}] resources: cpu+memory requests and a memory limit", f"{res}")
    env = {e["name"]: e for e in c.get("env", [])}
    for name, field in (("POD_NAME", "metadata.name"), ("NAMESPACE_NAME", "metadata.namespace"), ("NODE_NAME", "spec.nodeName")):
        check(dig(env.get(name, {}), "valueFrom", "fieldRef", "fieldPath") == field, f"[{label}] env {name} from {field}")
    check(dig(env, "CONTAINER_NAME", "value") == c.get("name"), f"[{label}] env CONTAINER_NAME is the container's name")
    args = c.get("args", [])
    cfg_file = args[args.index("--config") + 1] if "--config" in args else ""
    mounts = {m["name"]: m for m in c.get("volumeMounts", [])}
    vols = {v["name"]: v for v in podspec.get("volumes", [])}
    cm = one(kinds, "ConfigMap") or {}
    cfg_vol = next((v for v in vols.values() if dig(v, "configMap", "name") == dig(cm, "metadata", "name")), None)
    check(cfg_vol is not None, f"[{label}] the ConfigMap is mounted as a volume")
    mp = dig(mounts, (cfg_vol or {}).get("name", "?"), "mountPath", default="?")
    item_paths = [i["path"] for i in dig(cfg_vol or {}, "configMap", "items", default=[]) or []]
    check(any(cfg_file == f"{mp.rstrip('/')}/{p}" for p in item_paths), f"[{label}] --config points at the mounted config.yaml", cfg_file)
    check("config.yaml" in dig(cm, "data", default={}), f"[{label}] ConfigMap has config.yaml")
    check(bool(dig(pod, "metadata", "annotations", "checksum/config")), f"[{label}] checksum/config annotation rolls pods on config change")
    sa = one(kinds, "ServiceAccount")
    if sa:
        check(podspec.get("serviceAccountName") == dig(sa, "metadata", "name"), f"[{label}] pod uses the chart's ServiceAccount")
    check(set(cfg) <= {"receivers", "processors", "exporters", "service"}, f"[{label}] config top-level keys are the collector's", f"{list(cfg)}")
    for proto, pname in (("grpc", "otlp-grpc"), ("http", "otlp-http")):
        if proto not in protocols:
            continue
        ep = dig(cfg, "receivers", "otlp", "protocols", proto, "endpoint", default="")
        check(ep == f"0.0.0.0:{ports.get(pname, {}).get('containerPort')}", f"[{label}] OTLP {proto} endpoint matches the container port", ep)
    check(dig(cfg, "service", "admin", "endpoint") == f"0.0.0.0:{ports.get('admin', {}).get('containerPort')}",
          f"[{label}] admin endpoint matches the admin port")
    svc = one(kinds, "Service")
    if svc:
        check(dig(svc, "spec", "internalTrafficPolicy") == "Local", f"[{label}] Service internalTrafficPolicy Local")
        ssel = dig(svc, "spec", "selector", default={})
        check(ssel and all(pod_labels.get(k) == v for k, v in ssel.items()), f"[{label}] Service selects the collector pods")
        check(all(p.get("targetPort") in ports for p in dig(svc, "spec", "ports", default=[])),
              f"[{label}] Service targetPorts are named container ports")
        check({p.get("name") for p in dig(svc, "spec", "ports", default=[])} == want_ports,
              f"[{label}] Service ports are admin and those of the enabled protocols",
              f"{[p.get('name') for p in dig(svc, 'spec', 'ports', default=[])]}")
    for mon_kind in ("PodMonitor", "ServiceMonitor"):
        mon = one(kinds, mon_kind)
        if not mon:
            continue
        msel = dig(mon, "spec", "selector", "matchLabels", default={})
        target_labels = pod_labels if mon_kind == "PodMonitor" else dig(svc or {}, "metadata", "labels", default={})
        check(msel and all(target_labels.get(k) == v for k, v in msel.items()), f"[{label}] {mon_kind} selector matches its targets")
        eps = dig(mon, "spec", "podMetricsEndpoints" if mon_kind == "PodMonitor" else "endpoints", default=[])
        check(bool(eps) and all(e.get("port") == "admin" and e.get("path") == "/metrics" for e in eps),
              f"[{label}] {mon_kind} scrapes port admin /metrics")
    return ds, c, cfg


# ---- defaults ----
dk = by_kind(default_docs)
print("default values:")
check(set(dk) == {"ServiceAccount", "ConfigMap", "Service", "DaemonSet"},
      "[default] renders ServiceAccount, ConfigMap, Service, DaemonSet and no CRDs", f"{sorted(dk)}")
ds, c, cfg = check_common("default", dk)
ports = {p["name"]: p for p in c.get("ports", [])}
check(ports.get("otlp-grpc", {}).get("hostPort") == 4317 and ports.get("otlp-http", {}).get("hostPort") == 4318,
      "[default] hostPorts 4317/4318 on by default")
check(set(dig(cfg, "receivers", "otlp", "protocols", default={}) or {}) == {"grpc", "http"},
      "[default] both OTLP protocols are on")
check(dig(cfg, "processors", "gardener", "enabled") is True, "[default] the gardener processor is on")
check("googlecloud" not in (cfg.get("exporters") or {}), "[default] Cloud Monitoring is off unless enabled")
check(dig(one(dk, "ServiceAccount") or {}, "automountServiceAccountToken") is False, "[default] no API token mounted")

# ---- custom values ----
ck = by_kind(custom_docs)
print("custom values (tests/deploy/values-custom.yaml):")
check({"PodMonitor", "ServiceMonitor", "PrometheusRule"} <= set(ck), "[custom] PodMonitor, ServiceMonitor and PrometheusRule rendered", f"{sorted(ck)}")
ds2, c2, cfg2 = check_common("custom", ck)
check(c2.get("resources") == custom_values["resources"], "[custom] resources are the ones from the values file", f"{c2.get('resources')}")
for doc in custom_docs:
    labels = dig(doc, "metadata", "labels", default={}) or {}
    check(labels.get("app.kubernetes.io/component") == "telemetry-agent" and labels.get("team") == "observability",
          f"[custom] {doc['kind']}: commonLabels over the chart's labels", f"{labels}")
check(dig(ds2, "spec", "template", "metadata", "labels", "app.kubernetes.io/component") == "telemetry-agent",
      "[custom] podLabels over the chart's pod labels")
check(dig(cfg2, "exporters", "otlp", "endpoint") == custom_values["config"]["exporters"]["otlp"]["endpoint"],
      "[custom] the ConfigMap config contains the custom exporters.otlp key")
check(dig(cfg2, "exporters", "otlp", "headers", "x-tenant") == "team-a", "[custom] nested custom map kept")
check(dig(cfg2, "exporters", "debug", "enabled") is True, "[custom] a custom value overrides a chart default")
check(dig(cfg2, "service", "shutdown_grace_period") == "20s" and dig(cfg2, "service", "admin", "endpoint") == "0.0.0.0:9464",
      "[custom] merge is deep: service.admin default kept next to the custom shutdown_grace_period")
check(dig(cfg2, "receivers", "otlp", "protocols", "grpc", "max_recv_msg_size_mib") == 4, "[custom] untouched defaults stay")
check(dig(cfg2, "exporters", "googlecloud", "project") == "my-project"
      and dig(cfg2, "exporters", "googlecloud", "metric_prefix") == "workload.googleapis.com/gardener",
      "[custom] googleCloud.enabled adds the googlecloud exporter")
ports2 = {p["name"]: p for p in c2.get("ports", [])}
check(all("hostPort" not in p for p in ports2.values()), "[custom] hostPorts.enabled=false removes hostPorts")
env2 = {e["name"]: e.get("value") for e in c2.get("env", [])}
check(env2.get("GOOGLE_CLOUD_PROJECT") == "my-project" and env2.get("CLUSTER_NAME") == "prod-eu"
      and env2.get("CLUSTER_LOCATION") == "europe-west1", "[custom] k8s_container env (project, cluster name/location)")
check(env2.get("RUST_LOG") == "info", "[custom] extraEnv appended")
sa2 = one(ck, "ServiceAccount") or {}
check(dig(sa2, "metadata", "annotations", "iam.gke.io/gcp-service-account") == "log-gardener@my-project.iam.gserviceaccount.com",
      "[custom] Workload Identity annotation on the ServiceAccount")
ps2 = dig(ds2, "spec", "template", "spec", default={})
check(ps2.get("priorityClassName") == "system-node-critical", "[custom] priorityClassName")
check(ps2.get("nodeSelector") == {"kubernetes.io/os": "linux"}, "[custom] nodeSelector")
check(ps2.get("tolerations") == [{"operator": "Exists"}], "[custom] tolerations")
check(c2.get("image") == "europe-docker.pkg.dev/my-project/containers/log-gardener:0.2.0", "[custom] image repository:tag", c2.get("image"))
check(dig(ds, "spec", "template", "metadata", "annotations", "checksum/config")
      != dig(ds2, "spec", "template", "metadata", "annotations", "checksum/config"), "[custom] config checksum changes with the config")
pm = one(ck, "PodMonitor") or {}
check(dig(pm, "metadata", "labels", "release") == "kube-prometheus-stack", "[custom] PodMonitor carries the selector labels")
pr = one(ck, "PrometheusRule") or {}
base = custom_values["prometheusRule"]["runbookBaseUrl"]
spec = pr.get("spec", {})
urls = [r["annotations"]["runbook_url"] for g in spec.get("groups", []) for r in g["rules"] if "alert" in r]
check(bool(urls) and all(u.startswith(base + "deploy/prometheus/runbooks.md#") for u in urls),
      "[custom] PrometheusRule runbook_url values carry runbookBaseUrl", f"{urls}")

# ---- googleCloud.enabled without a project ----
if gc_docs is not None:
    print("googleCloud.enabled=true, no project:")
    gk = by_kind(gc_docs)
    _, c3, cfg3 = check_common("gc-noproject", gk)
    gc3 = dig(cfg3, "exporters", "googlecloud")
    check(isinstance(gc3, dict) and "project" not in gc3,
          "[gc-noproject] the googlecloud exporter has no project key (the exporter finds the project itself)", f"{gc3}")
    cm3 = one(gk, "ConfigMap") or {}
    check("${env:" not in dig(cm3, "data", "config.yaml", default=""),
          "[gc-noproject] no ${env:...} reference the pod's environment may not satisfy")
    env3 = {e["name"] for e in c3.get("env", [])}
    check("GOOGLE_CLOUD_PROJECT" not in env3, "[gc-noproject] no empty GOOGLE_CLOUD_PROJECT env")

# ---- one OTLP protocol switched off ----
for flag, off, on in (("--no-grpc", "grpc", "http"), ("--no-http", "http", "grpc")):
    if flag not in named:
        continue
    key = {"grpc": "otlpGrpc", "http": "otlpHttp"}[off]
    lbl = f"no-{off}"
    print(f"ports.{key}.enabled=false:")
    k = by_kind(named[flag])
    _, cx, cfgx = check_common(lbl, k)
    protos = dig(cfgx, "receivers", "otlp", "protocols", default={}) or {}
    check(off not in protos and on in protos, f"[{lbl}] the config lists {on} and not {off}", f"{sorted(protos)}")
    portsx = {p["name"]: p for p in cx.get("ports", [])}
    check(f"otlp-{off}" not in portsx and f"otlp-{on}" in portsx, f"[{lbl}] no otlp-{off} container port, otlp-{on} kept")
    default_host = {"grpc": 4317, "http": 4318}
    check([p.get("hostPort") for p in portsx.values() if "hostPort" in p] == [default_host[on]],
          f"[{lbl}] only the {on} hostPort ({default_host[on]}) is opened on the node")
    svcx = one(k, "Service") or {}
    svc_ports = [p.get("port") for p in dig(svcx, "spec", "ports", default=[])]
    check(default_host[off] not in svc_ports and default_host[on] in svc_ports,
          f"[{lbl}] the Service has no {off} port, keeps the {on} port", f"{svc_ports}")


def strip_runbooks(rules):
    out = yaml.safe_load(yaml.safe_dump(rules))
    for g in out.get("groups", []):
        for r in g["rules"]:
            if "runbook_url" in r.get("annotations", {}):
                r["annotations"]["runbook_url"] = r["annotations"]["runbook_url"].rsplit("/", 1)[-1]
    return out


check(strip_runbooks(spec) == strip_runbooks(canonical_rules),
      "[custom] PrometheusRule spec is files/prometheus-rules.yaml (same groups and rules)")

finish("helm")
