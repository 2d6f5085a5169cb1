// Package buffer holds the metrics an output has accepted and not yet
// delivered, and keeps them across runs in a spool directory.
//
// A Buffer never waits on the network: Add takes metrics whatever the
// output is doing, and what overflows metric_buffer_limit goes to the spool
// (or, without one, is dropped, counted and logged). The output's delivery
// moves metrics through three stretches, oldest first:
//
//	acknowledged | in flight | pending
//
// Take moves pending metrics in flight (written to a connection, fate
// unknown); Acked moves the oldest in flight to acknowledged (the peer's
// TCP stack has them); Confirm releases acknowledged metrics for good;
// Retry puts every acknowledged and in-flight metric back to pending, to be
// sent again, when a connection turns out to have lost them. Close writes
// what is left to the spool.
//
// A metric's states:
//
//	             Add                 Take                Acked                 Confirm
//	(the input) ----> pending -------------> in flight -------> acknowledged -----------> released
//	                  ^  |  ^                   |  |                 |                  (delivered)
//	      LoadSpool   |  |  |      Retry        |  |   Delivered     |
//	   (the next run) |  |  +-------------------+--|-----------------+
//	                  |  |                         +--------------------------------->  released
//	                  |  | past metric_buffer_limit                                     (UDP: sent)
//	                  |  +----> spool file (or dropped, counted)
//	                  +-------- spool file
//
//	Close: pending, in flight and acknowledged -> spool file (or lost, counted)
//
// Flow control (WaitForRoom): with more than a few pending, Add waits for
// room while delivery makes progress (Progress), half a second without
// progress below metric_buffer_limit and up to patience at it; then it
// takes the metrics anyway, and past the limit the oldest pending ones
// overflow to the spool. A server that stops reading never holds the
// input for long.
package buffer

import (
	"fmt"
	"sync"
	"time"

	"github.com/influxdata/telegraf"

	"github.com/hap-monitor/hap-monitor/plugins/common/contract"
)

const (
	// roomPoll is how often an Add waiting for room asks delivery to
	// look at what the peer acknowledged.
	roomPoll = 10 * time.Millisecond
	// briefPatience is how long a pause in delivery's progress is waited
	// out below the limit. A server that keeps up takes data every few
	// milliseconds.
	briefPatience = 500 * time.Millisecond
)

type entry struct {
	m telegraf.Metric
	// spooled marks a metric loaded from a spool file: the file goes once
	// none of its metrics is left.
	spooled bool
}

// Buffer is safe for concurrent use: one goroutine may Add while another
// delivers.
type Buffer struct {
	limit int
	spool *Spool // nil: overflow is dropped
	log   telegraf.Logger

	mu        sync.Mutex
	items     []entry // items[head:] are held, oldest first
	head      int
	acked     int // items[head : head+acked]
	flight    int // items[head+acked : head+acked+flight]
	fromSpool int // held metrics that came from claimed spool files
	loaded    int // metrics loaded from the spool in all
	respooled int // of those, evicted to a new spool file
	returned  int // of those, given back to their files untouched
	// spoolTaken tells that a metric loaded from the spool was taken in
	// flight: the claimed files can no longer be given back as they are.
	spoolTaken bool
	dropped    int // overflow lost (no spool, or the spool failed)
	lost       int // held at Close and not spooled
	ready      chan struct{}

	// While delivery makes progress, Add waits for room once more than
	// waitAbove metrics are pending (the limit: held), rather than hold a
	// whole gather in memory, or spool or drop at the limit: a slow peer
	// that keeps reading loses nothing. patience is how long progress
	// may pause; 0 never waits.
	patience  time.Duration
	waitAbove int
	progress  time.Time // when the peer last took data
	healthy   bool      // no failure since that progress
	room      chan struct{}

	taken []telegraf.Metric // what Take returns, reused
}

// New returns a buffer of at most limit metrics; spool may be nil.
func New(limit int, spool *Spool, log telegraf.Logger) *Buffer {
	return &Buffer{
		limit: limit, spool: spool, log: log,
		ready: make(chan struct{}, 1), room: make(chan struct{}, 1),
		// A new buffer gives delivery patience to show progress.
		progress: time.Now(), healthy: true,
	}
}

// WaitForRoom makes Add wait for room once more than above metrics (at
// most the limit) are pending, or the limit is held, instead of holding more in
// memory, spooling or dropping: below the limit while delivery reports
// Progress at least every half second (or patience, if shorter), at the
// limit while it does at least every patience. A failed delivery is
// never waited for.
func (b *Buffer) WaitForRoom(patience time.Duration, above int) {
	b.mu.Lock()
	b.patience, b.waitAbove = patience, min(above, b.limit)
	b.mu.Unlock()
}

// Progress tells the buffer that the peer took data just now.
func (b *Buffer) Progress() {
	b.mu.Lock()
	b.progress, b.healthy = time.Now(), true
	b.mu.Unlock()
}

// Failed tells the buffer that delivery failed: Add stops waiting for
// room until the next Progress.
func (b *Buffer) Failed() {
	b.mu.Lock()
	b.healthy = false
	b.mu.Unlock()
	b.signalRoom()
}

func (b *Buffer) signalRoom() {
	select {
	case b.room <- struct{}{}:
	default:
	}
}

// waitForRoomLocked waits, b.mu held, while n more metrics do not fit and
// delivery is making progress.
func (b *Buffer) waitForRoomLocked(n int) {
	for {
		held := b.lenLocked() - b.acked // acknowledged ones make room at once
		pending := held - b.flight
		if held == 0 || !b.healthy {
			return
		}
		// Below the limit, waiting only saves memory: a pause in
		// progress ends it soon, and what is in flight does not count
		// (the socket's buffers bound it). At the limit it saves
		// metrics: the whole patience is given.
		var patience time.Duration
		switch {
		case held+n > b.limit:
			patience = b.patience
		case pending+n > b.waitAbove:
			patience = min(b.patience, briefPatience)
		}
		wait := patience - time.Since(b.progress)
		if wait <= 0 {
			return
		}
		b.mu.Unlock()
		// Delivery learns what the peer acknowledged when it runs: ask
		// it to, again and again while waiting.
		b.signalReady()
		t := time.NewTimer(min(wait, roomPoll))
		select {
		case <-b.room:
		case <-t.C:
		}
		t.Stop()
		b.mu.Lock()
	}
}

// Ready receives a value after Add, so a delivery loop can wait for work.
func (b *Buffer) Ready() <-chan struct{} { return b.ready }

// Add appends ms. While delivery is making progress it first waits for
// room (see WaitForRoom). Past the limit it then confirms
// acknowledged metrics (the peer has them), then moves the oldest pending
// metrics to the spool, or drops them when there is no spool; either way
// it logs how many.
func (b *Buffer) Add(ms []telegraf.Metric) {
	if len(ms) == 0 {
		return
	}
	b.mu.Lock()
	b.waitForRoomLocked(len(ms))
	for _, m := range ms {
		b.items = append(b.items, entry{m: m})
	}
	over := b.lenLocked() - b.limit
	var evicted []telegraf.Metric
	if over > 0 {
		n := min(over, b.acked)
		b.confirmLocked(n)
		over -= n
	}
	if over > 0 {
		over -= b.returnBacklogLocked()
	}
	if over > 0 {
		evicted = b.evictLocked(over)
	}
	b.mu.Unlock()
	if len(evicted) > 0 {
		b.overflowed(evicted)
	}
	b.signalReady()
}

func (b *Buffer) signalReady() {
	select {
	case b.ready <- struct{}{}:
	default:
	}
}

// returnBacklogLocked makes room by giving the metrics loaded from the
// spool back to their files, when none of them was ever sent: the files
// still hold them, whole, so nothing is written (writing them again would
// take their room twice under spool_limit until the files are removed).
// It returns how many metrics it let go.
func (b *Buffer) returnBacklogLocked() int {
	if b.spool == nil || b.fromSpool == 0 || b.spoolTaken {
		return 0
	}
	if claimed, intact := b.spool.Claimed(); !intact || claimed != b.fromSpool {
		return 0
	}
	start := b.head + b.acked + b.flight
	kept := b.items[:start]
	for _, e := range b.items[start:] {
		if !e.spooled {
			kept = append(kept, e)
		}
	}
	n := b.fromSpool
	clear(b.items[len(kept):])
	b.items = kept
	b.fromSpool = 0
	b.returned += n
	b.spool.Keep()
	b.log.Debugf("buffer full: the %d metrics loaded from the spool, none of them sent yet, stay in their files", n)
	return n
}

// evictLocked removes the n oldest pending metrics (never one in flight)
// and returns them.
func (b *Buffer) evictLocked(n int) []telegraf.Metric {
	start := b.head + b.acked + b.flight
	n = min(n, len(b.items)-start)
	out := make([]telegraf.Metric, n)
	for i, e := range b.items[start : start+n] {
		out[i] = e.m
		if e.spooled {
			b.fromSpool--
			b.respooled++
		}
	}
	b.items = append(b.items[:start], b.items[start+n:]...)
	return out
}

// overflowed spools or drops the evicted metrics, and says so.
func (b *Buffer) overflowed(ms []telegraf.Metric) {
	defer contract.ReleaseAll(ms)
	if b.spool != nil {
		n, path, drop, err := b.spool.Write(ms)
		b.reportDrop(drop)
		if err == nil {
			b.mu.Lock()
			b.dropped += len(ms) - n
			b.releaseSpoolIfDone() // evicted spool metrics are in the new file
			b.mu.Unlock()
			if n > 0 {
				b.log.Warnf("metric buffer full (metric_buffer_limit = %d): wrote the %d oldest metrics to %s; the next run sends them", b.limit, n, path)
			}
			return
		}
		b.log.Errorf("metric buffer full (metric_buffer_limit = %d): %v; dropped the %d oldest metrics", b.limit, err, len(ms))
	} else {
		b.log.Warnf("metric buffer full (metric_buffer_limit = %d): dropped the %d oldest metrics (set spool_dir to keep them)", b.limit, len(ms))
	}
	b.mu.Lock()
	b.dropped += len(ms)
	b.mu.Unlock()
}

// Take moves up to most pending metrics in flight and returns them, oldest
// first; none when nothing is pending. The slice is the buffer's: valid
// until the next Take.
func (b *Buffer) Take(most int) []telegraf.Metric {
	b.mu.Lock()
	defer b.mu.Unlock()
	start := b.head + b.acked + b.flight
	n := min(most, len(b.items)-start)
	if n <= 0 {
		return nil
	}
	out := b.taken[:0]
	for _, e := range b.items[start : start+n] {
		out = append(out, e.m)
		if e.spooled {
			b.spoolTaken = true
		}
	}
	b.taken = out
	b.flight += n
	b.signalRoom() // fewer are pending
	return out
}

// Acked moves the n oldest metrics in flight to acknowledged.
func (b *Buffer) Acked(n int) {
	b.mu.Lock()
	n = min(n, b.flight)
	b.flight -= n
	b.acked += n
	b.mu.Unlock()
	b.signalRoom()
}

// Confirm releases the n oldest acknowledged metrics: they are delivered.
// A negative n releases them all.
func (b *Buffer) Confirm(n int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if n < 0 || n > b.acked {
		n = b.acked
	}
	b.confirmLocked(n)
}

// Delivered releases the n oldest metrics in flight at once (UDP: what is
// sent is delivered).
func (b *Buffer) Delivered(n int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	n = min(n, b.flight)
	b.flight -= n
	b.acked += n
	b.confirmLocked(n)
}

func (b *Buffer) confirmLocked(n int) {
	if n <= 0 {
		return
	}
	for i := b.head; i < b.head+n; i++ {
		if b.items[i].spooled {
			b.fromSpool--
		}
		contract.Release(b.items[i].m)
		b.items[i] = entry{}
	}
	b.head += n
	b.acked -= n
	b.compactLocked()
	b.releaseSpoolIfDone()
	b.signalRoom()
}

// compactLocked lets go of the released front of the slice once it is
// most of it.
// The slice is reused in place, unless it grew past keepItems (a large
// metric_buffer_limit once full): then it is let go.
func (b *Buffer) compactLocked() {
	switch {
	case b.head == len(b.items) && cap(b.items) > keepItems:
		b.items, b.head = nil, 0
	case b.head == len(b.items):
		b.items, b.head = b.items[:0], 0 // released entries are zero
	case b.head > 1024 && b.head > len(b.items)/2:
		n := copy(b.items, b.items[b.head:])
		clear(b.items[n:])
		b.items, b.head = b.items[:n], 0
	}
}

// keepItems bounds the slice of held metrics kept for reuse once empty.
const keepItems = 1 << 16

func (b *Buffer) releaseSpoolIfDone() {
	if b.fromSpool == 0 && b.spool != nil {
		b.spool.Release()
		b.spoolTaken = false // the files loaded next start untouched
	}
}

// Retry puts every acknowledged and in-flight metric back to pending: the
// connection that carried them failed before the peer confirmed them.
// It returns how many.
func (b *Buffer) Retry() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := b.acked + b.flight
	b.acked, b.flight = 0, 0
	return n
}

// Len is the number of metrics held: acknowledged, in flight and pending.
func (b *Buffer) Len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.lenLocked()
}

func (b *Buffer) lenLocked() int { return len(b.items) - b.head }

// FromSpool is the number of held metrics loaded from the spool.
func (b *Buffer) FromSpool() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.fromSpool
}

// Pending is the number of metrics not yet written anywhere.
func (b *Buffer) Pending() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.lenLocked() - b.acked - b.flight
}

// Dropped is the number of metrics lost to overflow.
func (b *Buffer) Dropped() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.dropped
}

// Undelivered is, after Close, the number of metrics added in this run's
// life that were not delivered: lost to overflow or at Close, or left in
// the spool for the next run. Before Close it is the number held.
func (b *Buffer) Undelivered() int {
	b.mu.Lock()
	n := b.dropped + b.lost + b.lenLocked()
	b.mu.Unlock()
	if b.spool != nil {
		n += b.spool.Mine()
	}
	return n
}

// LoadSpool claims the spool files no other run holds, oldest first, as
// many as fit in the buffer's free room (at least one), and puts their
// metrics behind what is held. It returns how many metrics it loaded.
func (b *Buffer) LoadSpool() (int, error) {
	if b.spool == nil {
		return 0, nil
	}
	b.mu.Lock()
	room := b.limit - b.lenLocked()
	b.mu.Unlock()
	ms, err := b.spool.Claim(room)
	if len(ms) == 0 {
		return 0, err
	}
	b.mu.Lock()
	for _, m := range ms {
		b.items = append(b.items, entry{m: m, spooled: true})
	}
	b.fromSpool += len(ms)
	b.loaded += len(ms)
	b.mu.Unlock()
	return len(ms), err
}

// Close puts anything acknowledged or in flight back to pending (nobody
// confirmed it), writes every held metric to the spool (when there is one)
// and empties the buffer. It returns how many metrics it held and how many
// of them the spool kept.
func (b *Buffer) Close() (held, spooled int, err error) {
	b.mu.Lock()
	b.acked, b.flight = 0, 0
	entries := b.items[b.head:]
	left := countSpooled(entries)
	backlog := ""
	if b.loaded > 0 {
		backlog = fmt.Sprintf("; of the %d metrics loaded from the spool, %d were delivered", b.loaded, b.loaded-left-b.respooled-b.returned)
	}
	ms := make([]telegraf.Metric, 0, len(entries))
	for _, e := range entries {
		ms = append(ms, e.m)
	}
	b.items, b.head, b.fromSpool = nil, 0, 0
	b.mu.Unlock()
	defer contract.ReleaseAll(ms)
	if b.spool == nil {
		b.addLost(len(ms))
		return len(ms), 0, nil
	}
	if len(ms) == 0 {
		b.spool.Release()
		if b.loaded > 0 {
			b.log.Infof("every metric delivered (%s%s)", b.spoolHolds(), backlog)
		}
		return 0, 0, nil
	}
	// Nothing of what was loaded from the spool went out: its files stay
	// as they are, and only what came since is written. (Written again
	// with the rest, the backlog would need twice its room under
	// spool_limit until its files are removed.)
	kept := 0
	if claimed, intact := b.spool.Claimed(); intact && claimed > 0 && countSpooled(entries) == claimed {
		kept = claimed
		ms = ms[:0:0]
		for _, e := range entries {
			if !e.spooled {
				ms = append(ms, e.m)
			}
		}
		b.spool.Keep()
		if len(ms) == 0 {
			b.log.Warnf("nothing delivered; the next run sends the spool first (%s%s)", b.spoolHolds(), backlog)
			return kept, kept, nil
		}
	}
	n, path, drop, err := b.spool.Write(ms)
	b.reportDrop(drop)
	if err != nil {
		// The claimed files still hold their metrics: leave them for the
		// next run.
		b.spool.Unclaim()
		b.addLost(len(ms))
		return len(ms) + kept, kept, err
	}
	b.spool.Release()
	if n < len(ms) {
		b.addLost(len(ms) - n)
		if n+drop.Metrics < len(ms) {
			b.log.Warnf("spool: %d metrics cannot be written as line protocol and are lost", len(ms)-n-drop.Metrics)
		}
	}
	if n > 0 {
		b.log.Warnf("%d undelivered metrics saved to %s; the next run sends them first (%s%s)", n, path, b.spoolHolds(), backlog)
	}
	return len(ms) + kept, n + kept, nil
}

// spoolHolds says what the spool holds in all, every run's files
// counted: "the spool holds 36015 metrics (1.2 MB) in 3 files".
func (b *Buffer) spoolHolds() string {
	files, metrics, bytes, unknown, err := b.spool.Usage()
	if err != nil {
		return fmt.Sprintf("the spool cannot be listed: %v", err)
	}
	more := ""
	if unknown {
		more = "more than "
	}
	return fmt.Sprintf("the spool holds %s%d metrics (%s) in %s", more, metrics, formatBytes(bytes), plural(files, "file"))
}

// countSpooled counts the entries loaded from the spool.
func countSpooled(es []entry) int {
	n := 0
	for _, e := range es {
		if e.spooled {
			n++
		}
	}
	return n
}

// reportDrop says what the spool's limit left out, if anything.
func (b *Buffer) reportDrop(d Drop) {
	if d.Metrics > 0 || d.Files > 0 {
		b.log.Warnf("spool_limit = %s: left out %s to stay within it", formatBytes(b.spool.limit), d)
	}
}

func (b *Buffer) addLost(n int) {
	b.mu.Lock()
	b.lost += n
	b.mu.Unlock()
}

// String describes the buffer's stretches, for debug logs.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return fmt.Sprintf("%d acknowledged, %d in flight, %d pending", b.acked, b.flight, b.lenLocked()-b.acked-b.flight)
}
