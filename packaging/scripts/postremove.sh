#!/bin/sh
# After hap-monitor's files are removed (dpkg postrm:
# remove|purge|upgrade|...; rpm %postun: 0 on erase, 1 on upgrade). A purge
# also removes the spool, and what it still held; the hap-monitor user
# stays, as Debian leaves system users.
set -e

if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
	systemctl daemon-reload >/dev/null 2>&1 || true
fi
if [ "$1" = purge ]; then
	rm -rf /var/lib/hap-monitor
fi
exit 0
