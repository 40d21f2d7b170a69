#!/usr/bin/env bash
# Run every `go test -fuzz` target of the module, one after the other, for
# FUZZTIME each, and print a markdown table: target, executions, executions
# per second, new interesting inputs, crashers.
#
#   bench/fuzz.sh                            # every target, 60s each (make fuzz)
#   FUZZTIME=3s FUZZCACHE=fresh bench/fuzz.sh  # the short run make test does
#   FUZZ='^Fuzz(Open|Read)$' bench/fuzz.sh   # only targets whose name matches
#   bench/fuzz.sh ./image/bundle ./profiles  # only these packages' targets
#
# Targets are found by name (func FuzzX in a _test.go file), so a new one is
# run without being listed here. A crasher makes go test write the input to
# the package's testdata/fuzz/FuzzX/ (fix the bug, keep the file: it is then
# a regression seed every `go test` runs); the script goes on with the next
# target and exits 1 after the table. The inputs the fuzzer found
# interesting stay in Go's cache ($(go env GOCACHE)/fuzz) and seed the next
# run; with FUZZCACHE=fresh (make test) a run starts from the seeds alone,
# in a private cache removed at its end: otherwise the cached corpus of
# earlier long runs is replayed first, which for a slow target takes more
# than a short FUZZTIME (the time counts from the start) and leaves no
# time to fuzz. FUZZPARALLEL sets go test -parallel (default: GOMAXPROCS);
# FUZZMINIMIZETIME sets -fuzzminimizetime for every target (default: Go's
# 60s, except the targets named in minimize below).
set -euo pipefail
cd "$(dirname "$0")/.."

GO=${GO:-go}
FUZZTIME=${FUZZTIME:-60s}
FUZZ=${FUZZ:-.}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/keel-fuzz.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

pkgs=("$@")
[ ${#pkgs[@]} -gt 0 ] || pkgs=(.)
# "dir name" for every fuzz target, sorted.
targets=$(for p in "${pkgs[@]}"; do
  grep -rEo --include='*_test.go' '^func Fuzz[A-Za-z0-9_]*\(' "$p" || true
done | sed -E 's|^(.*)/[^/]*_test\.go:func (Fuzz[A-Za-z0-9_]*)\($|\1 \2|' | sort -u | awk -v re="$FUZZ" '$2 ~ re')
[ -n "$targets" ] || { echo "fuzz: no target matches" >&2; exit 2; }

# minimize DIR NAME → the -fuzzminimizetime a target runs with. Go's
# fuzzer minimises every input that finds new coverage, by running the
# target on smaller versions of it; where one execution takes a third of
# a second, that took 10 s and more per input and most of the run.
minimize() {
  if [ -n "${FUZZMINIMIZETIME:-}" ]; then echo "$FUZZMINIMIZETIME"; return; fi
  case "${1#./}/$2" in
    # Three unsquashfs runs and two kernel mounts per execution (~0.3 s),
    # on inputs of tens of bytes: nothing to gain from minimising.
    rootfs/squashfs/FuzzRoundTrip) echo 0 ;;
    # Seeded with a keel-written qcow2 (320 KiB at least: 64 KiB
    # clusters): minimising inputs that size stalled the run for minutes.
    image/format/FuzzQcow2Open) echo 0 ;;
    *) echo 60s ;;
  esac
}

# seconds DURATION → whole seconds of Go's rounded elapsed time (1m0s, 20s).
seconds() {
  awk -v d="$1" 'BEGIN { s = 0
    if (match(d, /[0-9]+h/)) s += 3600 * substr(d, RSTART, RLENGTH - 1)
    if (match(d, /[0-9]+m/)) s += 60 * substr(d, RSTART, RLENGTH - 1)
    if (match(d, /[0-9.]+s/)) s += substr(d, RSTART, RLENGTH - 1)
    print s }'
}

echo "fuzztime: $FUZZTIME per target; $(nproc) cores; $($GO version | cut -d' ' -f3-)"
echo
echo "| target | execs | execs/s | new interesting | crashers |"
echo "|---|---:|---:|---:|---:|"
failed=0
while read -r dir name; do
  pkg=./${dir#./}
  log=$WORK/$(echo "$pkg.$name" | tr / _).log
  par=() extra=()
  [ -z "${FUZZPARALLEL:-}" ] || par=(-parallel "$FUZZPARALLEL")
  # go test passes the test binary its cache directory as
  # -test.fuzzcachedir; one given after -args comes later and wins.
  [ "${FUZZCACHE:-}" != fresh ] || extra=(-args "-test.fuzzcachedir=$WORK/cache/${pkg#./}/$name")
  status=ok
  # go test's -timeout (default 10m) covers the fuzzing too.
  timeout=30m
  case $FUZZTIME in *x) ;; *) timeout=$(( $(seconds "$FUZZTIME") + 600 ))s ;; esac
  $GO test -run '^$' -fuzz "^$name\$" -fuzztime "$FUZZTIME" -fuzzminimizetime "$(minimize "$dir" "$name")" \
    -timeout "$timeout" "${par[@]}" "$pkg" "${extra[@]}" </dev/null >"$log" 2>&1 || status=failed
  # The coordinator's last line has the totals; its rate is the last
  # interval's, so execs/s is computed over the whole run here.
  last=$(grep -E '^fuzz: elapsed: .*execs: [0-9]+' "$log" | tail -1 || true)
  execs=$(sed -nE 's/.*execs: ([0-9]+).*/\1/p' <<<"$last")
  elapsed=$(sed -nE 's/^fuzz: elapsed: ([0-9hms.]+),.*/\1/p' <<<"$last")
  newi=$(sed -nE 's/.*new interesting: ([0-9]+).*/\1/p' <<<"$last")
  crashers=$(grep -c 'Failing input written to' "$log" || true)
  # Go before 1.27 can fail a target with a bare "context deadline
  # exceeded" as -fuzztime ends: a race in its coordinator
  # (go.dev/issue/75804), with no input failing. Only that, with no
  # crasher written and no panic, is not a finding.
  race=
  if [ "$status" != ok ] && [ "$crashers" = 0 ] && grep -qx '    context deadline exceeded' "$log" &&
    ! grep -qvE '^(fuzz: .*|--- FAIL: Fuzz[A-Za-z0-9_]* \([0-9.]+s\)|    context deadline exceeded|FAIL|exit status 1|FAIL	.*|warning: .*)$' "$log"; then
    status=ok race=" (deadline race at the end, go.dev/issue/75804)"
  fi
  rate=
  if [ -n "$execs" ] && [ "$(seconds "$elapsed")" != 0 ]; then
    rate=$(awk -v n="$execs" -v s="$(seconds "$elapsed")" 'BEGIN { printf "%.0f", n / s }')
  fi
  printf "| %s %s%s | %s | %s | %s | %s |\n" "${pkg#./}" "$name" "$race" "${execs:-0}" "${rate:-0}" "${newi:-0}" "$crashers"
  if [ "$status" != ok ]; then
    failed=1
    { echo "--- $pkg $name failed:"; grep -vE '^fuzz: elapsed' "$log" | tail -40; } >>"$WORK/failures"
  fi
done <<<"$targets"
if [ "$failed" = 1 ]; then
  echo
  cat "$WORK/failures"
  exit 1
fi
