# Shared by the CLI test scripts (sourced): a temp folder removed on exit, pass/bad counters,
# expect_fail, and finish (prints the count, exits non-zero on any failure).
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
fails=0
pass() { echo "ok   - $1"; }
bad() { echo "FAIL - $1"; fails=$((fails + 1)); }

# expect_fail NAME EXPECTED_SUBSTRING CMD...: non-zero exit and the message names the problem.
expect_fail() {
  local name="$1" want="$2"
  shift 2
  local out
  out="$("$@" 2>&1)"
  local rc=$?
  if [[ $rc -ne 0 && "$out" == *"$want"* ]]; then pass "$name (exit $rc)"; else bad "$name: exit $rc, output: $out"; fi
}

finish() {
  echo "$fails failure(s)"
  exit $((fails > 0))
}
