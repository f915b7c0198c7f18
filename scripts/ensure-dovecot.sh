#!/bin/sh
# The IMAP tests run against a real dovecot; install Debian's when it is missing (idempotent).
# Never fails the build: without dovecot (no apt, no root) those tests say why they are skipped.
command -v dovecot >/dev/null 2>&1 && exit 0
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q dovecot-imapd >/dev/null 2>&1 \
        || { DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null 2>&1 \
             && DEBIAN_FRONTEND=noninteractive apt-get install -y -q dovecot-imapd >/dev/null 2>&1; } \
        || echo "ensure-dovecot: could not install dovecot-imapd; the IMAP tests will be skipped" >&2
else
    echo "ensure-dovecot: dovecot is missing and cannot be installed here (needs root and apt-get)" >&2
fi
exit 0
