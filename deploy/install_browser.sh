#!/usr/bin/env bash
# Install the headless browser the report's browser test drives: Debian's chromium (the only
# registries reachable are Debian's and PyPI's, so no browser download by playwright).
# Idempotent: does nothing when /usr/bin/chromium is already there. Uses sudo only when not
# running as root.
set -euo pipefail

CHROMIUM=/usr/bin/chromium

if [ -x "$CHROMIUM" ]; then
    echo "chromium already installed: $("$CHROMIUM" --version 2>/dev/null || echo "$CHROMIUM")"
    exit 0
fi

if [ "$(id -u)" -eq 0 ]; then
    as_root=()
elif command -v sudo >/dev/null 2>&1; then
    as_root=(sudo)
else
    echo "install_browser.sh: not root and no sudo; install chromium yourself (apt-get install chromium)" >&2
    exit 1
fi

export DEBIAN_FRONTEND=noninteractive
"${as_root[@]}" apt-get update -q
"${as_root[@]}" apt-get install -y -q --no-install-recommends chromium fonts-liberation

"$CHROMIUM" --version
