#!/bin/bash
# build.sh - configure and build impetus in one build directory
#
#   scripts/build.sh [BUILD_DIR [BUILD_TYPE [CMAKE_ARGS...]]]
#
# BUILD_DIR defaults to build/ under the repository root (a relative path is
# taken from the repository root too), BUILD_TYPE to Release. Extra
# arguments go to the configure step, e.g. -DIMPETUS_SANITIZE=ON.
# test.sh and run.sh source this file and call impetus_build; run on its
# own it builds once and exits with cmake's status.
#
# Two cores is the budget we design for, so the build uses -j2 unless
# IMPETUS_JOBS says otherwise.
set -eu

IMPETUS_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# impetus_build - configure (if needed) and build DIR as TYPE
impetus_build() {
	local dir=${1:-build} type=${2:-Release}
	shift $(($# < 2 ? $# : 2))
	case $dir in
	/*) ;;
	*) dir=$IMPETUS_ROOT/$dir ;;
	esac
	echo "build: $dir ($type${*:+, $*})"
	# && and not set -e: callers run this inside "||" where -e is off.
	cmake -S "$IMPETUS_ROOT" -B "$dir" -DCMAKE_BUILD_TYPE="$type" "$@" &&
		cmake --build "$dir" -j "${IMPETUS_JOBS:-2}"
}

if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
	impetus_build "$@"
fi
