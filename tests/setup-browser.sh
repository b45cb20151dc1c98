#!/usr/bin/env bash
# Installs Debian's Chromium for the browser tests when it is missing (CI runs as root on Debian).
# Never downloads a browser build of Playwright's own.
set -euo pipefail
if [ -x /usr/bin/chromium ]; then exit 0; fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
else
  echo "setup-browser: /usr/bin/chromium missing and cannot apt-get install it; browser tests will be skipped" >&2
fi
