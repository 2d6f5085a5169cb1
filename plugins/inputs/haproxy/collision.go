package haproxy

import (
	"fmt"
	"hash/maphash"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/influxdata/telegraf"

	"github.com/hap-monitor/hap-monitor/plugins/common/contract"
)

// Two HAProxy instances on one host report the same Process_num (every
// HAProxy since 2.5 reports 1), and often the same proxy and server names
// (a "stats" listener, say). Their metrics differ only by the server tag,
// which the default Graphite templates leave out: they would write the
// same paths and overwrite each other without a word. So within one
// gather the series each source (a socket, a page, a worker through a
// master) emits are keyed as the default templates key them, and a key
// two sources share is reported once per pair of sources.
//
// Two sockets of one HAProxy process (an admin and a user socket, or a
// master CLI and the current worker's stats socket) are the same data
// read twice: written twice to the same paths with the same values, which
// loses nothing. That pair is logged once, at info level, not warned
// about at every gather.

// seriesKeyTags are the tags that tell series apart in the default
// Graphite templates, beside the measurement (host is the same within a
// gather): the output's, contract.PathTags.
var seriesKeyTags = contract.PathTags()

// maxSeriesKeyTags bounds seriesKeyTags, so that a key is two arrays and
// no allocation (a test checks the templates stay within it).
const maxSeriesKeyTags = 12

// keyTags is seriesKeyTags within that bound.
var keyTags = seriesKeyTags[:min(len(seriesKeyTags), maxSeriesKeyTags)]

// collisions tracks the series keys of one gather. Safe for concurrent
// use by the gather's goroutines.
type collisions struct {
	seed maphash.Seed

	mu      sync.Mutex
	owner   map[uint64]int32 // series key -> the first source that emitted it
	sources []*seriesSource
	pairs   map[[2]int32]*collision
}

// seriesSource is one place metrics of a gather come from.
type seriesSource struct {
	c    *collisions
	idx  int32
	name string
	// pid and uptime tell which HAProxy process it is; pid 0 when not
	// known (a stats page, an answer without show info).
	pid, uptime int64
}

// collision is what two sources share.
type collision struct {
	n       int
	example string
}

func newCollisions() *collisions {
	return &collisions{
		seed:  maphash.MakeSeed(),
		owner: make(map[uint64]int32),
		pairs: make(map[[2]int32]*collision),
	}
}

// source adds a source. pid is 0 when not known yet (see setProcess).
func (c *collisions) source(name string, pid, uptime int64) *seriesSource {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := &seriesSource{c: c, idx: int32(len(c.sources)), name: name, pid: pid, uptime: uptime} //nolint:gosec // a gather has far fewer than 2^31 sources
	c.sources = append(c.sources, s)
	return s
}

// setProcess records which HAProxy process the source turned out to be.
func (s *seriesSource) setProcess(pid, uptime int64) {
	s.c.mu.Lock()
	s.pid, s.uptime = pid, uptime
	s.c.mu.Unlock()
}

// wrap returns an accumulator that records the series keys of the metrics
// it passes on to acc.
func (s *seriesSource) wrap(acc telegraf.Accumulator) telegraf.Accumulator {
	return &trackingAccumulator{Accumulator: acc, src: s}
}

// seriesKey holds the values of seriesKeyTags of one metric.
type seriesKey struct {
	name string
	vals [maxSeriesKeyTags]string
	has  [maxSeriesKeyTags]bool
}

func (k *seriesKey) set(key, value string) {
	if i := seriesKeyIndex(key); i >= 0 {
		k.vals[i], k.has[i] = value, true
	}
}

// keySlots finds a tag among seriesKeyTags by its length and first
// letter, which tell them apart, in a few nanoseconds for each tag of
// every metric: slot i+1 holds seriesKeyTags[i], 0 none, -1 several (then
// they are searched in turn).
var keySlots = func() (slots [32][26]int8) {
	for i, t := range keyTags {
		if l, c := len(t), t[0]; l < 32 && c >= 'a' && c <= 'z' {
			if slots[l][c-'a'] == 0 {
				slots[l][c-'a'] = int8(i + 1) //nolint:gosec // at most maxSeriesKeyTags
			} else {
				slots[l][c-'a'] = -1
			}
		}
	}
	return slots
}()

// seriesKeyIndex returns key's index in seriesKeyTags, or -1.
func seriesKeyIndex(key string) int {
	if len(key) == 0 || len(key) >= 32 || key[0] < 'a' || key[0] > 'z' {
		return -1
	}
	switch slot := keySlots[len(key)][key[0]-'a']; {
	case slot > 0:
		if keyTags[slot-1] == key {
			return int(slot - 1)
		}
	case slot < 0:
		for i, t := range keyTags {
			if t == key {
				return i
			}
		}
	}
	return -1
}

// String writes the key for a message: "haproxy process_num=1 proxy=stats
// sv=FRONTEND".
func (k *seriesKey) String() string {
	var b strings.Builder
	b.WriteString(k.name)
	for i, t := range seriesKeyTags {
		if k.has[i] {
			fmt.Fprintf(&b, " %s=%s", t, k.vals[i])
		}
	}
	return b.String()
}

// track records one metric's series key.
func (s *seriesSource) track(k *seriesKey) {
	var h maphash.Hash
	h.SetSeed(s.c.seed)
	h.WriteString(k.name)
	for i := range keyTags {
		h.WriteByte(0)
		if k.has[i] {
			h.WriteByte(1)
			h.WriteString(k.vals[i])
		}
	}
	key := h.Sum64()
	c := s.c
	c.mu.Lock()
	defer c.mu.Unlock()
	first, ok := c.owner[key]
	if !ok {
		c.owner[key] = s.idx
		return
	}
	if first == s.idx {
		return
	}
	pair := [2]int32{min(first, s.idx), max(first, s.idx)}
	col := c.pairs[pair]
	if col == nil {
		col = &collision{example: k.String()}
		c.pairs[pair] = col
	}
	col.n++
}

// report logs each pair of sources that shared series: a warning at
// every gather for two processes (or when it cannot tell), once per
// plugin for two sockets of the same process.
func (c *collisions) report(h *HAProxy) {
	if c == nil || len(c.pairs) == 0 {
		return
	}
	pairs := make([][2]int32, 0, len(c.pairs))
	for p := range c.pairs {
		pairs = append(pairs, p)
	}
	slices.SortFunc(pairs, func(a, b [2]int32) int {
		if a[0] != b[0] {
			return int(a[0] - b[0])
		}
		return int(a[1] - b[1])
	})
	for _, p := range pairs {
		a, b, col := c.sources[p[0]], c.sources[p[1]], c.pairs[p]
		switch {
		case a.pid != 0 && a.pid == b.pid && abs64(a.uptime-b.uptime) <= 2:
			if !h.once("same process: " + a.name + "\x00" + b.name) {
				continue
			}
			h.Log.Infof("%s and %s are the same HAProxy process (pid %d): its %d series are gathered twice and written twice to the same Graphite paths; list only one of them in servers",
				a.name, b.name, a.pid, col.n)
		case a.pid != 0 && b.pid != 0:
			h.Log.Warnf("%s and %s are two HAProxy processes (pids %d and %d) with %d series in common (%s): with the default Graphite template they write the same paths and overwrite each other. %s",
				a.name, b.name, a.pid, b.pid, col.n, col.example, collisionFix)
		default:
			h.Log.Warnf("%s and %s report %d series in common (%s): with the default Graphite template they write the same paths. If they are one HAProxy, list it once; if they are two, they overwrite each other: %s",
				a.name, b.name, col.n, col.example, collisionFix)
		}
	}
}

// collisionFix is what the warning tells to do.
const collisionFix = `Give each HAProxy its own [[inputs.haproxy]] section with a tag telling them apart ([inputs.haproxy.tags] instance = "a") and put that tag in the output's templates ("haproxy host.instance.process_num.worker.proxy.pxname.sv.svname.field", and the same for haproxy_info, haproxy_table and haproxy_master)`

func abs64(x int64) int64 {
	if x < 0 {
		return -x
	}
	return x
}

// trackingAccumulator records each metric's series key, then passes it on.
type trackingAccumulator struct {
	telegraf.Accumulator
	src *seriesSource
}

func (a *trackingAccumulator) AddMetric(m telegraf.Metric) {
	k := seriesKey{name: m.Name()}
	for _, t := range m.TagList() {
		k.set(t.Key, t.Value)
	}
	a.src.track(&k)
	a.Accumulator.AddMetric(m)
}

func (a *trackingAccumulator) trackMap(name string, tags map[string]string) {
	k := seriesKey{name: name}
	for key, v := range tags {
		k.set(key, v)
	}
	a.src.track(&k)
}

func (a *trackingAccumulator) AddFields(name string, fields map[string]any, tags map[string]string, t ...time.Time) {
	a.trackMap(name, tags)
	a.Accumulator.AddFields(name, fields, tags, t...)
}

func (a *trackingAccumulator) AddGauge(name string, fields map[string]any, tags map[string]string, t ...time.Time) {
	a.trackMap(name, tags)
	a.Accumulator.AddGauge(name, fields, tags, t...)
}

func (a *trackingAccumulator) AddCounter(name string, fields map[string]any, tags map[string]string, t ...time.Time) {
	a.trackMap(name, tags)
	a.Accumulator.AddCounter(name, fields, tags, t...)
}

func (a *trackingAccumulator) AddSummary(name string, fields map[string]any, tags map[string]string, t ...time.Time) {
	a.trackMap(name, tags)
	a.Accumulator.AddSummary(name, fields, tags, t...)
}

func (a *trackingAccumulator) AddHistogram(name string, fields map[string]any, tags map[string]string, t ...time.Time) {
	a.trackMap(name, tags)
	a.Accumulator.AddHistogram(name, fields, tags, t...)
}

// process returns show info's Pid and Uptime_sec, 0 when absent.
func (ans *infoAnswer) process() (pid, uptime int64) {
	for _, f := range ans.Fields {
		switch f.Name {
		case "Pid":
			pid = f.Value
		case "Uptime_sec":
			uptime = f.Value
		}
	}
	return pid, uptime
}
