package buffer

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/influxdata/telegraf"

	"github.com/hap-monitor/hap-monitor/plugins/common/lineproto"
)

// Spool keeps metrics between runs in a directory: files of influx line
// protocol with nanosecond timestamps, one per write, named
// NAME-<unix nanoseconds>-<pid>-<n>.lp so that they sort oldest first and
// no two runs ever write the same file. A run claims the files it loads by
// locking them (flock): runs that overlap never load, send or remove each
// other's files, and a lock dies with its process.
type Spool struct {
	dir  string
	name string
	log  telegraf.Logger

	mu      sync.Mutex
	claimed []*claim
	seq     int
	mine    map[string]int // files this spool wrote and did not claim back: metrics each
}

type claim struct {
	path  string
	f     *os.File
	aside bool // moved to path+".bad": keep it
}

// NewSpool returns the spool of the output called name in dir, creating
// dir if needed.
func NewSpool(dir, name string, log telegraf.Logger) (*Spool, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, err
	}
	return &Spool{dir: dir, name: name, log: log}, nil
}

// Files lists the spool's files, oldest first.
func (s *Spool) Files() ([]string, error) {
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range entries {
		n := e.Name()
		// NAME.lp is the single file of earlier versions.
		if e.Type().IsRegular() && strings.HasSuffix(n, ".lp") && (strings.HasPrefix(n, s.name+"-") || n == s.name+".lp") {
			out = append(out, filepath.Join(s.dir, n))
		}
	}
	slices.Sort(out)
	return out, nil
}

// Claim locks the files no other run holds, oldest first, while their
// metrics fit in room (the first one always), and returns their metrics.
// Lines that do not decode are logged and their file is moved aside to
// FILE.bad; the lines that decode are kept.
func (s *Spool) Claim(room int) ([]telegraf.Metric, error) {
	files, err := s.Files()
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []telegraf.Metric
	for _, path := range files {
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
			c.f.Close() //nolint:errcheck // unlocks; left for later
			break
		}
		if bad != nil {
			aside := path + ".bad"
			s.log.Errorf("spool %s: %v; kept the %d metrics that decode, file moved to %s", path, bad, len(ms), aside)
			if err := os.Rename(path, aside); err == nil {
				c.aside = true
			}
		}
		s.log.Infof("loaded %d undelivered metrics from %s; they go first", len(ms), path)
		s.claimed = append(s.claimed, c)
		delete(s.mine, path)
		out = append(out, ms...)
	}
	return out, nil
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
		f.Close() //nolint:errcheck // read-only
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
		f.Close() //nolint:errcheck // read-only
		return nil, nil
	}
	return &claim{path: path, f: f}, nil
}

// read decodes a spool file; bad reports the first line it could not
// decode (every line that decodes is returned).
func read(r io.Reader) (ms []telegraf.Metric, bad error) {
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

// Write saves ms to a new file of the spool, atomically (temporary file,
// sync, rename). It returns how many metrics it wrote (those line protocol
// cannot hold are left out) and the file's path.
func (s *Spool) Write(ms []telegraf.Metric) (int, string, error) {
	var data bytes.Buffer
	enc := lineproto.NewEncoder(&data)
	n := 0
	for _, m := range ms {
		if enc.Encode(m) == nil {
			n++
		}
	}
	if err := enc.Flush(); err != nil {
		return 0, "", err
	}
	s.mu.Lock()
	s.seq++
	name := fmt.Sprintf("%s-%020d-%d-%d.lp", s.name, time.Now().UnixNano(), os.Getpid(), s.seq)
	s.mu.Unlock()
	path := filepath.Join(s.dir, name)
	if err := writeAtomic(path, data.Bytes()); err != nil {
		return 0, "", fmt.Errorf("spool %s: %w", path, err)
	}
	s.mu.Lock()
	if s.mine == nil {
		s.mine = map[string]int{}
	}
	s.mine[path] = n
	s.mu.Unlock()
	return n, path, nil
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
		c.f.Close() //nolint:errcheck // read-only; closing unlocks
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
		os.Remove(f.Name()) //nolint:errcheck // best effort cleanup
	}
	return err
}
