package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// sample is one run of one case.
type sample struct {
	Wall       time.Duration
	CPU        time.Duration // user+system of the measured process
	PeakRSS    int64         // bytes
	Lines      int64         // lines delivered or printed
	HAProxyCPU time.Duration
	Err        error
	// Per, when above 1, says the figures are per gather of a run of Per
	// gathers; Span is then the run's whole wall time.
	Per  int
	Span time.Duration
}

// runCommand runs a child process to completion and measures it. Stdout
// lines are counted when countStdout is set.
func runCommand(ctx context.Context, countStdout bool, name string, args ...string) sample {
	cmd := exec.CommandContext(ctx, name, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	lc := &lineCounter{}
	if countStdout {
		cmd.Stdout = lc
	} else {
		cmd.Stdout = io.Discard
	}
	start := time.Now()
	err := cmd.Run()
	s := sample{Wall: time.Since(start), Lines: lc.n}
	if ps := cmd.ProcessState; ps != nil {
		if ru, ok := ps.SysUsage().(*syscall.Rusage); ok {
			s.CPU = tv(ru.Utime) + tv(ru.Stime)
			s.PeakRSS = ru.Maxrss * 1024
		}
	}
	if err != nil {
		s.Err = fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, lastLine(stderr.String()))
	}
	return s
}

// readToEOF is the floor: connect, write "show stat", read the answer to
// EOF and discard it. Its CPU is this thread's, measured around the read.
func readToEOF(ctx context.Context, network, addr string) sample {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	before := threadCPU()
	start := time.Now()
	var d net.Dialer
	c, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return sample{Err: err}
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	}
	if _, err := io.WriteString(c, "show stat\n"); err != nil {
		return sample{Err: err}
	}
	lc := &lineCounter{}
	buf := make([]byte, 64*1024)
	_, err = io.CopyBuffer(lc, c, buf)
	return sample{Wall: time.Since(start), CPU: threadCPU() - before, Lines: lc.n, Err: err}
}

func threadCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(1 /* RUSAGE_THREAD */, &ru); err != nil {
		return 0
	}
	return tv(ru.Utime) + tv(ru.Stime)
}

// processCPU reads a process's user+system time from /proc (clock ticks of
// 10 ms, Linux's USER_HZ).
func processCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name may hold spaces: fields start after the last ')'.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("unexpected /proc/%d/stat", pid)
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("unexpected /proc/%d/stat", pid)
	}
	// After ")": state(3) ... utime is field 14, stime 15 of the whole line.
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("unexpected /proc/%d/stat", pid)
	}
	return time.Duration(ut+st) * 10 * time.Millisecond, nil
}

func tv(t syscall.Timeval) time.Duration {
	return time.Duration(t.Sec)*time.Second + time.Duration(t.Usec)*time.Microsecond
}

type lineCounter struct{ n int64 }

func (l *lineCounter) Write(p []byte) (int, error) {
	l.n += int64(bytes.Count(p, []byte{'\n'}))
	return len(p), nil
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		s = s[i+1:]
	}
	return s
}
