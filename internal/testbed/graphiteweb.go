package testbed

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// GraphiteWeb is a running graphite-web (Debian's graphite-web package)
// reading one Carbon's whisper files, and its cache through the cache
// query port, so what carbon has not written yet is rendered too. It runs
// Django's server (`graphite-manage runserver`) with settings of its own
// in a temp dir: nothing under /etc/graphite or /var/lib/graphite is
// read or written.
type GraphiteWeb struct {
	Dir string
	URL string // "http://127.0.0.1:PORT"

	cmd    *exec.Cmd
	done   chan struct{}
	client *http.Client
	closed bool
}

// Series is one series of a render answer (format=json).
type Series struct {
	Target     string        `json:"target"`
	Datapoints [][2]*float64 `json:"datapoints"` // [value or null, unix time]
}

// Values returns the series' non-null values, oldest first.
func (s Series) Values() []float64 {
	var vs []float64
	for _, p := range s.Datapoints {
		if p[0] != nil {
			vs = append(vs, *p[0])
		}
	}
	return vs
}

// Last returns the series' last non-null value, and false when it has none.
func (s Series) Last() (float64, bool) {
	vs := s.Values()
	if len(vs) == 0 {
		return 0, false
	}
	return vs[len(vs)-1], true
}

// FindResult is one node of a /metrics/find answer.
type FindResult struct {
	Text       string `json:"text"`
	ID         string `json:"id"`
	Leaf       int    `json:"leaf"`
	Expandable int    `json:"expandable"`
}

const graphiteWebStartTimeout = time.Minute

// StartGraphiteWeb writes graphite-web's settings for c, creates its
// database (`graphite-manage migrate`) and starts `graphite-manage
// runserver` on a free loopback port, returning once it answers.
func StartGraphiteWeb(ctx context.Context, c *Carbon) (*GraphiteWeb, error) {
	bin, err := findProgram("graphite-manage", "apt-get install graphite-web")
	if err != nil {
		return nil, err
	}
	ctx, cancel := withDefaultTimeout(ctx, graphiteWebStartTimeout)
	defer cancel()
	return retryStart(ctx, 3, anyError, func() (*GraphiteWeb, error) { return startGraphiteWebOnce(ctx, bin, c) })
}

// NewGraphiteWeb is StartGraphiteWeb for tests: it fails t on error and
// stops graphite-web when the test ends.
func NewGraphiteWeb(t testing.TB, c *Carbon) *GraphiteWeb {
	t.Helper()
	NeedsPeer(t, "graphite-web")
	g, err := StartGraphiteWeb(context.Background(), c)
	return stopAtEnd(t, g, err)
}

// graphiteWebSettings is the settings module graphite-web imports
// (GRAPHITE_SETTINGS_MODULE): %[1]s its dir, %[2]s carbon's whisper dir,
// %[3]s carbon's cache query address.
const graphiteWebSettings = `SECRET_KEY = 'hap-monitor test bed'
DEFAULT_AUTO_FIELD = 'django.db.models.AutoField'
STORAGE_DIR = %[1]q
LOG_DIR = %[1]q
INDEX_FILE = %[1]q + '/index'
CONF_DIR = %[1]q
WHISPER_DIR = %[2]q
STANDARD_DIRS = [%[2]q]
CARBONLINK_HOSTS = [%[3]q]
CARBONLINK_TIMEOUT = 5.0
DEFAULT_XFILES_FACTOR = 0
LOG_ROTATION = False
LOG_RENDERING_PERFORMANCE = False
LOG_CACHE_PERFORMANCE = False
DEBUG = False
DATABASES = {'default': {'NAME': %[1]q + '/graphite.db', 'ENGINE': 'django.db.backends.sqlite3'}}
`

func startGraphiteWebOnce(ctx context.Context, bin string, c *Carbon) (g *GraphiteWeb, err error) {
	dir, err := os.MkdirTemp("", "hm")
	if err != nil {
		return nil, fmt.Errorf("graphite-web temp dir: %w", err)
	}
	g = &GraphiteWeb{Dir: dir, client: &http.Client{Timeout: 30 * time.Second}}
	defer func() {
		if err != nil {
			_ = g.Close()
		}
	}()
	// CARBONLINK_HOSTS entries are "HOST:PORT:INSTANCE"; carbon-cache's
	// instance name is "a" when it is started without --instance.
	instance := c.Instance
	if instance == "" {
		instance = "a"
	}
	settings := fmt.Sprintf(graphiteWebSettings, dir, c.WhisperDir, c.CacheQueryAddr+":"+instance)
	if err := os.WriteFile(filepath.Join(dir, "hm_graphite_settings.py"), []byte(settings), 0o644); err != nil {
		return g, fmt.Errorf("writing graphite-web settings: %w", err)
	}
	env := append(os.Environ(), "PYTHONPATH="+dir, "GRAPHITE_SETTINGS_MODULE=hm_graphite_settings",
		"DJANGO_SETTINGS_MODULE=graphite.settings", "PYTHONDONTWRITEBYTECODE=1")

	var out bytes.Buffer
	migrate := exec.CommandContext(ctx, bin, "migrate", "--run-syncdb", "--verbosity", "0")
	migrate.Dir, migrate.Env, migrate.Stdout, migrate.Stderr = dir, env, &out, &out
	if err := migrate.Run(); err != nil {
		return g, fmt.Errorf("graphite-manage migrate: %w: %s", err, tail(out.Bytes(), 2000))
	}

	port, err := freePort()
	if err != nil {
		return g, err
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	g.URL = "http://" + addr
	logf, err := os.Create(filepath.Join(dir, "runserver.log"))
	if err != nil {
		return g, fmt.Errorf("graphite-web log: %w", err)
	}
	g.cmd = exec.Command(bin, "runserver", "--noreload", addr)
	g.cmd.Dir, g.cmd.Env, g.cmd.Stdout, g.cmd.Stderr = dir, env, logf, logf
	if err := g.cmd.Start(); err != nil {
		logf.Close()
		return g, fmt.Errorf("graphite-manage runserver %s: %w", addr, err)
	}
	g.done = make(chan struct{})
	go func() {
		_ = g.cmd.Wait()
		logf.Close()
		close(g.done)
	}()
	return g, g.waitReady(ctx)
}

// waitReady polls /version until graphite-web answers.
func (g *GraphiteWeb) waitReady(ctx context.Context) error {
	for {
		resp, err := g.client.Get(g.URL + "/version")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-g.done:
			return fmt.Errorf("graphite-web exited before %s answered: %s", g.URL, g.logTail())
		default:
		}
		if err := sleepCtx(ctx, 100*time.Millisecond); err != nil {
			return fmt.Errorf("waiting for graphite-web on %s: %w: %s", g.URL, err, g.logTail())
		}
	}
}

func (g *GraphiteWeb) logTail() string { return fileTail(filepath.Join(g.Dir, "runserver.log")) }

// fetch asks graphite-web for path with query q and returns the answer's
// body, failing on a status other than 200.
func (g *GraphiteWeb) fetch(ctx context.Context, path string, q url.Values) ([]byte, http.Header, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, g.URL+path+"?"+q.Encode(), nil)
	if err != nil {
		return nil, nil, err
	}
	resp, err := g.client.Do(req)
	if err != nil {
		return nil, nil, fmt.Errorf("graphite-web %s: %w", path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, nil, fmt.Errorf("graphite-web %s: %w", path, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, nil, fmt.Errorf("graphite-web %s?%s: %s: %s", path, q.Encode(), resp.Status, errorLine(body))
	}
	return body, resp.Header, nil
}

// get is fetch, decoding the JSON answer into v.
func (g *GraphiteWeb) get(ctx context.Context, path string, q url.Values, v any) error {
	body, _, err := g.fetch(ctx, path, q)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("graphite-web %s answer: %w: %s", path, err, tail(body, 300))
	}
	return nil
}

// errorLine is the exception line of graphite-web's error page (the last
// line of its traceback), or the body's end.
func errorLine(body []byte) string {
	text := string(body)
	if i := strings.LastIndex(text, "</pre>"); i >= 0 {
		lines := strings.Split(strings.TrimSpace(text[:i]), "\n")
		return strings.TrimSpace(lines[len(lines)-1])
	}
	return tail(body, 300)
}

// Render evaluates target over the last `from` (a Graphite time, "-5min")
// with the render API, as Grafana's Graphite data source does.
func (g *GraphiteWeb) Render(ctx context.Context, target, from string) ([]Series, error) {
	var series []Series
	q := url.Values{"target": {target}, "from": {from}, "until": {"now"}, "format": {"json"}}
	if err := g.get(ctx, "/render", q, &series); err != nil {
		return nil, err
	}
	return series, nil
}

// RenderPNG renders targets as one graph (format=png), with the render
// API's own options in opts (title, width, height, ...).
func (g *GraphiteWeb) RenderPNG(ctx context.Context, targets []string, opts url.Values) ([]byte, error) {
	q := url.Values{"format": {"png"}}
	for k, v := range opts {
		q[k] = v
	}
	q["target"] = targets
	body, header, err := g.fetch(ctx, "/render", q)
	if err != nil {
		return nil, err
	}
	if ct := header.Get("Content-Type"); ct != "image/png" {
		return nil, fmt.Errorf("graphite-web render png of %v: %s, not a PNG: %s", targets, ct, tail(body, 300))
	}
	return body, nil
}

// Find lists the nodes that match query (/metrics/find), as Grafana's
// default variable query does.
func (g *GraphiteWeb) Find(ctx context.Context, query string) ([]FindResult, error) {
	var found []FindResult
	if err := g.get(ctx, "/metrics/find", url.Values{"query": {query}}, &found); err != nil {
		return nil, err
	}
	return found, nil
}

// Expand lists the full paths that match query (/metrics/expand), as
// Grafana's expand(...) variable query does.
func (g *GraphiteWeb) Expand(ctx context.Context, query string) ([]string, error) {
	var answer struct {
		Results []string `json:"results"`
	}
	if err := g.get(ctx, "/metrics/expand", url.Values{"query": {query}}, &answer); err != nil {
		return nil, err
	}
	return answer.Results, nil
}

// Close stops graphite-web and removes its dir.
func (g *GraphiteWeb) Close() error {
	if g.closed {
		return nil
	}
	g.closed = true
	var errs []error
	if g.cmd != nil && g.cmd.Process != nil {
		_ = g.cmd.Process.Signal(os.Interrupt)
		select {
		case <-g.done:
		case <-time.After(10 * time.Second):
			_ = g.cmd.Process.Kill()
			<-g.done
		}
	}
	if g.Dir != "" {
		if err := os.RemoveAll(g.Dir); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("removing graphite-web dir: %w", err))
		}
	}
	return errors.Join(errs...)
}
