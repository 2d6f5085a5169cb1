package graphite_statsd

import (
	"strings"

	"github.com/influxdata/telegraf"
	"github.com/influxdata/telegraf/plugins/serializers/graphite"
)

// bucketName returns what graphite.SerializeBucketName returns for the
// metric's name and tags, byte for byte, from its tag list instead of a
// map of it: the template's parts in order ("measurement", "tags", "field"
// as placeholders, any other part the value of that tag, each tag used
// once, dots in values as "_"), then the first part reading "TAGS" replaced
// by the remaining tags' values in key order. A tag list that is not
// sorted by unique keys goes to Telegraf's function.
func (s *serializer) bucketName(name string, tags []*telegraf.Tag, template string) string {
	if !sortedUnique(tags) || len(tags) > 64 {
		return graphite.SerializeBucketName(name, tagMap(tags), template, s.prefix)
	}
	parts := s.templateParts(template)
	var used uint64
	out := s.parts[:0]
	for _, p := range parts {
		switch p {
		case "measurement":
			out = append(out, name)
		case "tags":
			out = append(out, "TAGS")
		case "field":
			out = append(out, "FIELDNAME")
		default:
			for i, t := range tags {
				if t.Key == p && used&(1<<i) == 0 {
					out = append(out, strings.ReplaceAll(t.Value, ".", "_"))
					used |= 1 << i
					break
				}
			}
		}
	}
	s.parts = out
	if len(out) == 0 {
		return ""
	}
	b := s.bucket[:0]
	if s.prefix != "" {
		b = append(b, s.prefix...)
		b = append(b, '.')
	}
	replaced := false
	for i, p := range out {
		if i > 0 {
			b = append(b, '.')
		}
		if p == "TAGS" && !replaced {
			replaced = true
			b = appendRemainingTags(b, tags, used)
			continue
		}
		b = append(b, p...)
	}
	s.bucket = b
	return string(b)
}

// appendRemainingTags appends the values of the tags not used, in key
// order, dots as "_", joined by ".".
func appendRemainingTags(b []byte, tags []*telegraf.Tag, used uint64) []byte {
	first := true
	for i, t := range tags {
		if used&(1<<i) != 0 {
			continue
		}
		if !first {
			b = append(b, '.')
		}
		first = false
		for j := 0; j < len(t.Value); j++ {
			c := t.Value[j]
			if c == '.' {
				c = '_'
			}
			b = append(b, c)
		}
	}
	return b
}

// templateParts splits a template at its dots, once per template.
func (s *serializer) templateParts(template string) []string {
	if template == "" {
		template = telegrafDefaultTemplate
	}
	if p, ok := s.splitTemplates[template]; ok {
		return p
	}
	p := strings.Split(template, ".")
	s.splitTemplates[template] = p
	return p
}

func sortedUnique(tags []*telegraf.Tag) bool {
	for i := 1; i < len(tags); i++ {
		if tags[i-1].Key >= tags[i].Key {
			return false
		}
	}
	return true
}

func tagMap(tags []*telegraf.Tag) map[string]string {
	m := make(map[string]string, len(tags))
	for _, t := range tags {
		m[t.Key] = t.Value
	}
	return m
}
