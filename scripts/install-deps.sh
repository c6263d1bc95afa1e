#!/bin/sh
# install-deps.sh - install everything impetus needs to build, test and benchmark
#
# Idempotent: packages already present are left alone. Debian 12 packages
# only; nothing is downloaded from anywhere else. Run as root (or via sudo).
set -eu

PKGS="build-essential cmake pkg-config
libevent-dev libc-ares-dev libssl-dev libpcre2-dev libjansson-dev
python3 openssl postfix dnsmasq-base"

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
	# Postfix asks questions at install time; answer "No configuration".
	echo "postfix postfix/main_mailer_type select No configuration" | $SUDO debconf-set-selections
	$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
	$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing
fi
