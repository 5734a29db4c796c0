"""kubernetes-validate --strict on the core kinds of rendered manifests.

usage: check_k8s_validate.py RENDER.yaml [RENDER.yaml ...]
CRDs (monitoring.coreos.com/*: PodMonitor, ServiceMonitor, PrometheusRule) are
not in kubernetes-validate's schemas: they are listed as skipped, explicitly,
and checked structurally by check_helm.py instead.
"""
import os
import subprocess
import sys
import tempfile

import yaml

from _common import check, finish

CRD_GROUPS = ("monitoring.coreos.com/",)
cli = os.path.join(os.path.dirname(sys.executable), "kubernetes-validate")
for render in sys.argv[1:]:
    with open(render) as f:
        docs = [d for d in yaml.safe_load_all(f) if d]
    core = [d for d in docs if not d["apiVersion"].startswith(CRD_GROUPS)]
    skipped = [f'{d["kind"]}/{d["metadata"]["name"]}' for d in docs if d["apiVersion"].startswith(CRD_GROUPS)]
    if skipped:
        print(f"  skip {os.path.basename(render)}: CRDs not validated here: {', '.join(skipped)}")
    for d in core:
        with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as tmp:
            yaml.safe_dump(d, tmp)
        r = subprocess.run([cli, "--strict", "--quiet", tmp.name], capture_output=True, text=True)
        os.unlink(tmp.name)
        check(r.returncode == 0, f'{os.path.basename(render)}: {d["kind"]}/{d["metadata"]["name"]} valid (strict)',
              (r.stdout + r.stderr).strip().replace(tmp.name, "<doc>"))
finish("kubernetes-validate")
