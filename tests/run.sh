#!/usr/bin/env bash
# The whole test suite on a fresh Debian machine, as root: installs the
# Debian packages and Python packages the tests need, then runs every test
# (unit, integration, privileged). This is the README's test command and
# what .ci/run runs.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # the README's Quickstart lists these packages and extras (a unit test,
    # tests/unit/test_readme_install.py, keeps the two in step)
    apt-get install -y -qq iproute2 nftables conntrack tcpdump procps net-tools \
        prometheus prometheus-node-exporter openssl util-linux python3 >/dev/null
fi
python3 -m pip install -q -e '.[test,exporter,webauth,tui]'
exec python3 -m pytest "$@" tests src/tcplinger
