#!/bin/sh
# The browser test drives Debian's chromium headless (through playwright, not its own browser
# download); install it when it is missing (idempotent). Never fails the build: without chromium
# (no apt, no root) that test says why it is skipped.
command -v chromium >/dev/null 2>&1 && exit 0
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null 2>&1 \
        || { DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null 2>&1 \
             && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null 2>&1; } \
        || echo "ensure-chromium: could not install chromium; the browser test will be skipped" >&2
else
    echo "ensure-chromium: chromium is missing and cannot be installed here (needs root and apt-get)" >&2
fi
exit 0
