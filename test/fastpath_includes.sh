#!/bin/sh
# Fails if any fast-path object was compiled with a header from a library the
# fast path must not see. Reads ninja's dependency log: what the compiler
# actually opened, not what the build files claim.
# Usage: fastpath_includes.sh BUILD_DIR LIB...
set -eu
build=$1; shift
forbidden='yaml-cpp/|/fmt/|google/protobuf/|/boost/|/asio'
status=0
checked=0
for lib in "$@"; do
  name=$(basename "$lib")
  objs=$(ninja -C "$build" -t targets all 2>/dev/null | sed -n "s|^\([^:]*${name}.p/[^:]*\.o\): .*|\1|p")
  for o in $objs; do
    checked=$((checked + 1))
    bad=$(ninja -C "$build" -t deps "$o" | grep -E "$forbidden" || true)
    if [ -n "$bad" ]; then
      echo "FAIL: fast-path object $o includes forbidden headers:"
      echo "$bad" | head -5
      status=1
    fi
  done
done
if [ "$checked" -eq 0 ]; then
  echo "FAIL: no fast-path objects found to check"
  exit 1
fi
echo "checked $checked fast-path objects"
exit $status
