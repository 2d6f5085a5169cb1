#!/bin/sh
# After hap-monitor's files are unpacked (dpkg postinst: configure
# [OLD-VERSION]; rpm %post: 1 on install, 2 on upgrade).
#
# The spool directory belongs to the hap-monitor user. On a first install
# the .deb enables and starts the service, as Debian's packages do (it is
# skipped, with a line in the journal, until the output is configured); the
# .rpm leaves that to the system's presets, as RHEL's do. An upgrade
# restarts a running service.
set -e

case "$1" in
configure) if [ -z "$2" ]; then first=deb; else first=; fi ;;
1) first=rpm ;;
[0-9]*) first= ;;
*) exit 0 ;; # abort-upgrade, abort-remove...
esac

install -d -m 0750 -o hap-monitor -g hap-monitor /var/lib/hap-monitor

command -v systemctl >/dev/null 2>&1 || exit 0
running=false
[ -d /run/systemd/system ] && running=true
$running && systemctl daemon-reload >/dev/null 2>&1 || true
case "$first" in
deb)
	systemctl enable hap-monitor.service >/dev/null 2>&1 || true
	if $running; then systemctl start hap-monitor.service || true; fi
	;;
rpm)
	systemctl preset hap-monitor.service >/dev/null 2>&1 || true
	;;
*)
	if $running; then systemctl try-restart hap-monitor.service || true; fi
	;;
esac
exit 0
