package testbed

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Carbon is a running carbon-cache (Debian's graphite-carbon) with its
// own carbon.conf in a temp dir: USER empty, unlimited creates and
// updates, the UDP listener on, retention 1s:1h for every metric, logs in
// Dir, its own instrumentation off (so Paths holds only what was sent).
type Carbon struct {
	Dir        string
	TCPAddr    string // plaintext line receiver, "127.0.0.1:PORT"
	UDPAddr    string // plaintext UDP receiver, "127.0.0.1:PORT"
	PickleAddr string // pickle receiver, "127.0.0.1:PORT": what a carbon-relay sends to
	// CacheQueryAddr is the cache query port, "127.0.0.1:PORT": where
	// graphite-web (CARBONLINK_HOSTS) reads what carbon has not written yet.
	CacheQueryAddr string
	Instance       string // --instance, "" when started without it
	WhisperDir     string
	PID            int

	fetch  string // whisper-fetch
	closed bool
}

// Point is one stored value of a whisper file.
type Point struct {
	Time  int64 // Unix seconds
	Value float64
}

// CarbonOptions chooses how StartCarbonWith starts carbon-cache.
type CarbonOptions struct {
	// Instance is carbon-cache's --instance (its name in a carbon-relay's
	// DESTINATIONS, "127.0.0.1:PICKLE_PORT:INSTANCE"); "" starts it
	// without the flag. Each carbon-cache has its own temp dir, ports and
	// whisper files whatever its instance.
	Instance string
}

const carbonStartTimeout = time.Minute

// StartCarbon writes a carbon.conf and storage-schemas.conf in a temp dir,
// starts `carbon-cache --config=FILE --pidfile=FILE --logdir=DIR start`
// (it daemonises) and returns once the TCP line receiver accepts.
func StartCarbon(ctx context.Context) (*Carbon, error) {
	return StartCarbonWith(ctx, CarbonOptions{})
}

// StartCarbonWith is StartCarbon with options: with opts.Instance it runs
// `carbon-cache --config=FILE --instance=NAME ... start`.
func StartCarbonWith(ctx context.Context, opts CarbonOptions) (*Carbon, error) {
	const install = "apt-get install graphite-carbon python3-whisper"
	bin, err := findProgram("carbon-cache", install)
	if err != nil {
		return nil, err
	}
	fetch, err := findProgram("whisper-fetch", install)
	if err != nil {
		return nil, err
	}
	ctx, cancel := withDefaultTimeout(ctx, carbonStartTimeout)
	defer cancel()
	return retryStart(ctx, 3, anyError, func() (*Carbon, error) { return startCarbonOnce(ctx, bin, fetch, opts) })
}

// NewCarbon is StartCarbon for tests: it fails t on error and stops
// carbon-cache when the test ends.
func NewCarbon(t testing.TB) *Carbon {
	t.Helper()
	NeedsPeer(t, "carbon-cache")
	return NewCarbonWith(t, CarbonOptions{})
}

// NewCarbonWith is StartCarbonWith for tests: it fails t on error and
// stops carbon-cache when the test ends.
func NewCarbonWith(t testing.TB, opts CarbonOptions) *Carbon {
	t.Helper()
	NeedsPeer(t, "carbon-cache")
	c, err := StartCarbonWith(context.Background(), opts)
	return stopAtEnd(t, c, err)
}

func startCarbonOnce(ctx context.Context, bin, fetch string, opts CarbonOptions) (c *Carbon, err error) {
	dir, err := os.MkdirTemp("", "hm")
	if err != nil {
		return nil, fmt.Errorf("carbon temp dir: %w", err)
	}
	c = &Carbon{Dir: dir, WhisperDir: filepath.Join(dir, "whisper"), Instance: opts.Instance, fetch: fetch}
	defer func() {
		if err != nil {
			_ = c.Close()
		}
	}()
	conf, err := c.writeConfig()
	if err != nil {
		return c, err
	}
	pidfile := filepath.Join(dir, "carbon.pid")
	logdir := filepath.Join(dir, "log")
	args := []string{"--config=" + conf, "--pidfile=" + pidfile, "--logdir=" + logdir}
	if c.Instance != "" {
		args = append(args, "--instance="+c.Instance)
	}
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, append(args, "start")...)
	cmd.Dir = dir
	cmd.Stdout = &out
	cmd.Stderr = &out
	cmd.Env = append(os.Environ(), "GRAPHITE_ROOT="+dir, "GRAPHITE_STORAGE_DIR="+dir)
	if err := cmd.Run(); err != nil {
		return c, fmt.Errorf("carbon-cache %s start: %w: %s", strings.Join(args, " "), err, tail(out.Bytes(), 2000))
	}
	if c.PID, err = readPIDFile(ctx, pidfile); err != nil {
		return c, fmt.Errorf("carbon-cache --config=%s: %w: %s", conf, err, tail(out.Bytes(), 2000))
	}
	if err := c.waitReady(ctx, logdir); err != nil {
		return c, err
	}
	return c, nil
}

func (c *Carbon) writeConfig() (string, error) {
	tcpPort, err := freePort()
	if err != nil {
		return "", err
	}
	udpPort, err := freeUDPPort()
	if err != nil {
		return "", err
	}
	other, err := freePorts(2)
	if err != nil {
		return "", err
	}
	c.TCPAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(tcpPort))
	c.UDPAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(udpPort))
	c.PickleAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(other[0]))
	c.CacheQueryAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(other[1]))
	conf := fmt.Sprintf(`[cache]
STORAGE_DIR = %[1]s
LOCAL_DATA_DIR = %[2]s
WHITELISTS_DIR = %[1]s/lists
CONF_DIR = %[1]s
LOG_DIR = %[1]s/log
PID_DIR = %[1]s
DATABASE = whisper
ENABLE_LOGROTATION = False
USER =
MAX_CACHE_SIZE = inf
MAX_UPDATES_PER_SECOND = inf
MAX_CREATES_PER_MINUTE = inf
MIN_TIMESTAMP_RESOLUTION = 1
CARBON_METRIC_INTERVAL = 0
TAG_HASH_FILENAMES = False
LINE_RECEIVER_INTERFACE = 127.0.0.1
LINE_RECEIVER_PORT = %[3]d
ENABLE_UDP_LISTENER = True
UDP_RECEIVER_INTERFACE = 127.0.0.1
UDP_RECEIVER_PORT = %[4]d
PICKLE_RECEIVER_INTERFACE = 127.0.0.1
PICKLE_RECEIVER_PORT = %[5]d
CACHE_QUERY_INTERFACE = 127.0.0.1
CACHE_QUERY_PORT = %[6]d
USE_FLOW_CONTROL = True
LOG_UPDATES = False
LOG_CREATES = False
LOG_LISTENER_CONNECTIONS = False
CACHE_WRITE_STRATEGY = sorted
WHISPER_AUTOFLUSH = False
WHISPER_FALLOCATE_CREATE = True
`, c.Dir, c.WhisperDir, tcpPort, udpPort, other[0], other[1])
	schemas := "[everything]\npattern = .*\nretentions = 1s:1h\n"
	aggregation := "[default]\npattern = .*\nxFilesFactor = 0\naggregationMethod = average\n"
	files := map[string]string{
		"carbon.conf":              conf,
		"storage-schemas.conf":     schemas,
		"storage-aggregation.conf": aggregation,
	}
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(c.Dir, name), []byte(text), 0o644); err != nil {
			return "", fmt.Errorf("writing carbon %s: %w", name, err)
		}
	}
	return filepath.Join(c.Dir, "carbon.conf"), nil
}

// waitReady polls the TCP line receiver until it accepts.
func (c *Carbon) waitReady(ctx context.Context, logdir string) error {
	for {
		conn, err := net.DialTimeout("tcp", c.TCPAddr, time.Second)
		if err == nil {
			conn.Close()
			return nil
		}
		if !processAlive(c.PID) {
			return fmt.Errorf("carbon-cache pid %d exited before %s accepted: %s", c.PID, c.TCPAddr, c.logTail(logdir))
		}
		if err := sleepCtx(ctx, 50*time.Millisecond); err != nil {
			return fmt.Errorf("waiting for carbon-cache on %s: %w: %s", c.TCPAddr, err, c.logTail(logdir))
		}
	}
}

func (c *Carbon) logTail(logdir string) string {
	return fileTail(filepath.Join(logdir, "console.log"))
}

// File is the whisper file carbon stores path in: "a.b.c" is
// WhisperDir/a/b/c.wsp; a tagged path "name;k=v" (tags in any order) is
// WhisperDir/_tagged/HHH/HHH/name;k=v.wsp with dots written "_DOT_".
func (c *Carbon) File(path string) string {
	if !strings.Contains(path, ";") {
		return filepath.Join(c.WhisperDir, filepath.FromSlash(strings.ReplaceAll(strings.TrimLeft(path, "."), ".", "/"))+".wsp")
	}
	path = normaliseTagged(path)
	sum := sha256.Sum256([]byte(path))
	h := hex.EncodeToString(sum[:])
	return filepath.Join(c.WhisperDir, "_tagged", h[0:3], h[3:6], strings.ReplaceAll(path, ".", "_DOT_")+".wsp")
}

// normaliseTagged sorts a tagged path's tags by name, as carbon does before
// storing it.
func normaliseTagged(path string) string {
	parts := strings.Split(path, ";")
	tags := parts[1:]
	sort.Strings(tags)
	return parts[0] + ";" + strings.Join(tags, ";")
}

// Paths lists every metric path that has a whisper file, sorted.
func (c *Carbon) Paths() ([]string, error) {
	var paths []string
	err := filepath.WalkDir(c.WhisperDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if d.IsDir() || !strings.HasSuffix(p, ".wsp") {
			return nil
		}
		rel, err := filepath.Rel(c.WhisperDir, strings.TrimSuffix(p, ".wsp"))
		if err != nil {
			return err
		}
		paths = append(paths, metricPath(rel))
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("listing carbon whisper files in %s: %w", c.WhisperDir, err)
	}
	sort.Strings(paths)
	return paths, nil
}

// metricPath turns a whisper file's path relative to WhisperDir, without
// ".wsp", back into its metric path (the inverse of File).
func metricPath(rel string) string {
	rel = filepath.ToSlash(rel)
	if strings.HasPrefix(rel, "_tagged/") {
		parts := strings.SplitN(rel, "/", 4)
		return strings.ReplaceAll(parts[len(parts)-1], "_DOT_", ".")
	}
	return strings.ReplaceAll(rel, "/", ".")
}

// Points returns the non-empty points of path over the last hour, oldest
// first, read with whisper-fetch. A path with no file yet is an error
// wrapping fs.ErrNotExist.
func (c *Carbon) Points(path string) ([]Point, error) {
	file := c.File(path)
	if _, err := os.Stat(file); err != nil {
		return nil, fmt.Errorf("carbon metric %s: %w", path, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	from := time.Now().Add(-time.Hour + time.Second).Unix()
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, c.fetch, "--from="+strconv.FormatInt(from, 10), file)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("whisper-fetch %s: %w: %s", file, err, tail(stderr.Bytes(), 500))
	}
	return parseWhisperFetch(out)
}

// parseWhisperFetch reads whisper-fetch's "TIME\tVALUE" lines, skipping
// "None" values.
func parseWhisperFetch(out []byte) ([]Point, error) {
	var points []Point
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) != 2 || f[1] == "None" {
			continue
		}
		ts, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("whisper-fetch line %q: %w", line, err)
		}
		v, err := strconv.ParseFloat(f[1], 64)
		if err != nil {
			return nil, fmt.Errorf("whisper-fetch line %q: %w", line, err)
		}
		points = append(points, Point{Time: ts, Value: v})
	}
	return points, nil
}

// WaitPoints polls path until it has at least one point satisfying ok
// (nil: any point) and returns all its points, or fails when ctx ends
// (one minute when ctx has no deadline). Carbon writes asynchronously.
func (c *Carbon) WaitPoints(ctx context.Context, path string, ok func(Point) bool) ([]Point, error) {
	ctx, cancel := withDefaultTimeout(ctx, time.Minute)
	defer cancel()
	var (
		points  []Point
		lastErr error
	)
	for {
		points, lastErr = c.Points(path)
		if lastErr == nil {
			for _, p := range points {
				if ok == nil || ok(p) {
					return points, nil
				}
			}
		}
		if err := sleepCtx(ctx, 100*time.Millisecond); err != nil {
			if lastErr != nil {
				return nil, fmt.Errorf("waiting for carbon metric %s: %w (last: %v)", path, err, lastErr)
			}
			return points, fmt.Errorf("waiting for carbon metric %s: %w (points so far: %v)", path, err, points)
		}
	}
}

// Close stops carbon-cache by its pid, waits for it to exit and removes
// Dir. It is safe to call more than once.
func (c *Carbon) Close() error {
	if c.closed {
		return nil
	}
	c.closed = true
	var errs []error
	if c.PID > 0 {
		if err := stopProcess(c.PID, 15*time.Second); err != nil {
			errs = append(errs, fmt.Errorf("carbon-cache: %w", err))
		}
	}
	if c.Dir != "" {
		if err := os.RemoveAll(c.Dir); err != nil {
			errs = append(errs, fmt.Errorf("removing carbon dir: %w", err))
		}
	}
	return errors.Join(errs...)
}

// allPointsScript prints "FILE\tTIME\tVALUE" for every non-empty point of
// the last hour of every whisper file under argv[1], with the whisper module.
const allPointsScript = `
import os, sys, time, whisper
root = sys.argv[1]
now = int(time.time())
for d, _, files in os.walk(root):
    for f in sorted(files):
        if not f.endswith(".wsp"):
            continue
        p = os.path.join(d, f)
        (start, end, step), values = whisper.fetch(p, now - 3599, now)
        rel = os.path.relpath(p, root)[:-4]
        for i, v in enumerate(values):
            if v is not None:
                sys.stdout.write("%s\t%d\t%r\n" % (rel, start + i * step, v))
`

// All returns the non-empty points of the last hour of every metric, by
// path, read with one python3 run of the whisper module: cheaper than
// Points per path when checking hundreds of metrics.
func (c *Carbon) All() (map[string][]Point, error) {
	python, err := c.whisperPython()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, python, "-c", allPointsScript, c.WhisperDir)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("reading whisper files in %s: %w: %s", c.WhisperDir, err, tail(stderr.Bytes(), 500))
	}
	all := make(map[string][]Point)
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Split(line, "\t")
		if len(f) != 3 {
			continue
		}
		points, err := parseWhisperFetch([]byte(f[1] + "\t" + f[2]))
		if err != nil {
			return nil, err
		}
		path := metricPath(f[0])
		all[path] = append(all[path], points...)
	}
	return all, nil
}

// WaitAll polls All until ok accepts what carbon holds, and returns it, or
// fails when ctx ends (one minute when ctx has no deadline).
func (c *Carbon) WaitAll(ctx context.Context, ok func(map[string][]Point) bool) (map[string][]Point, error) {
	ctx, cancel := withDefaultTimeout(ctx, time.Minute)
	defer cancel()
	for {
		all, err := c.All()
		if err == nil && ok(all) {
			return all, nil
		}
		if serr := sleepCtx(ctx, 200*time.Millisecond); serr != nil {
			if err != nil {
				return nil, fmt.Errorf("waiting for carbon metrics in %s: %w (last: %v)", c.WhisperDir, serr, err)
			}
			return all, fmt.Errorf("waiting for carbon metrics in %s: %w (%d paths so far)", c.WhisperDir, serr, len(all))
		}
	}
}

// whisperPython is the interpreter whisper-fetch runs with (its #! line),
// which has the whisper module: a python3 earlier in PATH may not.
func (c *Carbon) whisperPython() (string, error) {
	data, err := os.ReadFile(c.fetch)
	if err != nil {
		return "", fmt.Errorf("reading %s: %w", c.fetch, err)
	}
	first, _, _ := strings.Cut(string(data), "\n")
	if f := strings.Fields(strings.TrimPrefix(first, "#!")); strings.HasPrefix(first, "#!") && len(f) > 0 && !strings.HasSuffix(f[0], "/env") {
		return f[0], nil
	}
	return findProgram("python3", "apt-get install python3-whisper")
}
