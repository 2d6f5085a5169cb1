package testbed

import (
	"bufio"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// ShortTempDir returns a new temp dir whose path is short enough for unix
// sockets (/tmp/hmNNNN), removed when the test ends.
func ShortTempDir(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "hm")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// StaleSocket returns the path of a unix socket file nobody listens on, as
// a crashed HAProxy leaves: connecting is refused.
func StaleSocket(t testing.TB) string {
	t.Helper()
	path := filepath.Join(ShortTempDir(t), "stale.sock")
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	l.SetUnlinkOnClose(false)
	_ = l.Close()
	return path
}

// FakeSocket is a unix socket standing in for an HAProxy stats socket: it
// reads the command line of each connection, records it, and lets a
// function answer, in a goroutine per connection.
type FakeSocket struct {
	// Path is the socket's path, in a short temp dir of its own.
	Path string

	dir   string
	l     net.Listener
	serve func(c net.Conn, command string)
	wg    sync.WaitGroup

	mu       sync.Mutex
	commands []string
	conns    map[net.Conn]bool
}

// StartFakeSocket listens on fake.sock in a new short temp dir until
// Close. For each connection it reads one line, the command with its line
// break, records it and calls serve, then closes the connection. A
// command cut by the client's close is recorded without its line break
// and not served.
func StartFakeSocket(serve func(c net.Conn, command string)) (*FakeSocket, error) {
	dir, err := os.MkdirTemp("", "hm")
	if err != nil {
		return nil, err
	}
	path := filepath.Join(dir, "fake.sock")
	l, err := net.Listen("unix", path)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	f := &FakeSocket{Path: path, dir: dir, l: l, serve: serve, conns: map[net.Conn]bool{}}
	f.wg.Add(1)
	go f.accept()
	return f, nil
}

// NewFakeSocket is StartFakeSocket for tests: it fails t on error and
// closes the socket when the test ends.
func NewFakeSocket(t testing.TB, serve func(c net.Conn, command string)) *FakeSocket {
	t.Helper()
	f, err := StartFakeSocket(serve)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.Close() })
	return f
}

func (f *FakeSocket) accept() {
	defer f.wg.Done()
	for {
		c, err := f.l.Accept()
		if err != nil {
			return
		}
		f.mu.Lock()
		f.conns[c] = true
		f.wg.Add(1)
		f.mu.Unlock()
		go func() {
			defer f.wg.Done()
			defer func() {
				c.Close()
				f.mu.Lock()
				delete(f.conns, c)
				f.mu.Unlock()
			}()
			line, err := bufio.NewReader(c).ReadString('\n')
			if line != "" {
				f.mu.Lock()
				f.commands = append(f.commands, line)
				f.mu.Unlock()
			}
			if err == nil {
				f.serve(c, line)
			}
		}()
	}
}

// Commands returns the command lines read so far, in arrival order, each
// with its line break unless the client closed before it.
func (f *FakeSocket) Commands() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.commands)
}

// Close stops listening, closes every open connection (a serve blocked on
// its connection returns), waits for the serve calls and removes the
// socket's dir. It is safe to call more than once.
func (f *FakeSocket) Close() error {
	err := f.l.Close()
	f.mu.Lock()
	for c := range f.conns {
		c.Close()
	}
	f.mu.Unlock()
	f.wg.Wait()
	os.RemoveAll(f.dir)
	return err
}

// AnswerCommands returns a serve function answering a command line as
// HAProxy does from answer, a recorded "show info", "show stat" and, if
// recorded, "show table", split by their empty lines: each command of the
// line in order, "show info" with the first part and its empty line,
// "show table" with the third (an empty line, HAProxy's answer when there
// is no stick table, if none was recorded), "show stat" (whatever its
// arguments) with the second, and any other with a usage text, as an
// HAProxy without that command answers.
func AnswerCommands(answer string) func(c net.Conn, command string) {
	info, stat, _ := strings.Cut(answer, "\n\n")
	tables := "\n"
	if s, t, ok := strings.Cut(stat, "\n\n"); ok && t != "" {
		stat, tables = s+"\n\n", t
	}
	return func(c net.Conn, command string) {
		c.SetDeadline(time.Now().Add(10 * time.Second)) // a fake
		for _, cmd := range strings.Split(strings.TrimSpace(command), ";") {
			part := unknownCommand
			switch {
			case cmd == "show info":
				part = info + "\n\n"
			case cmd == "show table":
				part = tables
			case strings.HasPrefix(cmd, "show stat"):
				part = stat
			}
			if _, err := c.Write([]byte(part)); err != nil {
				return
			}
		}
	}
}

// unknownCommand is HAProxy 2.6's usage text for a command it does not
// have, short.
const unknownCommand = "Unknown command: 'show', but maybe one of the following ones is a better match:\n  help [<command>]                        : list matching or all commands\n\n"
