#!/bin/sh
# Before hap-monitor's files are unpacked (dpkg preinst: install|upgrade;
# rpm %pre: 1 on install, 2 on upgrade): the hap-monitor system user and
# group, the user in group haproxy when HAProxy's package made it, so that
# it may connect to HAProxy's stats sockets.
set -e

nologin=/usr/sbin/nologin
[ -x "$nologin" ] || nologin=/sbin/nologin

if ! getent group hap-monitor >/dev/null; then
	groupadd --system hap-monitor
fi
if ! getent passwd hap-monitor >/dev/null; then
	useradd --system --gid hap-monitor --no-create-home \
		--home-dir /var/lib/hap-monitor --shell "$nologin" \
		--comment "hap-monitor, HAProxy statistics" hap-monitor
fi
if getent group haproxy >/dev/null && ! id -nG hap-monitor | tr ' ' '\n' | grep -qx haproxy; then
	usermod -a -G haproxy hap-monitor
fi
exit 0
