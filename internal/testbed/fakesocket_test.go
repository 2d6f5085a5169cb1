package testbed

import (
	"errors"
	"io"
	"net"
	"slices"
	"syscall"
	"testing"
	"time"
)

func TestFakeSocketRecordsAndAnswers(t *testing.T) {
	f := NewFakeSocket(t, AnswerCommands("info\n\nstat\n\n"))
	ask := func(command string) string {
		c, err := net.Dial("unix", f.Path)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		io.WriteString(c, command) //nolint:errcheck // checked by the answer
		c.(*net.UnixConn).CloseWrite()
		b, err := io.ReadAll(c)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	if got := ask("show info;show stat\n"); got != "info\n\nstat\n\n" {
		t.Errorf("answer %q", got)
	}
	// Without a recorded show table, the answer of an HAProxy without
	// stick tables: an empty line.
	if got := ask("show info;show stat;show table\n"); got != "info\n\nstat\n\n\n" {
		t.Errorf("answer with show table %q", got)
	}
	if got := ask("show info"); got != "" {
		t.Errorf("a command without its line break was answered %q", got)
	}
	if got, want := f.Commands(), []string{"show info;show stat\n", "show info;show stat;show table\n", "show info"}; !slices.Equal(got, want) {
		t.Errorf("Commands() = %q, want %q", got, want)
	}
}

func TestAnswerCommandsRecordedTables(t *testing.T) {
	f := NewFakeSocket(t, AnswerCommands("info\n\nstat\n\n# table: t, type: ip, size:1, used:0\n\n"))
	out, err := SocketCommand(t.Context(), "unix", f.Path, "show stat;show table;show info")
	if err != nil {
		t.Fatal(err)
	}
	if want := "stat\n\n# table: t, type: ip, size:1, used:0\n\ninfo\n\n"; out != want {
		t.Errorf("answer %q, want %q", out, want)
	}
}

func TestFakeSocketCloseEndsABlockedServe(t *testing.T) {
	f := NewFakeSocket(t, func(c net.Conn, _ string) { io.Copy(io.Discard, c) }) //nolint:errcheck // a fake
	c, err := net.Dial("unix", f.Path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "show stat\n") //nolint:errcheck // checked by Commands
	waitFor(t, "the command", func() bool { return len(f.Commands()) == 1 })
	done := make(chan struct{})
	go func() { _ = f.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not end a serve blocked reading its connection")
	}
}

func TestStaleSocketRefuses(t *testing.T) {
	if _, err := net.Dial("unix", StaleSocket(t)); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("dial: %v, want refused", err)
	}
}

func TestUDPSinkAndForwarder(t *testing.T) {
	u := NewUDPSink(t)
	c, err := net.Dial("udp", u.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "a:1|g\n") //nolint:errcheck // checked by Datagrams
	waitFor(t, "the datagram", func() bool { return len(u.Datagrams()) == 1 })
	if got := string(u.Datagrams()[0]); got != "a:1|g\n" {
		t.Errorf("datagram %q", got)
	}

	s := NewGraphiteSink(t, "127.0.0.1:0", SinkOptions{})
	f := NewForwarder(t, "127.0.0.1:0", s.Addr)
	fc, err := net.Dial("tcp", f.Addr)
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(fc, "a.b 1 2\n") //nolint:errcheck // checked by Lines
	fc.Close()
	waitFor(t, "the forwarded line", func() bool { return slices.Equal(s.Lines(), []string{"a.b 1 2"}) })
}
