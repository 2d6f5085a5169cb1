// Package haproxy is the [[inputs.haproxy]] plugin: it reads HAProxy's
// statistics from stats sockets and stats pages.
package haproxy
