#!/bin/bash
# run.sh - install dependencies, build (Release) and run impetusd
#
# impetusd runs in the foreground on its embedded default configuration
# (etc/impetus.conf): ESMTP on 127.0.0.1:2525, spool and logs under ./var
# (here: var/ in the repository root). Ctrl-C or SIGTERM stops it.
# Arguments are passed to impetusd (e.g. -c FILE).
set -eu

cd "$(dirname "${BASH_SOURCE[0]}")/.."
. scripts/build.sh

./scripts/install-deps.sh
impetus_build build Release
mkdir -p var
echo "run: build/impetusd $*"
exec build/impetusd "$@"
