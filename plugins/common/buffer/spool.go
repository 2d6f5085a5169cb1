package buffer

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/influxdata/telegraf"

	"github.com/hap-monitor/hap-monitor/plugins/common/lineproto"
)

// Spool keeps metrics between runs in a directory: files of influx line
// protocol with nanosecond timestamps, gzip-compressed, one per write,
// named NAME-<unix nanoseconds>-<pid>-<n>-<metrics>m.lp.gz so that they
// sort oldest first, no two runs ever write the same file, and what a
// file holds is known without reading it. The plain NAME-...-<n>.lp and
// NAME.lp files of earlier versions are read too. A run claims the files
// it loads by locking them (flock): runs that overlap never load, send or
// remove each other's files, and a lock dies with its process.
//
// With a limit, the files never take more than limit bytes in all,
// counting the one being written: room is made by removing the oldest
// files no run holds, whole, then, if that is not enough, by leaving the
// oldest metrics of the write out.
type Spool struct {
	dir   string
	name  string
	limit int64 // bytes; 0: none
	log   telegraf.Logger

	mu      sync.Mutex
	claimed []*claim
	seq     int
	mine    map[string]int // files this spool wrote and did not claim back: metrics each
}

type claim struct {
	path  string
	f     *os.File
	n     int  // metrics loaded from it
	aside bool // moved to path+".bad": keep it
}

// File extensions of the spool's files: compressed, and the plain line
// protocol of earlier versions.
const (
	gzExt    = ".lp.gz"
	plainExt = ".lp"
)

// NewSpool returns the spool of the output called name in dir, creating
// dir if needed, holding at most limit bytes (0: no limit).
func NewSpool(dir, name string, limit int64, log telegraf.Logger) (*Spool, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, err
	}
	return &Spool{dir: dir, name: name, limit: limit, log: log}, nil
}

// spoolFile is one file of the spool as its directory entry tells it.
type spoolFile struct {
	path    string
	size    int64
	metrics int       // -1: not in the name (an earlier version's file)
	written time.Time // zero: not in the name
}

// Files lists the spool's files, oldest first.
func (s *Spool) Files() ([]string, error) {
	files, err := s.list()
	out := make([]string, len(files))
	for i, f := range files {
		out[i] = f.path
	}
	return out, err
}

// list reads the spool's files, oldest first.
func (s *Spool) list() ([]spoolFile, error) {
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, err
	}
	var out []spoolFile
	for _, e := range entries {
		n := e.Name()
		// NAME.lp is the single file of earlier versions.
		if !e.Type().IsRegular() || !(strings.HasPrefix(n, s.name+"-") || n == s.name+plainExt) ||
			!(strings.HasSuffix(n, gzExt) || strings.HasSuffix(n, plainExt)) {
			continue
		}
		f := spoolFile{path: filepath.Join(s.dir, n), metrics: -1}
		if info, err := e.Info(); err == nil {
			f.size = info.Size()
		}
		f.written, f.metrics = parseName(strings.TrimPrefix(n, s.name+"-"))
		out = append(out, f)
	}
	slices.SortFunc(out, func(a, b spoolFile) int { return strings.Compare(a.path, b.path) })
	return out, nil
}

// parseName reads "<unix nanoseconds>-<pid>-<n>-<metrics>m.lp.gz" (the
// metrics are not in an earlier version's "<ns>-<pid>-<n>.lp").
func parseName(rest string) (time.Time, int) {
	parts := strings.Split(strings.TrimSuffix(strings.TrimSuffix(rest, gzExt), plainExt), "-")
	var written time.Time
	if ns, err := strconv.ParseInt(parts[0], 10, 64); err == nil {
		written = time.Unix(0, ns)
	}
	if len(parts) == 4 {
		if n, err := strconv.Atoi(strings.TrimSuffix(parts[3], "m")); err == nil {
			return written, n
		}
	}
	return written, -1
}

// Claim locks the files no other run holds, oldest first, while their
// metrics fit in room (the first one always), and returns their metrics.
// Lines that do not decode are logged and their file is moved aside to
// FILE.bad; the lines that decode are kept.
func (s *Spool) Claim(room int) ([]telegraf.Metric, error) {
	files, err := s.list()
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []telegraf.Metric
	nfiles := 0
	var first, last time.Time
	for _, f := range files {
		path := f.path
		if s.holds(path) {
			continue
		}
		c, err := lock(path)
		if err != nil {
			return out, err
		}
		if c == nil {
			continue // another run holds it, or it is gone
		}
		ms, bad := read(c.f)
		if len(out) > 0 && len(out)+len(ms) > room {
			c.f.Close() // unlocks; left for later
			break
		}
		if bad != nil {
			aside := path + ".bad"
			s.log.Errorf("spool %s: %v; kept the %d metrics that decode, file moved to %s", path, bad, len(ms), aside)
			if err := os.Rename(path, aside); err == nil {
				c.aside = true
			}
		}
		c.n = len(ms)
		s.claimed = append(s.claimed, c)
		delete(s.mine, path)
		out = append(out, ms...)
		nfiles++
		if first.IsZero() {
			first = f.written
		}
		last = f.written
	}
	if nfiles > 0 {
		s.log.Debugf("loaded %d undelivered metrics from %s in %s%s; they go first", len(out), plural(nfiles, "spool file"), s.dir, spanOf(first, last))
	}
	return out, nil
}

// spanOf says when the files of a span were written: " (written 14:02:00
// to 14:20:00)"; "" when the names do not say.
func spanOf(first, last time.Time) string {
	if first.IsZero() || last.IsZero() {
		return ""
	}
	day := "15:04:05"
	if first.YearDay() != last.YearDay() || first.Year() != last.Year() || time.Since(first) > 24*time.Hour {
		day = "2006-01-02 15:04:05"
	}
	if first.Equal(last) {
		return " (written " + first.Format(day) + ")"
	}
	return " (written " + first.Format(day) + " to " + last.Format(day) + ")"
}

// Claimed is the number of metrics loaded from the files this spool
// holds, and whether each of those files is still in its place (not
// removed or replaced since).
func (s *Spool) Claimed() (int, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n, intact := 0, true
	for _, c := range s.claimed {
		n += c.n
		fi, err1 := c.f.Stat()
		pi, err2 := os.Stat(c.path)
		if c.aside || err1 != nil || err2 != nil || !os.SameFile(fi, pi) {
			intact = false
		}
	}
	return n, intact
}

func (s *Spool) holds(path string) bool {
	return slices.ContainsFunc(s.claimed, func(c *claim) bool { return c.path == path })
}

// lock opens and locks path without waiting. It returns nil, nil when
// another process holds the lock or the file went away (a run that
// delivered it removes it before unlocking).
func lock(path string) (*claim, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close() // read-only
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, nil
		}
		return nil, fmt.Errorf("locking %s: %w", path, err)
	}
	// The lock is on the file we opened: make sure it is still the one
	// at path, not one removed meanwhile.
	fi, err1 := f.Stat()
	pi, err2 := os.Stat(path)
	if err1 != nil || err2 != nil || !os.SameFile(fi, pi) {
		f.Close() // read-only
		return nil, nil
	}
	return &claim{path: path, f: f}, nil
}

// read decodes a spool file, compressed or not; bad reports the first
// line it could not decode (every line that decodes is returned).
func read(f *os.File) (ms []telegraf.Metric, bad error) {
	r, err := open(f)
	if err != nil {
		return nil, err
	}
	lr := lineproto.NewReader(r, lineproto.MaxLineBytes)
	for {
		m, err := lr.Next()
		var lerr *lineproto.LineError
		switch {
		case errors.Is(err, io.EOF):
			return ms, bad
		case errors.As(err, &lerr):
			if bad == nil {
				bad = err
			}
		case err != nil:
			return ms, errors.Join(bad, err)
		default:
			ms = append(ms, m)
		}
	}
}

// open reads a spool file's line protocol: through gzip when the file
// starts with gzip's magic bytes, as it is otherwise.
func open(f *os.File) (io.Reader, error) {
	br := bufio.NewReaderSize(f, 64<<10)
	magic, err := br.Peek(2)
	if err != nil || magic[0] != 0x1f || magic[1] != 0x8b {
		return br, nil // empty, or plain line protocol
	}
	zr, err := gzip.NewReader(br)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", f.Name(), err)
	}
	return zr, nil
}

// gzipLevel is the compression of a spool file: at 1000x10 a gather's 13
// MB of line protocol become 0.24 MB in 16 ms (level 9: 0.12 MB in 38
// ms), so that a limit holds many gathers at little cost.
const gzipLevel = 2

// encode writes ms as compressed line protocol, and returns it with the
// number of metrics it holds (those line protocol cannot hold are left
// out).
func encode(ms []telegraf.Metric) ([]byte, int, error) {
	var data bytes.Buffer
	zw, err := gzip.NewWriterLevel(&data, gzipLevel)
	if err != nil {
		return nil, 0, err
	}
	enc := lineproto.NewEncoder(zw)
	n := 0
	for _, m := range ms {
		if enc.Encode(m) == nil {
			n++
		}
	}
	if err := enc.Flush(); err != nil {
		return nil, 0, err
	}
	if err := zw.Close(); err != nil {
		return nil, 0, err
	}
	return data.Bytes(), n, nil
}

// A Drop is what the spool's limit left out of the directory: files
// removed, oldest first, and metrics of a write that did not fit.
type Drop struct {
	Metrics int   // metrics left out (files of earlier versions not counted in)
	Bytes   int64 // their compressed bytes
	Files   int   // files removed
	// First and Last are when the files removed were written.
	First, Last time.Time
	Unknown     bool // a removed file did not say how many metrics it held
}

func (d Drop) String() string {
	var what []string
	switch {
	case d.Files == 1:
		what = append(what, "the oldest spool file"+spanOf(d.First, d.Last))
	case d.Files > 1:
		what = append(what, fmt.Sprintf("the %d oldest spool files%s", d.Files, spanOf(d.First, d.Last)))
	}
	n := fmt.Sprintf("%d metrics", d.Metrics)
	if d.Unknown {
		n = "more than " + n
	}
	if len(what) == 0 {
		what = append(what, "the oldest of this write")
	}
	return fmt.Sprintf("%s, %s (%s)", n, formatBytes(d.Bytes), strings.Join(what, ", "))
}

// Write saves ms to a new file of the spool, atomically (temporary file,
// sync, rename), within the spool's limit (see Spool). It returns how
// many metrics it wrote (those line protocol cannot hold are left out),
// the file's path ("" when none of them fit), and what the limit left
// out, if anything.
func (s *Spool) Write(ms []telegraf.Metric) (int, string, Drop, error) {
	data, n, err := encode(ms)
	if err != nil {
		return 0, "", Drop{}, err
	}
	var drop Drop
	if s.limit > 0 {
		if data, n, drop, err = s.makeRoom(ms, data, n); err != nil || n == 0 {
			return 0, "", drop, err
		}
	}
	s.mu.Lock()
	s.seq++
	name := fmt.Sprintf("%s-%020d-%d-%d-%dm%s", s.name, time.Now().UnixNano(), os.Getpid(), s.seq, n, gzExt)
	s.mu.Unlock()
	path := filepath.Join(s.dir, name)
	if err := writeAtomic(path, data); err != nil {
		return 0, "", drop, fmt.Errorf("spool %s: %w", path, err)
	}
	s.mu.Lock()
	if s.mine == nil {
		s.mine = map[string]int{}
	}
	s.mine[path] = n
	s.mu.Unlock()
	return n, path, drop, nil
}

// makeRoom removes the oldest files no run holds until data fits within
// the limit beside the others; if it still does not, it leaves the oldest
// metrics of ms out until it does. It returns what is left to write.
func (s *Spool) makeRoom(ms []telegraf.Metric, data []byte, n int) ([]byte, int, Drop, error) {
	var drop Drop
	files, err := s.list()
	if err != nil {
		return nil, 0, drop, err
	}
	used := int64(0)
	for _, f := range files {
		used += f.size
	}
	for _, f := range files {
		if used+int64(len(data)) <= s.limit {
			break
		}
		if s.holdsLocked(f.path) {
			continue // this run's: its metrics are being sent or written again
		}
		c, err := lock(f.path)
		if err != nil || c == nil {
			continue // another run holds it
		}
		err = os.Remove(f.path)
		c.f.Close() // read-only; closing unlocks
		if err != nil {
			continue
		}
		used -= f.size
		drop.Files++
		drop.Bytes += f.size
		if f.metrics >= 0 {
			drop.Metrics += f.metrics
		} else {
			drop.Unknown = true
		}
		if drop.First.IsZero() {
			drop.First = f.written
		}
		drop.Last = f.written
		s.mu.Lock()
		delete(s.mine, f.path)
		s.mu.Unlock()
	}
	// What is left to the write: the newest metrics that fit, found by
	// their share of the compressed bytes, then checked.
	for len(ms) > 0 && used+int64(len(data)) > s.limit {
		room := s.limit - used
		keep := 0
		if room > 0 {
			keep = int(float64(len(ms)) * float64(room) / float64(len(data)) * 0.95)
		}
		keep = min(keep, len(ms)-1)
		drop.Metrics += len(ms) - keep
		drop.Bytes += int64(len(data)) * int64(len(ms)-keep) / int64(len(ms))
		ms = ms[len(ms)-keep:]
		if data, n, err = encode(ms); err != nil {
			return nil, 0, drop, err
		}
	}
	if len(ms) == 0 {
		return nil, 0, drop, nil
	}
	return data, n, drop, nil
}

func (s *Spool) holdsLocked(path string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.holds(path)
}

// Usage returns the spool's files, the metrics they hold and their
// bytes, for what every run finds there; files of earlier versions count
// no metrics (unknown is then true).
func (s *Spool) Usage() (files, metrics int, bytes int64, unknown bool, err error) {
	list, err := s.list()
	for _, f := range list {
		files++
		bytes += f.size
		if f.metrics >= 0 {
			metrics += f.metrics
		} else {
			unknown = true
		}
	}
	return files, metrics, bytes, unknown, err
}

// plural writes a count of things: "1 file", "3 files".
func plural(n int, thing string) string {
	if n == 1 {
		return "1 " + thing
	}
	return fmt.Sprintf("%d %ss", n, thing)
}

// formatBytes writes a size in the units spool_limit takes: "12.3 MB".
func formatBytes(n int64) string {
	switch {
	case n >= 1e9:
		return fmt.Sprintf("%.1f GB", float64(n)/1e9)
	case n >= 1e6:
		return fmt.Sprintf("%.1f MB", float64(n)/1e6)
	case n >= 1e3:
		return fmt.Sprintf("%.1f kB", float64(n)/1e3)
	}
	return fmt.Sprintf("%d B", n)
}

// Mine is the number of metrics in the files this spool wrote and did not
// load back: what this run leaves for the next.
func (s *Spool) Mine() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, m := range s.mine {
		n += m
	}
	return n
}

// Release removes the claimed files (their metrics were delivered or
// written again) and lets go of their locks.
func (s *Spool) Release() { s.let(true) }

// Unclaim lets go of the claimed files' locks and leaves them for
// another run.
func (s *Spool) Unclaim() { s.let(false) }

// Keep lets go of the claimed files' locks, leaving them for the next
// run as this run's undelivered metrics (see Mine): nothing of them was
// delivered.
func (s *Spool) Keep() {
	s.mu.Lock()
	if s.mine == nil {
		s.mine = map[string]int{}
	}
	for _, c := range s.claimed {
		s.mine[c.path] = c.n
	}
	s.mu.Unlock()
	s.let(false)
}

func (s *Spool) let(remove bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.claimed {
		if remove && !c.aside {
			// Removed before unlocking: a run waiting for the lock then
			// finds the file gone.
			if err := os.Remove(c.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
				s.log.Errorf("spool: removing %s: %v (its metrics were delivered; remove it by hand)", c.path, err)
			}
		}
		c.f.Close() // read-only; closing unlocks
	}
	s.claimed = nil
}

func writeAtomic(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		os.Remove(f.Name()) // best effort cleanup
	}
	return err
}
