package haproxy

// SelectFields takes Telegraf's fieldinclude and fieldexclude (and their
// older names fieldpass and fielddrop) as more patterns of include_fields
// and exclude_fields: the fields left out are then never parsed, instead
// of being built and removed from every metric.
func (h *HAProxy) SelectFields(include, exclude []string) {
	h.IncludeFields = append(h.IncludeFields, include...)
	h.ExcludeFields = append(h.ExcludeFields, exclude...)
}
