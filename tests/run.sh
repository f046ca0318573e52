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
    # apache2 and nginx would start on port 80 when installed (and the
    # second fail on it): forbid service starts during the install
    # (invoke-rc.d honours policy-rc.d, exit 101 = action forbidden); the
    # tests start both themselves from private configs in namespaces.
    made_policy=
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
        chmod +x /usr/sbin/policy-rc.d
        made_policy=1
        trap 'rm -f /usr/sbin/policy-rc.d' EXIT
    fi
    # the README's Quickstart lists these packages and extras (a unit test,
    # tests/unit/test_readme_install.py, keeps the two in step)
    apt-get install -y -qq iproute2 nftables conntrack tcpdump procps net-tools \
        prometheus prometheus-node-exporter openssl util-linux python3 \
        apache2 nginx apache2-utils podman runc busybox-static chromium fonts-wqy-zenhei \
        librsvg2-bin pipx python3-venv systemd tshark >/dev/null
    if [ -n "$made_policy" ]; then rm -f /usr/sbin/policy-rc.d; trap - EXIT; fi
fi
python3 -m pip install -q -e '.[test,exporter,webauth,tui,plot]'
exec python3 -m pytest "$@" tests src/tcplinger
