#!/bin/sh
# install-deps.sh - install everything impetus needs to build, test and benchmark
#
# Idempotent: packages already present are left alone, and nothing runs
# apt-get when all of them are installed. Debian 12 packages only; nothing
# is downloaded from anywhere else. Run as root (or via sudo). On another
# system it stops with a message; set IMPETUS_SKIP_DEPS=1 to skip it when
# you have installed the equivalents yourself. clang with its libFuzzer
# runtime builds the fuzz targets (ctest fuzz.smoke, docs/fuzzing.md).
# dkimpy (python3-dkim, with python3-nacl for Ed25519) verifies the DKIM
# signatures in tests/integration/test_dkim_sign.py; OpenDKIM (opendkim,
# its test mode) is the second verifier and the benchmark's milter.
# aiosmtpd (python3-aiosmtpd) is the AUTH-requiring receiver of
# tests/integration/test_delivery_auth.py; Sisimai (libsisimai-perl)
# reads the bounces of tests/integration/test_utf8_dsn.py. swaks drives
# tests/integration/test_smtp_auth.py; libcrypt-dev checks its passwords.
# libedit-dev gives the console's interactive shell (impetus) its line
# editing, history and completion. python3-yaml reads docs/openapi.yaml in
# tests/integration/test_http_admin.py; curl is one of its HTTP clients.
# prometheus gives promtool, which checks GET /metrics in
# tests/integration/test_http_metrics.py. chromium (headless) renders the
# status page in tests/integration/test_http_status.py.
set -eu

PKGS="build-essential cmake pkg-config
libevent-dev libc-ares-dev libssl-dev libpcre2-dev libjansson-dev libcrypt-dev
libedit-dev
python3 openssl postfix dnsmasq-base chromium
python3-dkim python3-nacl opendkim
python3-aiosmtpd libsisimai-perl swaks
python3-yaml curl prometheus
clang libclang-rt-14-dev"

if [ "${IMPETUS_SKIP_DEPS:-0}" = 1 ]; then
	echo "install-deps: skipped (IMPETUS_SKIP_DEPS=1)"
	exit 0
fi

# shellcheck disable=SC1091
if [ -r /etc/os-release ]; then . /etc/os-release; fi
if [ "${ID:-}" != debian ] || [ "${VERSION_ID:-}" != 12 ]; then
	# Made for Debian 12; elsewhere try apt-get anyway when there is one.
	echo "install-deps: warning: made for Debian 12, this is ${PRETTY_NAME:-unknown}" >&2
	if ! command -v apt-get >/dev/null 2>&1; then
		# shellcheck disable=SC2086 # one line, package names split on purpose
		echo "install-deps: no apt-get; install the equivalents of:" $PKGS >&2
		echo "install-deps: then run again with IMPETUS_SKIP_DEPS=1" >&2
		exit 1
	fi
fi

missing=""
for p in $PKGS; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed"; then
		missing="$missing $p"
	fi
done

if [ -n "$missing" ]; then
	SUDO=""
	[ "$(id -u)" -eq 0 ] || SUDO="sudo"
	echo "install-deps: installing:$missing"
	# Postfix asks questions at install time; answer "No configuration":
	# the benchmark runs its own private instance and needs no system one.
	echo "postfix postfix/main_mailer_type select No configuration" | $SUDO debconf-set-selections
	$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
	# $missing is a list of package names: split on purpose.
	# shellcheck disable=SC2086
	$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing
fi
