# Shared by the shell tests: `check NAME COMMAND...` counts a pass when the
# command succeeds, else prints FAIL: NAME; `finish NAME` prints the tally
# and fails the test if anything failed.
pass=0
fail=0
check() {
  local name=$1; shift
  if "$@"; then pass=$((pass + 1)); else echo "FAIL: $name"; fail=$((fail + 1)); fi
}
finish() {
  echo "$1: $pass passed, $fail failed"
  [ "$fail" -eq 0 ]
}
