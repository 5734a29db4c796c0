"""Structural checks of the Cloud Run service (gcloud is not available here).

Validates deploy/cloud-run/service.yaml as a Knative serving.knative.dev/v1
Service that Cloud Run accepts for a sidecar deployment, and
deploy/cloud-run/collector-config.yaml as the sidecar's config.
"""
import json
import re

from _common import check, dig, finish, load_yaml_all, path

docs = load_yaml_all(path("deploy", "cloud-run", "service.yaml"))
check(len(docs) == 1, "service.yaml holds exactly one document", f"{len(docs)}")
svc = docs[0]
check(svc.get("apiVersion") == "serving.knative.dev/v1", "apiVersion serving.knative.dev/v1")
check(svc.get("kind") == "Service", "kind Service")
name = dig(svc, "metadata", "name", default="")
check(re.fullmatch(r"[a-z]([-a-z0-9]{0,47}[a-z0-9])?", name or "") is not None,
      "metadata.name is a valid Cloud Run service name", name)

tmpl = dig(svc, "spec", "template", default={})
ann = dig(tmpl, "metadata", "annotations", default={}) or {}
spec = dig(tmpl, "spec", default={}) or {}
containers = spec.get("containers") or []
names = [c.get("name") for c in containers]
check(len(containers) >= 2, "at least two containers (app + sidecar)", f"{names}")
check(all(n and re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", n) for n in names),
      "every container has a DNS-label name (required with several containers)", f"{names}")
check(len(set(names)) == len(names), "container names are unique", f"{names}")

with_ports = [c for c in containers if c.get("ports")]
check(len(with_ports) == 1, "exactly one container has ports (the ingress container)",
      f"{[c.get('name') for c in with_ports]}")
ingress = with_ports[0] if with_ports else {}
check(len(ingress.get("ports") or []) == 1, "the ingress container declares a single port")
check(dig(ingress, "ports", 0, "name") in (None, "http1", "h2c"), "ingress port name is http1 or h2c")

sidecar = next((c for c in containers if c.get("name") == "log-gardener"), None)
check(sidecar is not None, "a container named log-gardener exists")
sidecar = sidecar or {}
check(not sidecar.get("ports"), "the log-gardener sidecar has no ports")

app_env = {e.get("name"): e.get("value") for e in ingress.get("env") or []}
check(app_env.get("OTEL_EXPORTER_OTLP_ENDPOINT") == "http://localhost:4317",
      "app env OTEL_EXPORTER_OTLP_ENDPOINT=http://localhost:4317", app_env.get("OTEL_EXPORTER_OTLP_ENDPOINT"))

# container-dependencies: valid JSON, names existing containers, no cycle, app waits for the collector
deps_raw = ann.get("run.googleapis.com/container-dependencies")
check(isinstance(deps_raw, str), "container-dependencies annotation is a string")
try:
    deps = json.loads(deps_raw or "")
    ok_json = isinstance(deps, dict) and all(isinstance(v, list) for v in deps.values())
except ValueError:
    deps, ok_json = {}, False
check(ok_json, "container-dependencies is a JSON object of name -> [names]", deps_raw)
deps = deps if ok_json else {}
mentioned = set(deps) | {d for v in deps.values() for d in v}
check(mentioned <= set(names), "container-dependencies names only existing containers",
      f"unknown: {sorted(mentioned - set(names))}")
check("log-gardener" in deps.get(ingress.get("name"), []),
      "the ingress container depends on log-gardener")


def has_cycle(graph):
    seen, stack = set(), set()

    def visit(n):
        if n in stack:
            return True
        if n in seen:
            return False
        seen.add(n)
        stack.add(n)
        r = any(visit(m) for m in graph.get(n, []))
        stack.discard(n)
        return r
    return any(visit(n) for n in graph)


check(not has_cycle(deps), "container-dependencies has no cycle")
for dep in {d for v in deps.values() for d in v}:
    c = next((c for c in containers if c.get("name") == dep), {})
    check(c.get("startupProbe") is not None, f"dependency {dep} has a startup probe (Cloud Run waits on it)")

sp = sidecar.get("startupProbe") or {}
check(dig(sp, "httpGet", "path") == "/readyz" and dig(sp, "httpGet", "port") == 9464,
      "sidecar startupProbe is httpGet /readyz on 9464", f"{sp}")
lp = sidecar.get("livenessProbe") or {}
check(dig(lp, "httpGet", "path") == "/healthz" and dig(lp, "httpGet", "port") == 9464,
      "sidecar livenessProbe is httpGet /healthz on 9464", f"{lp}")
for pname, p in (("startupProbe", sp), ("livenessProbe", lp)):
    period = p.get("periodSeconds", 10)
    timeout = p.get("timeoutSeconds", 1)
    check(timeout <= period, f"sidecar {pname} timeoutSeconds <= periodSeconds")
check(sp.get("periodSeconds", 10) * sp.get("failureThreshold", 3) + sp.get("initialDelaySeconds", 0) <= 240,
      "sidecar startup probe gives up within Cloud Run's 240 s")

lim = dig(sidecar, "resources", "limits", default={}) or {}
check(str(lim.get("cpu")) == "1" and lim.get("memory") == "256Mi",
      "sidecar limits cpu 1 / memory 256Mi", f"{lim}")
for c in containers:
    check(bool(dig(c, "resources", "limits", "cpu")) and bool(dig(c, "resources", "limits", "memory")),
          f"container {c.get('name')} sets cpu and memory limits")
for c in containers:
    img = c.get("image", "")
    check(bool(img) and not img.endswith(":latest") and ":" in img.rsplit("/", 1)[-1],
          f"container {c.get('name')} image has an explicit, non-latest tag", img)

args = sidecar.get("args") or []
check("--config" in args, "sidecar runs with --config", f"{args}")
cfg_path = args[args.index("--config") + 1] if "--config" in args and args.index("--config") + 1 < len(args) else ""
mounts = sidecar.get("volumeMounts") or []
mount = next((m for m in mounts if cfg_path.startswith(m.get("mountPath", "\0").rstrip("/") + "/")), None)
check(mount is not None, "the --config file lies under a volume mount", cfg_path)
vols = {v.get("name"): v for v in spec.get("volumes") or []}
vol = vols.get((mount or {}).get("name"), {})
sec = vol.get("secret") or {}
check(bool(sec.get("secretName")), "the config volume is a Secret Manager secret volume", f"{vol}")
items = sec.get("items") or []
check(any(cfg_path.endswith("/" + i.get("path", "")) for i in items),
      "the secret item's path is the file passed to --config", f"{items}")
# A mounted secret is read when the file is read: "latest" would hand later
# instances of a revision whatever version was added since.
check(all(isinstance(i.get("key"), str) and i["key"].isdigit() for i in items),
      "the config secret is a pinned version (a quoted number), not latest", f"{items}")
check(all(m.get("name") in vols for c in containers for m in c.get("volumeMounts") or []),
      "every volumeMount refers to a declared volume")
for m in mounts:
    mp = m.get("mountPath", "")
    check(not re.match(r"^/(dev|proc|sys)(/|$)", mp) and mp != "/", f"mountPath {mp} is allowed by Cloud Run")

# The sidecar config
cfg = load_yaml_all(path("deploy", "cloud-run", "collector-config.yaml"))[0]
check(set(cfg) <= {"receivers", "processors", "exporters", "service"}, "collector config has only known top-level keys", f"{list(cfg)}")
for proto in ("grpc", "http"):
    ep = dig(cfg, "receivers", "otlp", "protocols", proto, "endpoint", default="")
    check(ep.startswith("127.0.0.1:"), f"OTLP {proto} listens on 127.0.0.1 only", ep)
check(dig(cfg, "receivers", "otlp", "protocols", "grpc", "endpoint", default="").endswith(":4317"),
      "OTLP gRPC on port 4317 (the app's OTEL_EXPORTER_OTLP_ENDPOINT)")
check(dig(cfg, "service", "admin", "endpoint", default="").endswith(":9464"), "admin endpoint on 9464 (probes)")
gc = dig(cfg, "exporters", "googlecloud", default={}) or {}
check(bool(gc.get("project")) and gc.get("metric_prefix") == "workload.googleapis.com/gardener",
      "Cloud Monitoring export is on with prefix workload.googleapis.com/gardener")
check(bool(dig(cfg, "exporters", "otlp", "endpoint")), "OTLP forward exporter has an endpoint")
env_names = {e.get("name") for e in sidecar.get("env") or []}


def strings(o):
    if isinstance(o, dict):
        for v in o.values():
            yield from strings(v)
    elif isinstance(o, list):
        for v in o:
            yield from strings(v)
    elif isinstance(o, str):
        yield o


used = {v for s in strings(cfg) for v in re.findall(r"\$\{env:([A-Za-z_][A-Za-z0-9_]*)\}", s)}
check(used <= env_names, "every ${env:VAR} in the config is set on the sidecar", f"missing: {sorted(used - env_names)}")
# The sidecar's memory limiter must act below the container's memory limit,
# and must not depend on the cgroup the container sees inside the instance.
mem = str(lim.get("memory", ""))
m = re.fullmatch(r"(\d+)(Mi|Gi)", mem)
limit_mib = int(m.group(1)) * (1024 if m.group(2) == "Gi" else 1) if m else 0
cfg_limit = dig(cfg, "service", "memory_limit_mib")
check(isinstance(cfg_limit, int) and 0 < cfg_limit < limit_mib,
      "service.memory_limit_mib is set and below the sidecar's memory limit", f"{cfg_limit} vs {mem}")
grace = dig(cfg, "service", "shutdown_grace_period", default="10s")
m = re.fullmatch(r"(\d+)s", str(grace))
check(m is not None and int(m.group(1)) < 10, "shutdown_grace_period fits Cloud Run's 10 s SIGTERM window", grace)

finish("cloud-run")
