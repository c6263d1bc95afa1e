#!/bin/bash
# build.sh - build the libFuzzer targets with clang, optionally smoke-run them
#
#   tests/fuzz/build.sh [--smoke] [BUILD_DIR]
#
# Configures BUILD_DIR (default build/fuzz under the repository root) as a
# clang build with -DIMPETUS_FUZZ=ON and builds the fuzz_all target: one
# executable per tests/fuzz/fuzz_*.c in BUILD_DIR/tests/fuzz/. The build is
# incremental, so after the first time it costs only what changed.
#
# --smoke then runs every target for SMOKE_RUNS executions (default 5000,
# capped at SMOKE_SECONDS seconds each, default 10) from its seed corpus
# (tests/fuzz/corpus/<target>/ when present, read-only: new inputs go to a
# temporary directory) and fails on the first finding. This is the ctest
# entry fuzz.smoke; the long runs are in docs/fuzzing.md.
#
# Exit status: 0 built (and smoke-run) cleanly, 77 clang or libFuzzer is
# not available (ctest reports the test as skipped), anything else a
# build failure or a fuzzer finding.
set -u

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
SKIP=77
smoke=false
if [ "${1:-}" = "--smoke" ]; then
	smoke=true
	shift
fi
dir=${1:-$ROOT/build/fuzz}
case $dir in
/*) ;;
*) dir=$ROOT/$dir ;;
esac
CLANG=${IMPETUS_FUZZ_CC:-clang}

if ! command -v "$CLANG" >/dev/null 2>&1; then
	echo "fuzz: $CLANG not found; skipping"
	exit $SKIP
fi
# clang without the libFuzzer runtime (some distributions split it out).
probe=$(mktemp -d)
trap 'rm -rf "$probe"' EXIT
printf '#include <stddef.h>\n#include <stdint.h>\nint LLVMFuzzerTestOneInput(const uint8_t *d, size_t n);\nint LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) { (void)d; (void)n; return 0; }\n' \
	>"$probe/p.c"
if ! "$CLANG" -fsanitize=fuzzer,address,undefined "$probe/p.c" -o "$probe/p" >/dev/null 2>&1; then
	echo "fuzz: $CLANG cannot link -fsanitize=fuzzer,address,undefined; skipping"
	exit $SKIP
fi

echo "fuzz: building in $dir"
cmake -S "$ROOT" -B "$dir" -DCMAKE_C_COMPILER="$CLANG" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	-DIMPETUS_FUZZ=ON >"$probe/configure.log" 2>&1 || {
	cat "$probe/configure.log"
	exit 1
}
cmake --build "$dir" --target fuzz_all -j "${IMPETUS_JOBS:-2}" || exit 1
$smoke || exit 0

# Scratch directories of targets that need files (fuzz_spool_replay): on
# tmpfs when there is one, and removed with the rest even after a crash.
shm=$(mktemp -d /dev/shm/impetus-fuzz-smoke.XXXXXX 2>/dev/null || mktemp -d)
trap 'rm -rf "$probe" "$shm"' EXIT
export IMPETUS_FUZZ_TMPDIR=$shm
runs=${SMOKE_RUNS:-5000}
secs=${SMOKE_SECONDS:-10}
status=0
for exe in "$dir"/tests/fuzz/fuzz_*; do
	[ -x "$exe" ] || continue
	name=$(basename "$exe")
	seeds=()
	[ -d "$ROOT/tests/fuzz/corpus/$name" ] && seeds+=("$ROOT/tests/fuzz/corpus/$name")
	[ "$name" = fuzz_config ] && seeds+=("$ROOT/tests/unit/config")
	work=$(mktemp -d "$probe/$name.XXXX")
	mkdir "$work/corpus" "$work/art"
	echo "fuzz: $name -runs=$runs -max_total_time=$secs"
	# -seed fixed: the smoke run is the same every time (a finding reproduces).
	if ! "$exe" -runs="$runs" -max_total_time="$secs" -seed=1 -max_len=4096 \
		-rss_limit_mb=1024 -timeout=10 -artifact_prefix="$work/art/" \
		"$work/corpus" "${seeds[@]}" >"$work/log" 2>&1; then
		echo "fuzz: $name FAILED; its log:"
		tail -60 "$work/log"
		cp "$work"/art/* "$dir" 2>/dev/null && echo "fuzz: reproducer copied to $dir"
		status=1
	else
		grep -E "^#[0-9]+[[:space:]]+DONE" "$work/log" | tail -1
	fi
done
exit $status
