package haproxy

import (
	"bytes"
	"errors"
	"io"
	"runtime"
	"sync/atomic"
	"testing"
	"time"
)

// endless gives zeros forever and counts what it gave.
type endless struct{ n atomic.Int64 }

func (e *endless) Read(p []byte) (int, error) {
	clear(p)
	e.n.Add(int64(len(p)))
	return len(p), nil
}

func TestReadAheadGivesEverythingInOrderThenTheError(t *testing.T) {
	want := bytes.Repeat([]byte("0123456789abcdef"), 100000) // 1.6 MB, many chunks
	cut := errors.New("cut")
	ra := newReadAhead(io.MultiReader(bytes.NewReader(want), errReader{cut}))
	var got bytes.Buffer
	buf := make([]byte, 1000) // the parser takes less than a chunk at a time
	for {
		n, err := ra.Read(buf)
		got.Write(buf[:n])
		if err != nil {
			if !errors.Is(err, cut) {
				t.Fatalf("error %v, want the reader's", err)
			}
			break
		}
	}
	if !bytes.Equal(got.Bytes(), want) {
		t.Fatalf("got %d bytes, want the %d given, in order", got.Len(), len(want))
	}
	if ra.count() != int64(len(want)) {
		t.Fatalf("count %d, want %d", ra.count(), len(want))
	}
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

func TestReadAheadStopsAtItsBound(t *testing.T) {
	src := &endless{}
	ra := newReadAhead(src)
	defer ra.stop()
	deadline := time.Now().Add(10 * time.Second)
	for src.n.Load() < readAheadMax && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond)
	if n := src.n.Load(); n > readAheadMax+readAheadChunk {
		t.Fatalf("read %d bytes ahead of a parser that took none, bound %d", n, readAheadMax)
	}
	// Taking some lets it read on.
	buf := make([]byte, readAheadChunk)
	for range 4 {
		io.ReadFull(ra, buf) //nolint:errcheck // endless
	}
	before := src.n.Load()
	for src.n.Load() == before && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if src.n.Load() == before {
		t.Fatal("the reader did not go on once the parser took some")
	}
}

// TestReadAheadEndsWithItsQuery: a parser that gives up while the reader
// waits at its bound, or in a read, leaves no goroutine and no memory.
func TestReadAheadEndsWithItsQuery(t *testing.T) {
	before := runtime.NumGoroutine()

	// Parked at the bound, holding readAheadMax.
	src := &endless{}
	ra := newReadAhead(src)
	deadline := time.Now().Add(10 * time.Second)
	for src.n.Load() < readAheadMax && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	stopWithin(t, ra, 5*time.Second)
	if ra.held != 0 || ra.chunks != nil {
		t.Errorf("after stop, %d bytes in %d chunks still held", ra.held, len(ra.chunks))
	}
	if _, err := ra.Read(make([]byte, 10)); !errors.Is(err, errReadAheadStopped) {
		t.Errorf("Read after stop: %v, want errReadAheadStopped", err)
	}

	// Blocked in a read of a socket that sends nothing: stop closes it.
	pr, pw := io.Pipe()
	defer func() { _ = pw.Close() }()
	stopWithin(t, newReadAhead(pr), 5*time.Second)

	for time.Now().Before(deadline) && runtime.NumGoroutine() > before {
		time.Sleep(time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		t.Errorf("%d goroutines after both stops, %d before", n, before)
	}
}

func stopWithin(t *testing.T, ra *readAhead, d time.Duration) {
	t.Helper()
	stopped := make(chan struct{})
	go func() { ra.stop(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(d):
		t.Fatalf("stop did not return within %v: the reader goes on", d)
	}
}

// trickle gives at most 1,000 bytes per read, as a socket gives a few
// KiB at a time, up to n bytes.
type trickle struct{ n, given int }

func (t *trickle) Read(p []byte) (int, error) {
	if t.given == t.n {
		return 0, io.EOF
	}
	k := min(len(p), 1000, t.n-t.given)
	clear(p[:k])
	t.given += k
	return k, nil
}

// TestReadAheadPacksSmallReads: small reads share buffers, so what is held
// is what was read, not a 64 KiB buffer per read.
func TestReadAheadPacksSmallReads(t *testing.T) {
	const total = 4 << 20
	ra := newReadAhead(&trickle{n: total})
	deadline := time.Now().Add(10 * time.Second)
	for ra.count() < total && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	ra.mu.Lock()
	bufs := map[*raBuffer]bool{}
	for _, c := range ra.chunks {
		bufs[c.buf] = true
	}
	held := ra.held
	ra.mu.Unlock()
	if held != total {
		t.Fatalf("held %d bytes, want %d", held, total)
	}
	if most := total/(readAheadChunk-minReadRoom) + 1; len(bufs) > most {
		t.Fatalf("%d bytes read 1,000 at a time are held in %d buffers of %d bytes, want at most %d", total, len(bufs), readAheadChunk, most)
	}
	got, err := io.ReadAll(ra)
	if err != nil || len(got) != total {
		t.Fatalf("read back %d bytes, error %v", len(got), err)
	}
}
