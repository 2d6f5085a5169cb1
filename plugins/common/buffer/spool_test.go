package buffer

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/influxdata/telegraf"
	"github.com/influxdata/telegraf/metric"

	"github.com/hap-monitor/hap-monitor/internal/testbed"
)

// dirBytes is what dir takes on the disk, temporary files included.
func dirBytes(t *testing.T, dir string) int64 {
	t.Helper()
	n, err := testbed.DirBytes(dir)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// gather returns n metrics like a gather's rows, of times at.
func gather(n int, at time.Time, seed int) []telegraf.Metric {
	out := make([]telegraf.Metric, n)
	for i := range out {
		out[i] = metric.New("haproxy", map[string]string{"proxy": fmt.Sprintf("be_%04d", i/10), "sv": fmt.Sprintf("srv_%02d", i%10)},
			map[string]any{"scur": uint64(i * seed % 97), "stot": uint64(i * seed), "status": "UP"}, at)
	}
	return out
}

// TestSpoolFormat: a write is one gzip file whose name says how many
// metrics it holds; files of earlier versions (plain line protocol) load
// as before.
func TestSpoolFormat(t *testing.T) {
	dir := t.TempDir()
	s, _ := newSpool(t, dir)
	n, path, drop, err := s.Write(seq(0, 3))
	if err != nil || n != 3 || drop != (Drop{}) {
		t.Fatalf("Write = %d, %q, %+v, %v", n, path, drop, err)
	}
	if !strings.HasSuffix(path, "-3m.lp.gz") {
		t.Errorf("file %s, want a name ending -3m.lp.gz", path)
	}
	data, err := os.ReadFile(path)
	if err != nil || len(data) < 2 || data[0] != 0x1f || data[1] != 0x8b {
		t.Fatalf("%s is not gzip: % x %v", path, data[:min(len(data), 4)], err)
	}
	// Two files of the earlier version: NAME-<ns>-<pid>-<n>.lp and NAME.lp.
	old := "m3,k=x v=3i " + fmt.Sprint(t0.Add(3*time.Second).UnixNano()) + "\n"
	if err := os.WriteFile(filepath.Join(dir, "out-1-00000000000000000001-7-1.lp"), []byte(old), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "out-1.lp"), []byte(strings.ReplaceAll(old, "3", "4")), 0o600); err != nil {
		t.Fatal(err)
	}
	files, metrics, bytes, unknown, err := s.Usage()
	if err != nil || files != 3 || metrics != 3 || !unknown || bytes != dirBytes(t, dir) {
		t.Errorf("Usage = %d files, %d metrics, %d bytes, unknown %v, %v", files, metrics, bytes, unknown, err)
	}
	if got := spooledNames(t, dir); !slices.Equal(got, []string{"m3", "m0", "m1", "m2", "m4"}) {
		t.Errorf("loaded %v, want the earlier version's file first (its time is older), then the new one, then NAME.lp", got)
	}
}

// TestSpoolLimit writes gathers into a spool with a limit: the files
// never take more than the limit, the oldest go first, whole, and each
// write says what it left out, and of which times.
func TestSpoolLimit(t *testing.T) {
	dir := t.TempDir()
	probe, _ := newSpool(t, t.TempDir())
	_, one, _, err := probe.Write(gather(1000, t0, 1))
	if err != nil {
		t.Fatal(err)
	}
	info, _ := os.Stat(one)
	size := info.Size()
	limit := 3*size + size/2 // three gathers and a half
	log, _ := newLog()
	s, err := NewSpool(dir, "out-1", limit, log)
	if err != nil {
		t.Fatal(err)
	}
	var written []time.Time
	for i := 0; i < 6; i++ {
		before := time.Now()
		n, _, drop, err := s.Write(gather(1000, t0.Add(time.Duration(i)*time.Minute), i+1))
		if err != nil || n != 1000 {
			t.Fatalf("write %d: %d, %v", i, n, err)
		}
		written = append(written, before)
		if used := dirBytes(t, dir); used > limit {
			t.Fatalf("write %d: the spool takes %d bytes, over its limit %d", i, used, limit)
		}
		switch {
		case i < 3 && drop != (Drop{}):
			t.Errorf("write %d within the limit dropped %+v", i, drop)
		case i >= 3:
			if drop.Files != 1 || drop.Metrics != 1000 || drop.Bytes == 0 || drop.First.Before(written[i-3]) || drop.First.After(written[i-2]) {
				t.Errorf("write %d: dropped %+v, want the oldest file, written at %s", i, drop, written[i-3].Format(time.RFC3339Nano))
			}
			if !strings.Contains(drop.String(), "1000 metrics") || !strings.Contains(drop.String(), "the oldest spool file (written ") {
				t.Errorf("write %d: %q", i, drop)
			}
		}
	}
	// The three newest gathers are left, whole.
	ms, err := s.Claim(1 << 30)
	if err != nil {
		t.Fatal(err)
	}
	s.Unclaim()
	if len(ms) != 3000 || !ms[0].Time().Equal(t0.Add(3*time.Minute)) || !ms[2999].Time().Equal(t0.Add(5*time.Minute)) {
		t.Errorf("the spool holds %d metrics from %v to %v, want the 3 newest gathers", len(ms), ms[0].Time(), ms[len(ms)-1].Time())
	}

	// A write larger than the whole limit keeps its newest metrics that
	// fit, after every file no run holds is gone.
	big := gather(10000, t0.Add(time.Hour), 7)
	n, _, drop, err := s.Write(big)
	if err != nil || n == 0 || n >= 10000 || drop.Files != 3 || drop.Metrics != 3000+10000-n {
		t.Fatalf("a write over the limit: %d written, dropped %+v, %v", n, drop, err)
	}
	if used := dirBytes(t, dir); used > limit {
		t.Fatalf("the spool takes %d bytes, over its limit %d", used, limit)
	}
	ms, _ = s.Claim(1 << 30)
	s.Unclaim()
	if len(ms) != n || ms[0].Name() != big[10000-n].Name() || ms[n-1].Name() != big[9999].Name() {
		t.Errorf("kept %d metrics, want the %d newest of the write", len(ms), n)
	}
}

// TestSpoolLimitSparesHeldFiles: a file another run holds (it is sending
// it) is never removed to make room.
func TestSpoolLimitSparesHeldFiles(t *testing.T) {
	dir := t.TempDir()
	first, _ := newSpool(t, dir)
	if _, _, _, err := first.Write(gather(1000, t0, 1)); err != nil {
		t.Fatal(err)
	}
	sending, _ := newSpool(t, dir)
	if ms, _ := sending.Claim(1 << 30); len(ms) != 1000 {
		t.Fatalf("claimed %d", len(ms))
	}
	defer sending.Unclaim()
	log, _ := newLog()
	s, err := NewSpool(dir, "out-1", dirBytes(t, dir)*3/2, log)
	if err != nil {
		t.Fatal(err)
	}
	n, _, drop, err := s.Write(gather(1000, t0.Add(time.Minute), 2))
	if err != nil || drop.Files != 0 || n == 1000 || drop.Metrics != 1000-n {
		t.Fatalf("Write = %d, dropped %+v, %v; want the held file kept and part of the write left out", n, drop, err)
	}
	if files, _ := first.Files(); len(files) != 2 && n > 0 {
		t.Errorf("files %v", files)
	}
}

// TestCloseKeepsAnUntouchedBacklogInPlace: a run that sends nothing of
// what it loaded leaves those files as they are and writes only its own
// metrics; one that sent part writes what is left and removes them.
func TestCloseKeepsAnUntouchedBacklogInPlace(t *testing.T) {
	dir := t.TempDir()
	first, _ := newSpool(t, dir)
	_, backlog, _, err := first.Write(seq(0, 3))
	if err != nil {
		t.Fatal(err)
	}
	s, _ := newSpool(t, dir)
	log, _ := newLog()
	b := New(100, s, log)
	if n, _ := b.LoadSpool(); n != 3 {
		t.Fatalf("loaded %d", n)
	}
	b.Add(seq(3, 5))
	held, spooled, err := b.Close()
	if err != nil || held != 5 || spooled != 5 {
		t.Fatalf("Close = %d, %d, %v; want 5 held, 5 kept", held, spooled, err)
	}
	files, _ := s.Files()
	if len(files) != 2 || files[0] != backlog || !strings.HasSuffix(files[1], "-2m.lp.gz") {
		t.Errorf("files %v, want the backlog's file as it was and one of this run's 2 metrics", files)
	}
	if got := spooledNames(t, dir); !slices.Equal(got, seqNames(0, 5)) {
		t.Errorf("spooled %v", got)
	}

	// The next run sends the first metric, then stops.
	s2, _ := newSpool(t, dir)
	b = New(100, s2, log)
	if n, _ := b.LoadSpool(); n != 5 {
		t.Fatalf("loaded %d", n)
	}
	b.Take(1)
	b.Acked(1)
	b.Confirm(1)
	if _, _, err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if files, _ := s2.Files(); len(files) != 1 {
		t.Errorf("files %v, want one holding the 4 left", files)
	}
	if got := spooledNames(t, dir); !slices.Equal(got, seqNames(1, 5)) {
		t.Errorf("spooled %v, want the 4 not sent", got)
	}
}

// TestSpoolOnAFullDisk writes into a 1 MiB tmpfs until it is full: each
// write that fails says so and leaves no file behind, every file left is
// whole, and once room is made the next write works.
func TestSpoolOnAFullDisk(t *testing.T) {
	if testing.Short() {
		t.Skip("needs root, to mount a 1 MiB tmpfs")
	}
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("needs root, to mount a 1 MiB tmpfs: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", dir).Run() }) //nolint:errcheck // best effort
	log, _ := newLog()
	var wrote, failed int
	for i := 0; i < 200 && failed == 0; i++ {
		s, _ := newSpool(t, dir) // each run's own
		b := New(100000, s, log)
		b.Add(gather(5000, t0.Add(time.Duration(i)*time.Minute), i+13))
		held, spooled, err := b.Close()
		switch {
		case err == nil && spooled == held:
			wrote++
		case err != nil && spooled == 0 && b.Undelivered() == held:
			failed++
			if !strings.Contains(err.Error(), "no space left on device") {
				t.Errorf("the failed write says %v", err)
			}
		default:
			t.Fatalf("write %d: %d held, %d spooled, %v", i, held, spooled, err)
		}
	}
	if wrote == 0 || failed != 1 {
		t.Fatalf("%d writes, %d failed: the tmpfs did not fill", wrote, failed)
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") {
			t.Errorf("a temporary file is left: %s", e.Name())
		}
	}
	check, _ := newSpool(t, dir)
	ms, err := check.Claim(1 << 30)
	if err != nil || len(ms) != wrote*5000 {
		t.Fatalf("the files hold %d metrics (%v), want the %d writes' whole", len(ms), err, wrote)
	}
	check.Release() // delivered: room again
	s, _ := newSpool(t, dir)
	b := New(100000, s, log)
	b.Add(gather(5000, t0, 1))
	if held, spooled, err := b.Close(); err != nil || spooled != held {
		t.Errorf("after room was made: %d held, %d spooled, %v", held, spooled, err)
	}
}

// TestOverflowGivesAnUntouchedBacklogBack: a run that has sent nothing of
// what it loaded from the spool, and whose own metrics then overflow the
// buffer, leaves the loaded files as they are instead of writing their
// metrics again; once one of them was sent, it writes copies as before.
func TestOverflowGivesAnUntouchedBacklogBack(t *testing.T) {
	dir := t.TempDir()
	first, _ := newSpool(t, dir)
	_, backlog, _, err := first.Write(seq(0, 6))
	if err != nil {
		t.Fatal(err)
	}
	s, _ := newSpool(t, dir)
	log, logs := newLog()
	b := New(8, s, log)
	if n, _ := b.LoadSpool(); n != 6 {
		t.Fatalf("loaded %d", n)
	}
	b.Add(seq(6, 10)) // 10 held, over the limit of 8
	if b.Len() != 4 || b.Dropped() != 0 || b.Undelivered() != 10 {
		t.Fatalf("Len %d, Dropped %d, Undelivered %d; want this run's 4 held, the 6 back in their file", b.Len(), b.Dropped(), b.Undelivered())
	}
	if files, _ := s.Files(); len(files) != 1 || files[0] != backlog {
		t.Fatalf("files %v, want only the backlog's, as it was", files)
	}
	if strings.Contains(logs.String(), "metric buffer full") {
		t.Errorf("a metric was written again:\n%s", logs)
	}
	held, spooled, err := b.Close()
	if err != nil || held != 4 || spooled != 4 {
		t.Fatalf("Close = %d, %d, %v", held, spooled, err)
	}
	if got := spooledNames(t, dir); !slices.Equal(got, seqNames(0, 10)) {
		t.Errorf("spooled %v", got)
	}
	if !strings.Contains(logs.String(), "of the 6 metrics loaded from the spool, 0 were delivered") {
		t.Errorf("log:\n%s", logs)
	}

	// Once a loaded metric was sent, its file cannot stand as it is.
	s2, _ := newSpool(t, dir)
	b = New(8, s2, log)
	if n, _ := b.LoadSpool(); n != 6 { // the second file does not fit beside the first
		t.Fatalf("loaded %d", n)
	}
	b.Take(1)
	b.Add(seq(10, 14))
	if b.Len() != 8 || !strings.Contains(logs.String(), "wrote the 2 oldest metrics to ") {
		t.Errorf("Len %d, want 8 with the 2 oldest pending written again; log:\n%s", b.Len(), logs)
	}
}

// TestGiveBackAfterADeliveredBacklog: once the files loaded first are
// delivered, the files loaded next can be given back untouched too.
func TestGiveBackAfterADeliveredBacklog(t *testing.T) {
	dir := t.TempDir()
	first, _ := newSpool(t, dir)
	for _, r := range [][2]int{{0, 3}, {3, 6}} {
		if _, _, _, err := first.Write(seq(r[0], r[1])); err != nil {
			t.Fatal(err)
		}
	}
	files, _ := first.Files()
	s, _ := newSpool(t, dir)
	log, logs := newLog()
	b := New(5, s, log)
	if n, _ := b.LoadSpool(); n != 3 {
		t.Fatalf("loaded %d, want the first file's 3", n)
	}
	b.Take(3)
	b.Delivered(3)
	if n, _ := b.LoadSpool(); n != 3 {
		t.Fatalf("loaded %d, want the second file's 3", n)
	}
	b.Add(seq(6, 10))
	if left, _ := s.Files(); b.Len() != 4 || len(left) != 1 || left[0] != files[1] || strings.Contains(logs.String(), "metric buffer full") {
		t.Errorf("Len %d, files %v; want this run's 4 held and the second file as it was; log:\n%s", b.Len(), left, logs)
	}
}
