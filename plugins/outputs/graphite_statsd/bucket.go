package graphite_statsd

import (
	"strings"

	"github.com/influxdata/telegraf"
	"github.com/influxdata/telegraf/plugins/serializers/graphite"
)

// bucketName returns what graphite.SerializeBucketName returns for the
// metric's name and tags, byte for byte: see appendBucket.
func (s *serializer) bucketName(name string, tags []*telegraf.Tag, template string) string {
	return string(s.appendBucket(nil, name, tags, template))
}

// bucketPart is one part of a bucket name: a name, a placeholder, or a
// tag's value whose dots become "_".
type bucketPart struct {
	s    string
	dots bool // a tag value: dots become "_"
}

// appendBucket appends what graphite.SerializeBucketName returns for the
// metric's name and tags, byte for byte, from its tag list instead of a
// map of it: the template's parts in order ("measurement", "tags", "field"
// as placeholders, any other part the value of that tag, each tag used
// once, dots in values as "_"), then the first part reading "TAGS" replaced
// by the remaining tags' values in key order. A tag list that is not
// sorted by unique keys goes to Telegraf's function.
func (s *serializer) appendBucket(b []byte, name string, tags []*telegraf.Tag, template string) []byte {
	if !sortedUnique(tags) || len(tags) > 64 {
		return append(b, graphite.SerializeBucketName(name, tagMap(tags), template, s.prefix)...)
	}
	parts := s.templateParts(template)
	var used uint64
	out := s.parts[:0]
	for _, p := range parts {
		switch p {
		case "measurement":
			out = append(out, bucketPart{s: name})
		case "tags":
			out = append(out, bucketPart{s: "TAGS"})
		case "field":
			out = append(out, bucketPart{s: "FIELDNAME"})
		default:
			for i, t := range tags {
				if t.Key == p && used&(1<<i) == 0 {
					out = append(out, bucketPart{s: t.Value, dots: true})
					used |= 1 << i
					break
				}
			}
		}
	}
	s.parts = out
	if len(out) == 0 {
		return b
	}
	if s.prefix != "" {
		b = append(b, s.prefix...)
		b = append(b, '.')
	}
	replaced := false
	for i, p := range out {
		if i > 0 {
			b = append(b, '.')
		}
		if p.s == "TAGS" && !replaced {
			replaced = true
			b = appendRemainingTags(b, tags, used)
			continue
		}
		if p.dots {
			b = appendDotless(b, p.s)
		} else {
			b = append(b, p.s...)
		}
	}
	return b
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
		b = appendDotless(b, t.Value)
	}
	return b
}

// appendDotless appends v with its dots as "_".
func appendDotless(b []byte, v string) []byte {
	start := len(b)
	b = append(b, v...)
	for i := start; i < len(b); i++ {
		if b[i] == '.' {
			b[i] = '_'
		}
	}
	return b
}

// templateParts splits a template at its dots, once per template.
func (s *serializer) templateParts(template string) []string {
	if template == "" {
		template = telegrafDefaultTemplate
	}
	if template == s.lastTemplate && s.lastParts != nil {
		return s.lastParts
	}
	p, ok := s.splitTemplates[template]
	if !ok {
		p = strings.Split(template, ".")
		s.splitTemplates[template] = p
	}
	s.lastTemplate, s.lastParts = template, p
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
