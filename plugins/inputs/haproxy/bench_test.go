package haproxy

import (
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/hap-monitor/hap-monitor/internal/testbed"
	"github.com/hap-monitor/hap-monitor/plugins/common/buffer"
	"github.com/hap-monitor/hap-monitor/plugins/common/config"
	"github.com/hap-monitor/hap-monitor/plugins/common/lineproto"
	"github.com/hap-monitor/hap-monitor/plugins/common/shim"
)

// The recorded answer of a 1000 backends x 10 servers HAProxy 2.6.12
// (health checks on): 12,000 rows, plus the frontend and backend rows of
// the two stats listeners.
const (
	largeAnswer = "haproxy-2.6.12-1000x10.txt.gz"
	largeRows   = 12004
)

func readLarge(b testing.TB) []byte {
	b.Helper()
	f, err := os.Open("testdata/" + largeAnswer)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		b.Fatal(err)
	}
	data, err := io.ReadAll(zr)
	if err != nil {
		b.Fatal(err)
	}
	return data
}

// BenchmarkParseStat parses the recorded answer into metrics.
func BenchmarkParseStat(b *testing.B) {
	data := readLarge(b)
	h := newPlugin(b, &HAProxy{Servers: []string{testSocketTag}})
	acc := &shim.Accumulator{}
	var ms0, ms1 runtime.MemStats
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	runtime.ReadMemStats(&ms0)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		g := &serverGather{h: h, ep: endpoint{kind: kindUnix, tag: testSocketTag}, acc: acc, ts: time.Now()}
		if err := g.readSocket(newLineReader(bytes.NewReader(data))); err != nil {
			b.Fatal(err)
		}
		if ms, _ := acc.Drain(); len(ms) != largeRows+1 {
			b.Fatalf("%d metrics, want %d", len(ms), largeRows+1)
		}
	}
	b.StopTimer()
	runtime.ReadMemStats(&ms1)
	rows := float64(b.N) * largeRows
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/rows, "ns/row")
	b.ReportMetric(float64(ms1.Mallocs-ms0.Mallocs)/rows, "allocs/row")
}

// benchHAProxy is the real 1000x10 HAProxy shared by BenchmarkReadToEOF
// and BenchmarkGather, started on first use and stopped by TestMain.
var benchHAProxy struct {
	once sync.Once
	hp   *testbed.HAProxy
	err  error
}

func largeHAProxy(b *testing.B) *testbed.HAProxy {
	b.Helper()
	benchHAProxy.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		benchHAProxy.hp, benchHAProxy.err = testbed.StartHAProxy(ctx, testbed.HAProxyOptions{Backends: 1000, ServersPerBackend: 10, Checks: true})
	})
	if benchHAProxy.err != nil {
		b.Fatal(benchHAProxy.err)
	}
	return benchHAProxy.hp
}

func TestMain(m *testing.M) {
	code := m.Run()
	if benchHAProxy.hp != nil {
		benchHAProxy.hp.Close() //nolint:errcheck // exiting anyway
	}
	os.Exit(code)
}

// BenchmarkReadToEOF is the floor: send the same commands to the real
// HAProxy and read its answer to EOF, parsing nothing.
func BenchmarkReadToEOF(b *testing.B) {
	hp := largeHAProxy(b)
	cmd, _ := newPlugin(b, &HAProxy{Servers: []string{hp.UserSocket}}).commandsFor(hp.UserSocket)
	var n int64
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		conn, err := net.Dial("unix", hp.UserSocket)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := io.WriteString(conn, cmd); err != nil {
			b.Fatal(err)
		}
		if n, err = io.Copy(io.Discard, conn); err != nil {
			b.Fatal(err)
		}
		conn.Close()
	}
	b.StopTimer()
	b.SetBytes(n)
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/(float64(b.N)*largeRows), "ns/row")
}

// BenchmarkGather is the whole gather of the same HAProxy into metrics.
func BenchmarkGather(b *testing.B) {
	hp := largeHAProxy(b)
	h := newPlugin(b, &HAProxy{Servers: []string{hp.UserSocket}, Timeout: config.Duration(time.Minute)})
	acc := &shim.Accumulator{}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := h.Gather(acc); err != nil {
			b.Fatal(err)
		}
		ms, errs := acc.Drain()
		if len(errs) > 0 || len(ms) != largeRows+1 {
			b.Fatalf("%d metrics, errors %v", len(ms), errs)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/(float64(b.N)*largeRows), "ns/row")
}

// BenchmarkSpoolGather writes one gather of the recorded 1000x10 answer
// (every field) to a spool directory, as the output does when Graphite
// is down: compressed, as the spool writes it, and as plain line
// protocol, as it wrote it before; bytes/gather is the file's size.
func BenchmarkSpoolGather(b *testing.B) {
	h := newPlugin(b, &HAProxy{Servers: []string{testSocketTag}})
	acc := &shim.Accumulator{}
	g := &serverGather{h: h, ep: endpoint{kind: kindUnix, tag: testSocketTag}, acc: acc, ts: time.Now()}
	if err := g.readSocket(newLineReader(bytes.NewReader(readLarge(b)))); err != nil {
		b.Fatal(err)
	}
	ms, errs := acc.Drain()
	if len(errs) > 0 || len(ms) != largeRows+1 {
		b.Fatalf("%d metrics, %v", len(ms), errs)
	}
	b.Run("gzip", func(b *testing.B) {
		dir := b.TempDir()
		s, err := buffer.NewSpool(dir, "bench", 0, h.Log)
		if err != nil {
			b.Fatal(err)
		}
		var size int64
		for i := 0; i < b.N; i++ {
			_, path, _, err := s.Write(ms)
			if err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			info, err := os.Stat(path)
			if err != nil {
				b.Fatal(err)
			}
			size = info.Size()
			os.Remove(path)
			b.StartTimer()
		}
		b.ReportMetric(float64(size), "bytes/gather")
	})
	b.Run("plain", func(b *testing.B) {
		path := filepath.Join(b.TempDir(), "bench.lp")
		var size int64
		for i := 0; i < b.N; i++ {
			var data bytes.Buffer
			enc := lineproto.NewEncoder(&data)
			for _, m := range ms {
				enc.Encode(m) //nolint:errcheck // every metric encodes
			}
			if err := enc.Flush(); err != nil {
				b.Fatal(err)
			}
			f, err := os.Create(path)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := f.Write(data.Bytes()); err != nil {
				b.Fatal(err)
			}
			if err := f.Sync(); err != nil {
				b.Fatal(err)
			}
			f.Close()
			size = int64(data.Len())
		}
		b.ReportMetric(float64(size), "bytes/gather")
	})
}
