package contract

import (
	"slices"
	"strings"
)

// DefaultTemplates give the original HAP-Monitor's Graphite paths; the
// graphite_statsd output writes them unless its templates say otherwise:
// <prefix>.<host>.<process_num>.<proxy>.<server>.<field> for haproxy
// (whatever the input's keep_field_names) and
// <prefix>.<host>.<process_num>.<field> for haproxy_info; the stick
// tables and certificates under <prefix>.<host>.<process_num>.<measurement>
// by name and file. A tag a metric
// lacks adds no level: worker, which only old workers gathered through a
// master CLI carry ("old1", ...), puts their paths beside the current
// worker's (<process_num>.old1.<proxy>...) and leaves the current
// worker's as a stats socket gives them.
var DefaultTemplates = []string{
	"haproxy host.process_num.worker.proxy.pxname.sv.svname.field",
	"haproxy_info host.process_num.worker.field",
	"haproxy_table host.process_num.worker.measurement.table.field",
	"haproxy_cert host.process_num.worker.measurement.file.field",
	"haproxy_ocsp host.process_num.worker.measurement.file.field",
	"haproxy_acme host.process_num.worker.measurement.file.field",
	"haproxy_resolver host.process_num.worker.measurement.resolvers.nameserver.field",
	"haproxy_peer host.process_num.worker.measurement.peers.peer.field",
	"haproxy_master host.measurement.field",
}

// PathTags returns the tag keys that the default templates put in a path,
// but host, in the order they first appear: what tells two series of one
// host apart on Graphite. The haproxy input keys its collision check by
// them.
func PathTags() []string {
	var tags []string
	for _, t := range DefaultTemplates {
		_, words, _ := strings.Cut(t, " ")
		for _, w := range strings.Split(words, ".") {
			switch w {
			case "host", "measurement", "field", "tags":
				continue
			}
			if !slices.Contains(tags, w) {
				tags = append(tags, w)
			}
		}
	}
	return tags
}
