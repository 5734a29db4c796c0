#!/usr/bin/env bash
# Instructions per record of the enrichment alone: the `pipeline` criterion
# bench's `process_logs_encoded_1000` (the worker's whole path on batches of
# 1000 encoded loadgen records) under callgrind, counting only what runs
# inside the bench's never-inlined wrapper of `Processor::process_logs_encoded`
# (or, with FN=tally_logs_encoded, of the path for logs that no exporter
# reads).
#
#   benches/processor-instructions.sh          # builds the bench, prints one line
#   KEEP=/tmp/cg.out benches/processor-instructions.sh   # keep the callgrind file
#   FN=tally_logs_encoded benches/processor-instructions.sh  # logs no exporter reads
#   FN=process_traces_encoded (or tally_traces_encoded)       # spans, per span
#
# Why next to benches/instructions.sh: the end-to-end count needs a release
# build of the collector (minutes) and includes the receiver, the queue and
# memcpy, whose count callgrind inflates (each byte of a `rep movsb` is an
# instruction, and whether a buffer moves when it grows depends on the
# allocator's state: ±150 instructions a record between identical runs).
# This one rebuilds in under a minute (after a first build of a few
# minutes) and varies by a few instructions, so it suits comparing steps of
# work on the processor. The bench is built without the PGO profile
# (LOG_GARDENER_PGO=off) in its own target directory: in `target/` it would
# reuse dependencies compiled by an earlier release build, with or without
# the profile, and two measurements would not compare like with like.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
command -v valgrind >/dev/null || { echo "valgrind not found" >&2; exit 1; }
export CARGO_TARGET_DIR=${PROCESSOR_INSTRUCTIONS_TARGET:-$ROOT/target/processor-instructions}
BENCH=$(LOG_GARDENER_PGO=off cargo bench -p gardener-processor --bench pipeline --no-run \
  --message-format=json 2>/dev/null |
  python3 -c 'import json,sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] == "pipeline":
        print(m["executable"])')
[[ -x $BENCH ]] || { echo "could not build the pipeline bench" >&2; exit 1; }
FN=${FN:-process_logs_encoded}
OUT=${KEEP:-$(mktemp /tmp/lg-proc-instr.XXXXXX)}

valgrind --tool=callgrind --callgrind-out-file="$OUT" \
  --toggle-collect="*${FN}_batch*" \
  "$BENCH" --bench "${FN}_1000" \
  --warm-up-time 0.5 --measurement-time 1 --sample-size 10 >/dev/null 2>&1

# Instructions collected / (calls of $FN x 1000 records).
python3 - "$OUT" "$FN" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
total = int(re.search(r"^(?:summary|totals): (\d+)", text, re.M).group(1))
ids = set(re.findall(r"c?fn=\((\d+)\) [^\n]*" + sys.argv[2] + "_batch", text))
calls = sum(int(m.group(2)) for m in re.finditer(r"cfn=\((\d+)\)[^\n]*\ncalls=(\d+)", text)
            if m.group(1) in ids)
print(f"{sys.argv[2]}: {total / calls / 1000:,.0f} instructions/record ({calls} batches of 1000)")
PY
[[ -n ${KEEP:-} ]] || rm -f "$OUT"
