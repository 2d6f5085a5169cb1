package buffer

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/influxdata/telegraf"
	"github.com/influxdata/telegraf/metric"

	"github.com/hap-monitor/hap-monitor/internal/testbed"
	"github.com/hap-monitor/hap-monitor/plugins/common/logger"
)

var t0 = time.Unix(1700000000, 0)

func newLog() (telegraf.Logger, *testbed.SyncBuffer) {
	lb := &testbed.SyncBuffer{}
	return logger.New(logger.NewSink(lb, telegraf.Debug), "buffer"), lb
}

// seq returns metrics m<from> ... m<to-1>, field v = their number.
func seq(from, to int) []telegraf.Metric {
	var out []telegraf.Metric
	for i := from; i < to; i++ {
		out = append(out, metric.New(fmt.Sprintf("m%d", i), map[string]string{"k": "x"}, map[string]any{"v": int64(i)}, t0.Add(time.Duration(i)*time.Second)))
	}
	return out
}

func names(ms []telegraf.Metric) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.Name()
	}
	return out
}

func seqNames(from, to int) []string { return names(seq(from, to)) }

func TestTakeAckConfirmRetryKeepOrder(t *testing.T) {
	log, _ := newLog()
	b := New(100, nil, log)
	b.Add(seq(0, 10))
	if got := names(b.Take(4)); !slices.Equal(got, seqNames(0, 4)) {
		t.Fatalf("Take(4) = %v", got)
	}
	if got := names(b.Take(3)); !slices.Equal(got, seqNames(4, 7)) {
		t.Fatalf("second Take(3) = %v: in-flight metrics were taken twice", got)
	}
	b.Acked(2)
	if s := b.String(); s != "2 acknowledged, 5 in flight, 3 pending" {
		t.Fatalf("after Acked(2): %s", s)
	}
	b.Confirm(1)
	if b.Len() != 9 {
		t.Fatalf("Len = %d after confirming one of 10", b.Len())
	}
	// The connection failed: the acknowledged and in-flight ones go again,
	// in their order, before the pending ones.
	if n := b.Retry(); n != 6 {
		t.Fatalf("Retry = %d, want 6", n)
	}
	if got := names(b.Take(100)); !slices.Equal(got, seqNames(1, 10)) {
		t.Fatalf("after Retry, Take = %v", got)
	}
	b.Delivered(9)
	if b.Len() != 0 || b.Pending() != 0 {
		t.Fatalf("after delivering all: %s, Len %d", b, b.Len())
	}
}

func TestAddSignalsReady(t *testing.T) {
	log, _ := newLog()
	b := New(10, nil, log)
	b.Add(seq(0, 1))
	b.Add(seq(1, 2))
	select {
	case <-b.Ready():
	default:
		t.Fatal("Ready not signalled after Add")
	}
	select {
	case <-b.Ready():
		t.Fatal("two Adds signalled twice: the signal is a flag, not a count")
	default:
	}
}

func TestOverflowWithoutSpoolDropsOldestPendingNeverInFlight(t *testing.T) {
	log, logs := newLog()
	b := New(10, nil, log)
	b.Add(seq(0, 8))
	b.Take(3) // 0-2 in flight
	b.Add(seq(8, 13))
	if b.Len() != 10 || b.Dropped() != 3 {
		t.Fatalf("Len %d, Dropped %d; want 10 and 3", b.Len(), b.Dropped())
	}
	if !strings.Contains(logs.String(), "W! [buffer] metric buffer full (metric_buffer_limit = 10): dropped the 3 oldest metrics (set spool_dir to keep them)") {
		t.Fatalf("log:\n%s", logs)
	}
	b.Retry()
	if got, want := names(b.Take(100)), append(seqNames(0, 3), seqNames(6, 13)...); !slices.Equal(got, want) {
		t.Fatalf("held %v, want %v", got, want)
	}
}

func TestOverflowConfirmsAcknowledgedFirst(t *testing.T) {
	log, _ := newLog()
	b := New(10, nil, log)
	b.Add(seq(0, 10))
	b.Take(4)
	b.Acked(4)
	b.Add(seq(10, 13))
	if b.Dropped() != 0 {
		t.Fatalf("dropped %d while acknowledged metrics could make room", b.Dropped())
	}
	if got := names(b.Take(100)); !slices.Equal(got, seqNames(4, 13)) {
		t.Fatalf("pending %v", got)
	}
}

func newSpool(t *testing.T, dir string) (*Spool, *testbed.SyncBuffer) {
	t.Helper()
	log, logs := newLog()
	s, err := NewSpool(dir, "out-1", 0, log)
	if err != nil {
		t.Fatal(err)
	}
	return s, logs
}

// spooledNames reads every spool file of dir, oldest first.
func spooledNames(t *testing.T, dir string) []string {
	t.Helper()
	s, _ := newSpool(t, dir)
	ms, err := s.Claim(1 << 30)
	if err != nil {
		t.Fatal(err)
	}
	s.Unclaim()
	return names(ms)
}

func TestOverflowGoesToTheSpool(t *testing.T) {
	dir := t.TempDir()
	s, _ := newSpool(t, dir)
	log, logs := newLog()
	b := New(5, s, log)
	b.Add(seq(0, 5))
	b.Add(seq(5, 8))
	if b.Dropped() != 0 || b.Undelivered() != 8 {
		t.Fatalf("Dropped %d, Undelivered %d; want 0 and 8", b.Dropped(), b.Undelivered())
	}
	if !strings.Contains(logs.String(), "W! [buffer] metric buffer full (metric_buffer_limit = 5): wrote the 3 oldest metrics to "+dir) {
		t.Fatalf("log:\n%s", logs)
	}
	if got := spooledNames(t, dir); !slices.Equal(got, seqNames(0, 3)) {
		t.Fatalf("spooled %v", got)
	}
}

func TestCloseSpoolsEverythingAndTheNextRunLoadsItFirst(t *testing.T) {
	dir := t.TempDir()
	s, _ := newSpool(t, dir)
	log, logs := newLog()
	b := New(100, s, log)
	b.Add(seq(0, 10))
	b.Take(6)
	b.Acked(3) // acknowledged but never confirmed: spooled too
	held, spooled, err := b.Close()
	if err != nil || held != 10 || spooled != 10 {
		t.Fatalf("Close = %d, %d, %v", held, spooled, err)
	}
	if !strings.Contains(logs.String(), "W! [buffer] 10 undelivered metrics saved to "+dir) {
		t.Fatalf("log:\n%s", logs)
	}

	s2, logs2 := newSpool(t, dir)
	b2 := New(100, s2, log)
	if n, err := b2.LoadSpool(); n != 10 || err != nil {
		t.Fatalf("LoadSpool = %d, %v", n, err)
	}
	if !strings.Contains(logs2.String(), "D! [buffer] loaded 10 undelivered metrics from 1 spool file in "+dir+" (written ") {
		t.Fatalf("log:\n%s", logs2)
	}
	b2.Add(seq(10, 12))
	ms := b2.Take(100)
	if got, want := names(ms), seqNames(0, 12); !slices.Equal(got, want) {
		t.Fatalf("second run sends %v, want %v", got, want)
	}
	if v, _ := ms[3].GetField("v"); v != int64(3) || !ms[3].Time().Equal(t0.Add(3*time.Second)) {
		t.Fatalf("spooled metric came back as %v", ms[3])
	}
	// The file stays until every metric it held is delivered.
	b2.Delivered(9)
	if files, _ := s2.Files(); len(files) != 1 {
		t.Fatalf("files %v after delivering 9 of the 10 spooled", files)
	}
	b2.Delivered(1)
	if files, _ := s2.Files(); len(files) != 0 {
		t.Fatalf("files %v left after the spooled metrics were delivered", files)
	}
}

func TestOverlappingRunsNeverShareAFile(t *testing.T) {
	dir := t.TempDir()
	log, _ := newLog()
	first, _ := newSpool(t, dir)
	if _, _, _, err := first.Write(seq(0, 3)); err != nil {
		t.Fatal(err)
	}
	// Run A claims the file; run B, overlapping, must not load it too.
	a, _ := newSpool(t, dir)
	ba := New(100, a, log)
	if n, _ := ba.LoadSpool(); n != 3 {
		t.Fatalf("run A loaded %d", n)
	}
	b, _ := newSpool(t, dir)
	bb := New(100, b, log)
	if n, _ := bb.LoadSpool(); n != 0 {
		t.Fatalf("run B loaded %d metrics run A holds", n)
	}
	// Both fail and spool what they hold: two files, nothing overwritten.
	bb.Add(seq(3, 5))
	ba.Add(seq(5, 6))
	if _, _, err := bb.Close(); err != nil {
		t.Fatal(err)
	}
	if _, _, err := ba.Close(); err != nil {
		t.Fatal(err)
	}
	got := spooledNames(t, dir)
	slices.Sort(got)
	want := seqNames(0, 6)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("spool holds %v, want each of %v once", got, want)
	}
}

func TestClaimStopsAtTheRoomLeft(t *testing.T) {
	dir := t.TempDir()
	s, _ := newSpool(t, dir)
	for i := 0; i < 3; i++ {
		if _, _, _, err := s.Write(seq(i*4, i*4+4)); err != nil {
			t.Fatal(err)
		}
	}
	c, _ := newSpool(t, dir)
	ms, err := c.Claim(9)
	if err != nil || !slices.Equal(names(ms), seqNames(0, 8)) {
		t.Fatalf("Claim(9) = %v, %v; want the two oldest files", names(ms), err)
	}
	// The third file is left for later, not claimed.
	d, _ := newSpool(t, dir)
	if ms, _ := d.Claim(100); !slices.Equal(names(ms), seqNames(8, 12)) {
		t.Fatalf("another run claimed %v", names(ms))
	}
}

func TestBadSpoolFileKeepsWhatDecodesAndMovesAside(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "out-1-00000000000000000001-1-1.lp")
	text := "a v=1i 1000000000\nnot line protocol\nb v=2i 2000000000\n"
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	s, logs := newSpool(t, dir)
	ms, err := s.Claim(100)
	if err != nil || !slices.Equal(names(ms), []string{"a", "b"}) {
		t.Fatalf("Claim = %v, %v", names(ms), err)
	}
	if !strings.Contains(logs.String(), "E! [buffer] spool "+path+": line 2: ") || !strings.Contains(logs.String(), "moved to "+path+".bad") {
		t.Fatalf("log:\n%s", logs)
	}
	s.Release()
	if _, err := os.Stat(path + ".bad"); err != nil {
		t.Fatalf("the damaged file was not kept aside: %v", err)
	}
	if files, _ := s.Files(); len(files) != 0 {
		t.Fatalf("files %v", files)
	}
}

func TestOldSingleSpoolFileIsLoaded(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "out-1.lp"), []byte("a v=1i 1000000000\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s, _ := newSpool(t, dir)
	if ms, err := s.Claim(100); err != nil || len(ms) != 1 {
		t.Fatalf("Claim = %v, %v", names(ms), err)
	}
}

func TestFullBufferWaitsForRoomWhileDeliveryProgresses(t *testing.T) {
	log, logs := newLog()
	b := New(10, nil, log)
	b.WaitForRoom(time.Minute, 10)
	b.Add(seq(0, 10))
	b.Take(10)
	b.Progress()
	added := make(chan struct{})
	go func() {
		defer close(added)
		b.Add(seq(10, 15))
	}()
	select {
	case <-added:
		t.Fatal("Add did not wait for room while delivery makes progress")
	case <-time.After(50 * time.Millisecond):
	}
	b.Delivered(5)
	<-added
	if b.Dropped() != 0 || b.Len() != 10 {
		t.Fatalf("Dropped %d, Len %d; want 0 and 10\n%s", b.Dropped(), b.Len(), logs)
	}
}

func TestFullBufferNeverWaitsOnAFailedOrSilentDelivery(t *testing.T) {
	for name, prepare := range map[string]func(*Buffer){
		"failed":          func(b *Buffer) { b.Failed() },
		"silent too long": func(b *Buffer) { time.Sleep(30 * time.Millisecond) },
		"failed after progress": func(b *Buffer) {
			b.Progress()
			b.Failed()
		},
	} {
		t.Run(name, func(t *testing.T) {
			log, _ := newLog()
			b := New(10, nil, log)
			b.WaitForRoom(20*time.Millisecond, 10)
			b.Add(seq(0, 10))
			b.Take(10)
			prepare(b)
			done := make(chan struct{})
			go func() {
				defer close(done)
				b.Add(seq(10, 15))
			}()
			select {
			case <-done:
			case <-time.After(time.Minute):
				t.Fatal("Add waited for room although delivery is not progressing")
			}
		})
	}
}

func TestAboveTheMarkAddWaitsOnlyABriefPause(t *testing.T) {
	log, _ := newLog()
	b := New(100, nil, log)
	b.WaitForRoom(time.Minute, 5)
	b.Add(seq(0, 5)) // 5 pending: at the mark
	b.Progress()
	added := make(chan struct{})
	go func() {
		defer close(added)
		b.Add(seq(5, 7))
	}()
	select {
	case <-added:
		t.Fatal("Add did not wait above the mark while delivery makes progress")
	case <-time.After(50 * time.Millisecond):
	}
	// Taking them to send makes room: what is in flight does not count.
	b.Take(3)
	<-added
	// Silent for longer than the brief pause: Add holds the metrics
	// instead of waiting out the patience.
	time.Sleep(briefPatience + 50*time.Millisecond)
	start := time.Now()
	b.Add(seq(7, 12))
	if waited := time.Since(start); waited > briefPatience {
		t.Fatalf("Add waited %s on a silent delivery below the limit", waited)
	}
	if b.Len() != 12 || b.Pending() != 9 || b.Dropped() != 0 {
		t.Fatalf("Len %d, Pending %d, Dropped %d; want 12, 9 and 0", b.Len(), b.Pending(), b.Dropped())
	}
}

func TestSpoolThatCannotBeWrittenCountsTheLoss(t *testing.T) {
	dir := t.TempDir()
	first, _ := newSpool(t, dir)
	if _, _, _, err := first.Write(seq(0, 3)); err != nil {
		t.Fatal(err)
	}
	s, _ := newSpool(t, dir)
	log, _ := newLog()
	b := New(100, s, log)
	if n, _ := b.LoadSpool(); n != 3 {
		t.Fatalf("loaded %d", n)
	}
	b.Add(seq(3, 5))
	// The directory is gone and a file stands in its place: nothing can
	// be written there.
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dir, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	held, spooled, err := b.Close()
	if err == nil || held != 5 || spooled != 0 {
		t.Fatalf("Close = %d, %d, %v; want 5 held, none spooled, an error", held, spooled, err)
	}
	if b.Undelivered() != 5 {
		t.Fatalf("Undelivered = %d, want the 5 lost", b.Undelivered())
	}
}
