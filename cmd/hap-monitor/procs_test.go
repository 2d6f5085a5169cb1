package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/hap-monitor/hap-monitor/internal/testbed"
)

// TestGoCodeRunsOnOneCPU: the binary runs Go code on one CPU unless the
// GOMAXPROCS environment variable says otherwise, says so in the debug
// log (or warns of a GOMAXPROCS Go ignores), and delivers every line
// either way.
func TestGoCodeRunsOnOneCPU(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	bin := hapMonitor(t)
	sock := testbed.NewFakeSocket(t, testbed.AnswerCommands(recordedAnswer(t)))
	sink := testbed.NewGraphiteSink(t, "127.0.0.1:0", testbed.SinkOptions{})
	conf := writeFile(t, t.TempDir(), "once.conf", fmt.Sprintf(
		"[[inputs.haproxy]]\n  servers = [%q]\n[[outputs.graphite_statsd]]\n  servers = [%q]\n  prefix = \"procs\"\n", sock.Path, sink.Addr))
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "GOMAXPROCS=") {
			env = append(env, kv)
		}
	}
	cases := []struct {
		name string
		env  []string
		want string
	}{
		{"default", env, "D! [agent] Go code runs on 1 CPU at a time (the default; the GOMAXPROCS environment variable sets it)"},
		{"GOMAXPROCS=2", append(env[:len(env):len(env)], "GOMAXPROCS=2"), "D! [agent] Go code runs on 2 CPUs at a time (GOMAXPROCS=2 in the environment)"},
		{"GOMAXPROCS=one", append(env[:len(env):len(env)], "GOMAXPROCS=one"),
			"W! [agent] GOMAXPROCS=\"one\" in the environment is not a positive number: Go ignores it and runs Go code on "},
	}
	var delivered []int64
	var total int64
	for _, c := range cases {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		cmd := exec.CommandContext(ctx, bin, "-config", conf, "-once", "-debug")
		cmd.Env = c.env
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		err := cmd.Run()
		if err == nil {
			err = sink.Drain(ctx)
		}
		cancel()
		if err != nil {
			t.Fatalf("%s: %v\n%s", c.name, err, stderr.String())
		}
		if !strings.Contains(stderr.String(), c.want) {
			t.Errorf("%s: the log lacks %q:\n%s", c.name, c.want, stderr.String())
		}
		lines, _ := sink.Total()
		delivered = append(delivered, lines-total)
		total = lines
	}
	for i, n := range delivered {
		if n == 0 || n != delivered[0] {
			t.Errorf("%s: %d lines delivered, want %d as by default, not 0", cases[i].name, n, delivered[0])
		}
	}
}
