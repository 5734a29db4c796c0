#!/usr/bin/env bash
# Checks pgo/rustc-wrapper's decisions with `echo` standing in for rustc,
# and that the committed profile is an LLVM indexed profile. Run by .ci/run.
set -euo pipefail
cd "$(dirname "$0")"
dir=$(pwd)
fail=0
# expect NAME WANT ENV... -- ARGS...: WANT is the flag the wrapper must add
# (empty: none).
expect() {
  local name=$1 want=$2 envs=() out
  shift 2
  while [[ $1 != -- ]]; do envs+=("$1"); shift; done
  shift
  out=$(env "${envs[@]}" ./rustc-wrapper echo "$@")
  local added=${out#"$*"}
  added=${added# }
  if [[ $added != "$want" ]]; then
    echo "FAIL $name: added '$added', want '$want'"
    fail=1
  else
    echo "ok   $name"
  fi
}
use="-Cprofile-use=$dir/log-gardener.profdata -Cllvm-args=-no-pgo-warn-mismatch"
expect "release compile gets the profile" "$use" -- --crate-name x -C opt-level=3 src/lib.rs
expect "debug compile untouched" "" -- --crate-name x -C debuginfo=2 src/lib.rs
expect "opt-level 1 untouched" "" -- --crate-name x -C opt-level=1 src/lib.rs
expect "rustc -vV untouched" "" -- -vV
expect "fuzzing build untouched" "" -- --cfg fuzzing -C opt-level=3 src/lib.rs
expect "explicit profile flag kept alone" "" -- -Cprofile-use=/p -C opt-level=3 src/lib.rs
expect "LOG_GARDENER_PGO=off" "" LOG_GARDENER_PGO=off -- -C opt-level=3 src/lib.rs
expect "LOG_GARDENER_PGO=generate:DIR" "-Cprofile-generate=/tmp/raw" LOG_GARDENER_PGO=generate:/tmp/raw -- -C opt-level=3 src/lib.rs
# Cargo's environment for the tests reaches rustc, hyphenated names too.
if env 'CARGO_BIN_EXE_log-gardener=/bin/x' ./rustc-wrapper env | grep -qx 'CARGO_BIN_EXE_log-gardener=/bin/x'; then
  echo "ok   CARGO_BIN_EXE_log-gardener reaches rustc"
else
  echo "FAIL CARGO_BIN_EXE_log-gardener is lost on the way to rustc"
  fail=1
fi
magic=$(head -c 8 log-gardener.profdata | od -An -tx1 | tr -d ' \n')
if [[ $magic == ff6c70726f666981 ]]; then
  echo "ok   log-gardener.profdata is an indexed profile"
else
  echo "FAIL log-gardener.profdata: magic $magic"
  fail=1
fi
exit $fail
