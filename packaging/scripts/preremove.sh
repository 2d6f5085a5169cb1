#!/bin/sh
# Before hap-monitor's files are removed (dpkg prerm: remove|upgrade|...;
# rpm %preun: 0 on erase, 1 on upgrade): on removal, stop and disable the
# service.
set -e

case "$1" in
remove | 0) ;;
*) exit 0 ;;
esac
command -v systemctl >/dev/null 2>&1 || exit 0
if [ -d /run/systemd/system ]; then
	systemctl stop hap-monitor.service >/dev/null 2>&1 || true
fi
systemctl disable hap-monitor.service >/dev/null 2>&1 || true
exit 0
