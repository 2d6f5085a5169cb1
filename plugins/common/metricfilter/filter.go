// Package metricfilter selects and trims metrics with the options Telegraf
// gives every plugin: namepass, namedrop, tagpass, tagdrop, fieldinclude,
// fieldexclude, taginclude and tagexclude, with Telegraf's semantics
// (glob patterns, the same order and the same precedence).
package metricfilter

import (
	"fmt"
	"sort"

	"github.com/influxdata/telegraf"
	"github.com/influxdata/telegraf/filter"
)

// Options are the filter options of one plugin section, as written.
type Options struct {
	NamePass          []string `toml:"namepass"`
	NamePassSeparator string   `toml:"namepass_separator"`
	NameDrop          []string `toml:"namedrop"`
	NameDropSeparator string   `toml:"namedrop_separator"`

	FieldInclude []string `toml:"fieldinclude"`
	FieldExclude []string `toml:"fieldexclude"`
	// FieldPass and FieldDrop are Telegraf's older names of FieldInclude
	// and FieldExclude; their patterns are added to those.
	FieldPass []string `toml:"fieldpass"`
	FieldDrop []string `toml:"fielddrop"`

	// TagPass and TagDrop map a tag key to patterns of its value.
	TagPass map[string][]string `toml:"tagpass"`
	TagDrop map[string][]string `toml:"tagdrop"`

	TagInclude []string `toml:"taginclude"`
	TagExclude []string `toml:"tagexclude"`
}

// Fields returns the field patterns to keep and to drop, the older names
// included.
func (o *Options) Fields() (include, exclude []string) {
	include = append(append(include, o.FieldPass...), o.FieldInclude...)
	exclude = append(append(exclude, o.FieldDrop...), o.FieldExclude...)
	return include, exclude
}

// Filter applies Options to metrics. A nil *Filter passes everything and
// changes nothing.
type Filter struct {
	namePass, nameDrop filter.Filter
	tagPass, tagDrop   []tagFilter

	fields     bool // fieldinclude or fieldexclude is set
	fieldPass  filter.Filter
	fieldDrop  filter.Filter
	tags       bool // taginclude or tagexclude is set
	tagKeep    filter.Filter
	tagRemove  filter.Filter
	selectsAny bool
}

type tagFilter struct {
	key    string
	values filter.Filter
}

// New compiles o. It returns nil, nil when o sets nothing, and an error
// naming the option when a pattern does not compile. With fields false,
// fieldinclude and fieldexclude are left out: the caller applies them
// some other way (an input that skips fields while it parses).
func New(o Options, fields bool) (*Filter, error) {
	f := &Filter{}
	var err error
	if f.namePass, err = compile("namepass", o.NamePass, o.NamePassSeparator); err != nil {
		return nil, err
	}
	if f.nameDrop, err = compile("namedrop", o.NameDrop, o.NameDropSeparator); err != nil {
		return nil, err
	}
	if f.tagPass, err = compileTags("tagpass", o.TagPass); err != nil {
		return nil, err
	}
	if f.tagDrop, err = compileTags("tagdrop", o.TagDrop); err != nil {
		return nil, err
	}
	f.selectsAny = f.namePass != nil || f.nameDrop != nil || o.TagPass != nil || o.TagDrop != nil

	if fields {
		include, exclude := o.Fields()
		if f.fieldPass, err = compile("fieldinclude", include, ""); err != nil {
			return nil, err
		}
		if f.fieldDrop, err = compile("fieldexclude", exclude, ""); err != nil {
			return nil, err
		}
		f.fields = f.fieldPass != nil || f.fieldDrop != nil
	}
	if f.tagKeep, err = compile("taginclude", o.TagInclude, ""); err != nil {
		return nil, err
	}
	if f.tagRemove, err = compile("tagexclude", o.TagExclude, ""); err != nil {
		return nil, err
	}
	f.tags = f.tagKeep != nil || f.tagRemove != nil

	if !f.selectsAny && !f.fields && !f.tags {
		return nil, nil
	}
	return f, nil
}

func compile(option string, patterns []string, separators string) (filter.Filter, error) {
	f, err := filter.Compile(patterns, []rune(separators)...)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", option, err)
	}
	return f, nil
}

// compileTags compiles a tagpass or tagdrop table. A table that is present
// but empty stays non-nil, as in Telegraf: an empty tagpass passes nothing.
func compileTags(option string, table map[string][]string) ([]tagFilter, error) {
	if table == nil {
		return nil, nil
	}
	keys := make([]string, 0, len(table))
	for k := range table {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make([]tagFilter, 0, len(keys))
	for _, k := range keys {
		values, err := filter.Compile(table[k])
		if err != nil {
			return nil, fmt.Errorf("%s.%s: %w", option, k, err)
		}
		if values != nil {
			out = append(out, tagFilter{key: k, values: values})
		}
	}
	return out, nil
}

// Select reports whether m passes namepass, namedrop, tagpass and tagdrop.
// It does not change m.
func (f *Filter) Select(m telegraf.Metric) bool {
	if f == nil || !f.selectsAny {
		return true
	}
	name := m.Name()
	if f.namePass != nil && !f.namePass.Match(name) {
		return false
	}
	if f.nameDrop != nil && f.nameDrop.Match(name) {
		return false
	}
	if f.tagPass != nil && !anyTagMatches(f.tagPass, m) {
		return false
	}
	if f.tagDrop != nil && anyTagMatches(f.tagDrop, m) {
		return false
	}
	return true
}

// anyTagMatches reports whether one of m's tags has a value one of the
// filters accepts for its key.
func anyTagMatches(filters []tagFilter, m telegraf.Metric) bool {
	for _, tf := range filters {
		if v, ok := m.GetTag(tf.key); ok && tf.values.Match(v) {
			return true
		}
	}
	return false
}

// Modify removes the fields and tags that fieldinclude, fieldexclude,
// taginclude and tagexclude leave out. A metric may be left without
// fields; Telegraf then drops it, and so should the caller.
func (f *Filter) Modify(m telegraf.Metric) {
	if f == nil {
		return
	}
	if f.fields {
		var drop []string
		for _, field := range m.FieldList() {
			if !passes(f.fieldPass, f.fieldDrop, field.Key) {
				drop = append(drop, field.Key)
			}
		}
		for _, k := range drop {
			m.RemoveField(k)
		}
	}
	if f.tags {
		for _, k := range f.tagsLeftOut(m) {
			m.RemoveTag(k)
		}
	}
}

// tagsLeftOut returns the keys of m's tags that taginclude and tagexclude
// leave out.
func (f *Filter) tagsLeftOut(m telegraf.Metric) []string {
	var out []string
	for _, tag := range m.TagList() {
		if !passes(f.tagKeep, f.tagRemove, tag.Key) {
			out = append(out, tag.Key)
		}
	}
	return out
}

// Modifies reports whether Modify may change a metric.
func (f *Filter) Modifies() bool { return f != nil && (f.fields || f.tags) }

func passes(keep, remove filter.Filter, key string) bool {
	if keep != nil && !keep.Match(key) {
		return false
	}
	return remove == nil || !remove.Match(key)
}
