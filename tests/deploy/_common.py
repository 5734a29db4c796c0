"""Tiny helpers shared by the deploy checks (no third-party test runner).

Each check script records sub-checks with `check(cond, what)`, prints one line
per sub-check, and exits non-zero if any failed (`finish()`).
"""
import os
import sys

import yaml

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
_failures = []
_count = 0


def path(*parts):
    return os.path.join(REPO, *parts)


def check(cond, what, detail=""):
    global _count
    _count += 1
    if cond:
        print(f"  ok   {what}")
    else:
        _failures.append(what)
        print(f"  FAIL {what}" + (f": {detail}" if detail else ""))
    return bool(cond)


class UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader refusing a key written twice in one mapping: PyYAML keeps
    the last, the Kubernetes API server refuses the manifest."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def load_yaml_all(p):
    with open(p) as f:
        return [d for d in yaml.load_all(f, Loader=UniqueKeyLoader) if d is not None]


def load_yaml(p):
    with open(p) as f:
        return yaml.load(f, Loader=UniqueKeyLoader)


def dig(obj, *keys, default=None):
    for k in keys:
        if isinstance(obj, dict) and k in obj:
            obj = obj[k]
        elif isinstance(obj, list) and isinstance(k, int) and -len(obj) <= k < len(obj):
            obj = obj[k]
        else:
            return default
    return obj


def finish(name):
    if _failures:
        print(f"{name}: {len(_failures)} of {_count} sub-checks failed")
        sys.exit(1)
    print(f"{name}: all {_count} sub-checks passed")
    sys.exit(0)
