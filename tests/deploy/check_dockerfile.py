"""Structural checks of deploy/Dockerfile (hadolint runs separately, too).

Multi-stage with a rust builder using --locked, a distroless final stage
without a `latest` tag, a numeric non-root USER (so that Kubernetes'
runAsNonRoot can verify it), exec-form ENTRYPOINT/CMD, the three ports, and
nothing that would need a writable root filesystem at run time.
"""
import re

from _common import check, finish, path

with open(path("deploy", "Dockerfile")) as f:
    text = f.read()
# join continuation lines, drop comments
lines = []
buf = ""
for raw in text.splitlines():
    s = raw.strip()
    if not s or (s.startswith("#") and not buf):
        continue
    if s.endswith("\\"):
        buf += s[:-1] + " "
        continue
    lines.append(buf + s)
    buf = ""
instr = [(l.split(None, 1)[0].upper(), l.split(None, 1)[1] if " " in l else "") for l in lines]
args = {}
for k, v in instr:
    if k == "ARG" and "=" in v:
        n, d = v.split("=", 1)
        args[n.strip()] = d.strip()


def expand(s):
    return re.sub(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?", lambda m: args.get(m.group(1), m.group(0)), s)


froms = [expand(v) for k, v in instr if k == "FROM"]
check(len(froms) >= 2, "multi-stage build (two or more FROM)", f"{froms}")
images = [f.split()[0] for f in froms]
stage_names = {f.split()[-1] for f in froms if " AS " in f.upper()}
for img in images:
    if img in stage_names:
        continue
    tag = img.rsplit("/", 1)[-1]
    check(("@sha256:" in img) or (":" in tag and not tag.endswith(":latest")), f"base image {img} is pinned (tag or digest, not latest)")
check(images and images[0].startswith("rust:"), "builder stage is a rust image", images[0] if images else "")
check(any("cargo build" in v and "--release" in v and "--locked" in v for k, v in instr if k == "RUN"),
      "builder runs cargo build --release --locked")
final_idx = max(i for i, (k, _) in enumerate(instr) if k == "FROM")
final = instr[final_idx:]
check(images[-1].startswith("gcr.io/distroless/"), "final stage is distroless", images[-1])
check(not any(k == "RUN" for k, _ in final), "final stage has no RUN (no shell in distroless)")
users = [v for k, v in final if k == "USER"]
check(bool(users), "final stage sets USER")
uid = users[-1].split(":")[0] if users else "0"
check(uid.isdigit() and int(uid) != 0, "USER is numeric and not root", users[-1] if users else "")
ep = [v for k, v in final if k == "ENTRYPOINT"]
check(bool(ep) and ep[-1].startswith("[") and '"/log-gardener"' in ep[-1], 'ENTRYPOINT ["/log-gardener"] in exec form', ep[-1] if ep else "")
cmd = [v for k, v in final if k == "CMD"]
check(bool(cmd) and cmd[-1].replace(" ", "") == '["run"]', 'CMD ["run"] in exec form')
exposed = set(" ".join(v for k, v in final if k == "EXPOSE").split())
check({"4317", "4318", "9464"} <= exposed, "EXPOSE 4317 4318 9464", f"{exposed}")
check(not any(k == "VOLUME" for k, _ in final), "no VOLUME (the collector writes nothing: read-only root fs works)")
check(any(k == "COPY" and "--from=" in v and "/log-gardener" in v for k, v in final), "final stage copies only the binary from the builder")
check(not any(k == "ADD" for k, _ in instr), "no ADD (COPY only)")
finish("dockerfile")
