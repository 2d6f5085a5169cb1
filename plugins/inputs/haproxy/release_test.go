package haproxy

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/influxdata/telegraf"

	"github.com/hap-monitor/hap-monitor/internal/testbed"
	"github.com/hap-monitor/hap-monitor/plugins/common/config"
	"github.com/hap-monitor/hap-monitor/plugins/common/logger"
	"github.com/hap-monitor/hap-monitor/plugins/common/shim"
	_ "github.com/hap-monitor/hap-monitor/plugins/outputs/graphite_statsd"
)

// keepSink is a Graphite receiver that keeps what it reads, each
// connection's bytes in the order the connections came.
type keepSink struct {
	ln      net.Listener
	mu      sync.Mutex
	conns   [][]byte // by order of acceptance
	open    int      // connections accepted and not yet read to their end
	markers int      // marker connections read (see take)
	wg      sync.WaitGroup
}

// sinkMarker is what take's own connection sends.
const sinkMarker = "take marker\n"

func newKeepSink(t *testing.T) *keepSink {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &keepSink{ln: ln}
	t.Cleanup(func() { ln.Close(); s.wg.Wait() })
	s.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			i := len(s.conns)
			s.conns = append(s.conns, nil)
			s.open++
			s.mu.Unlock()
			s.wg.Go(func() {
				defer c.Close()
				b, _ := io.ReadAll(c)
				s.mu.Lock()
				if string(b) == sinkMarker {
					s.markers++
				} else {
					s.conns[i] = b
				}
				s.open--
				s.mu.Unlock()
			})
		}
	})
	return s
}

// take returns what the connections sent since the last take, in the
// order they came, once every one of them has been read to its end. A
// connection of its own goes last (the kernel hands connections over in
// the order they came): once it is read, every one before it has been
// accepted, however late the accepting goroutine ran.
func (s *keepSink) take() string {
	s.mu.Lock()
	want := s.markers + 1
	s.mu.Unlock()
	if c, err := net.Dial("tcp", s.ln.Addr().String()); err == nil {
		_, _ = io.WriteString(c, sinkMarker)
		_ = c.Close()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for end := time.Now().Add(time.Minute); (s.open > 0 || s.markers < want) && time.Now().Before(end); {
		s.mu.Unlock()
		time.Sleep(time.Millisecond)
		s.mu.Lock()
	}
	var out bytes.Buffer
	for _, b := range s.conns {
		out.Write(b)
	}
	s.conns = nil
	return out.String()
}

var timestamps = regexp.MustCompile(`(?m) \d{10,19}$`)

// TestReleasedRowsAreNeverUsedAgain runs every way a gather's metrics go
// out (-test, the execd input, the pipeline to Graphite with one and two
// outputs, filters) on the recorded 1000x10 answer, several gathers each,
// with released arenas poisoned before they serve the next rows, and
// compares what comes out with the same runs where nothing is recycled:
// a metric used after its release would show.
func TestReleasedRowsAreNeverUsedAgain(t *testing.T) {
	if testing.Short() {
		t.Skip("1000x10 gathers")
	}
	data := readLarge(t)
	// Every connection gets the recorded answer, command by command.
	sock := testbed.NewFakeSocket(t, testbed.AnswerCommands(string(data))).Path
	sinkA, sinkB := newKeepSink(t), newKeepSink(t)
	input := fmt.Sprintf("[agent]\n  hostname = \"h\"\n[[inputs.haproxy]]\n  servers = [%q]\n", sock)
	pipeline := input + fmt.Sprintf("[[outputs.graphite_statsd]]\n  servers = [%q]\n  prefix = \"p\"\n", sinkA.ln.Addr())
	two := input + fmt.Sprintf("[[outputs.graphite_statsd]]\n  servers = [%q]\n  fieldexclude = [\"status.*\"]\n"+
		"[[outputs.graphite_statsd]]\n  servers = [%q]\n  namedrop = [\"haproxy_info\"]\n  metric_buffer_limit = 3000\n", sinkA.ln.Addr(), sinkB.ln.Addr())
	filtered := fmt.Sprintf("[agent]\n  hostname = \"h\"\n[[inputs.haproxy]]\n  servers = [%q]\n  [inputs.haproxy.tagpass]\n    type = [\"server\"]\n", sock) +
		fmt.Sprintf("[[outputs.graphite_statsd]]\n  servers = [%q]\n", sinkA.ln.Addr())
	logs := logger.NewSink(io.Discard, telegraf.Error)
	// arenas is how the next runs' haproxy sections handle released rows.
	var arenas arenaOptions
	parse := func(text string) *config.Config {
		cfg, err := config.Parse([]byte(text), "test.conf", logs)
		if err != nil {
			t.Fatal(err)
		}
		for _, in := range cfg.Inputs {
			if h, ok := in.Input.(*HAProxy); ok {
				h.arenas = arenas
			}
		}
		return cfg
	}
	runs := map[string]func() string{
		"-test": func() string {
			var out bytes.Buffer
			for range 2 {
				if err := shim.GatherOnce(parse(input), &out, logs); err != nil {
					t.Fatal(err)
				}
			}
			return out.String()
		},
		"execd input": func() string {
			var out bytes.Buffer
			if err := shim.RunInput(context.Background(), parse(input), shim.InputOptions{}, strings.NewReader("\n\n"), &out, logs); err != nil {
				t.Fatal(err)
			}
			return out.String()
		},
		"pipeline": func() string {
			for range 2 {
				if err := shim.RunPipeline(context.Background(), parse(pipeline), shim.PipelineOptions{Once: true}, logs); err != nil {
					t.Fatal(err)
				}
			}
			return sinkA.take()
		},
		"two outputs, filters and a small buffer": func() string {
			for range 2 {
				if err := shim.RunPipeline(context.Background(), parse(two), shim.PipelineOptions{Once: true}, logs); err != nil {
					t.Fatal(err)
				}
			}
			return sinkA.take() + "\n--\n" + sinkB.take()
		},
		"filtered at the input": func() string {
			if err := shim.RunPipeline(context.Background(), parse(filtered), shim.PipelineOptions{Once: true}, logs); err != nil {
				t.Fatal(err)
			}
			return sinkA.take()
		},
	}
	for name, run := range runs {
		arenas = arenaOptions{keep: true}
		want := timestamps.ReplaceAllString(run(), " T")
		arenas = arenaOptions{poison: true}
		got := timestamps.ReplaceAllString(run(), " T")
		if got != want {
			t.Errorf("%s: %d bytes with recycling, %d without; first difference at byte %d", name, len(got), len(want), firstDiff(got, want))
		}
		if len(want) < 1<<20 {
			t.Errorf("%s: only %d bytes out", name, len(want))
		}
	}
}

func firstDiff(a, b string) int {
	for i := 0; i < min(len(a), len(b)); i++ {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}
