package shim

import (
	"bufio"
	"compress/gzip"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/influxdata/telegraf"

	"github.com/hap-monitor/hap-monitor/plugins/common/config"
	"github.com/hap-monitor/hap-monitor/plugins/common/logger"
	_ "github.com/hap-monitor/hap-monitor/plugins/inputs/haproxy"
	_ "github.com/hap-monitor/hap-monitor/plugins/outputs/graphite_statsd"
)

// recordedAnswer is a real HAProxy 2.6.12's answer to "show info;show
// stat" with 1000 backends x 10 servers (12,004 rows, about 3 MB).
const recordedAnswer = "../../inputs/haproxy/testdata/haproxy-2.6.12-1000x10.txt.gz"

// serveRecorded serves the recorded answer on a unix socket, as fast as
// the reader takes it: what is measured is hap-monitor, not HAProxy.
func serveRecorded(b *testing.B) string {
	b.Helper()
	f, err := os.Open(recordedAnswer)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		b.Fatal(err)
	}
	answer, err := io.ReadAll(zr)
	if err != nil {
		b.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "hm")
	if err != nil {
		b.Fatal(err)
	}
	path := filepath.Join(dir, "stats.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		b.Fatal(err)
	}
	var wg sync.WaitGroup
	b.Cleanup(func() { ln.Close(); wg.Wait(); os.RemoveAll(dir) })
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				if _, err := bufio.NewReader(c).ReadString('\n'); err != nil {
					return
				}
				_, _ = c.Write(answer)
			})
		}
	})
	return path
}

// discardSink is a Graphite receiver that reads and counts lines.
func discardSink(b *testing.B) string {
	b.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	var wg sync.WaitGroup
	b.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() { _, _ = io.Copy(io.Discard, c); _ = c.Close() })
		}
	})
	return ln.Addr().String()
}

func benchConfig(b *testing.B, text string) *config.Config {
	b.Helper()
	cfg, err := config.Parse([]byte(text), "bench.conf", logger.NewSink(io.Discard, telegraf.Error))
	if err != nil {
		b.Fatal(err)
	}
	return cfg
}

// BenchmarkGatherOnce1000x10 is -test on the recorded answer: gather,
// tag and encode line protocol.
func BenchmarkGatherOnce1000x10(b *testing.B) {
	sock := serveRecorded(b)
	cfg := benchConfig(b, fmt.Sprintf("[agent]\n  hostname = \"bench\"\n[[inputs.haproxy]]\n  servers = [%q]\n", sock))
	logs := logger.NewSink(io.Discard, telegraf.Error)
	b.ReportAllocs()
	for b.Loop() {
		if err := GatherOnce(cfg, io.Discard, logs); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPipelineOnce1000x10 is -once on the recorded answer: gather and
// deliver every numeric field to a Graphite receiver on loopback.
func BenchmarkPipelineOnce1000x10(b *testing.B) {
	sock := serveRecorded(b)
	sink := discardSink(b)
	logs := logger.NewSink(io.Discard, telegraf.Error)
	b.ReportAllocs()
	for b.Loop() {
		cfg := benchConfig(b, fmt.Sprintf("[agent]\n  hostname = \"bench\"\n[[inputs.haproxy]]\n  servers = [%q]\n"+
			"[[outputs.graphite_statsd]]\n  servers = [%q]\n  prefix = \"bench\"\n", sock, sink))
		if err := RunPipeline(b.Context(), cfg, PipelineOptions{Once: true}, logs); err != nil {
			b.Fatal(err)
		}
	}
}
