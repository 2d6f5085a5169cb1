package haproxy

import (
	"io"
	"sync"
)

const (
	// readAheadChunk is how much one read from the socket asks for.
	readAheadChunk = 64 << 10
	// readAheadMax bounds what waits for the parser: the whole answer of
	// a 5000 backends x 10 servers HAProxy. Past it the socket waits (an
	// answer of garbage must not fill the memory).
	readAheadMax = 16 << 20
)

// readAhead reads r to its end on a goroutine of its own, as fast as r
// gives, and keeps what the parser has not taken yet in memory. The parser
// may be held back by what is done with the metrics downstream (an output
// whose buffer is full while a slow Graphite catches up); the socket never
// waits for it, so the socket's timeout covers the socket alone. What is
// kept is the CSV, a small fraction of the metrics made from it, and at
// most readAheadMax of it.
type readAhead struct {
	mu     sync.Mutex
	more   *sync.Cond
	chunks [][]byte // read, not yet taken; chunks[0][off:] is next
	off    int
	spare  [][]byte // chunks the parser is done with, to read into again
	held   int      // bytes in chunks
	err    error    // the reader's last error, io.EOF at the end
	n      int64    // bytes read from r
}

func newReadAhead(r io.Reader) *readAhead {
	ra := &readAhead{}
	ra.more = sync.NewCond(&ra.mu)
	go ra.fill(r)
	return ra
}

func (ra *readAhead) fill(r io.Reader) {
	for {
		ra.mu.Lock()
		for ra.held >= readAheadMax {
			ra.more.Wait()
		}
		var buf []byte
		if k := len(ra.spare); k > 0 {
			buf, ra.spare = ra.spare[k-1], ra.spare[:k-1]
		} else {
			buf = make([]byte, readAheadChunk)
		}
		ra.mu.Unlock()
		n, err := r.Read(buf)
		ra.mu.Lock()
		if n > 0 {
			ra.chunks = append(ra.chunks, buf[:n])
			ra.held += n
			ra.n += int64(n)
		}
		if err != nil {
			ra.err = err
		}
		ra.more.Broadcast()
		ra.mu.Unlock()
		if err != nil {
			return
		}
	}
}

// Read returns what was read ahead, waiting for the socket only when
// nothing is; at the end it returns the socket's last error.
func (ra *readAhead) Read(p []byte) (int, error) {
	ra.mu.Lock()
	defer ra.mu.Unlock()
	for len(ra.chunks) == 0 && ra.err == nil {
		ra.more.Wait()
	}
	if len(ra.chunks) == 0 {
		return 0, ra.err
	}
	c := ra.chunks[0]
	n := copy(p, c[ra.off:])
	ra.off += n
	if ra.off == len(c) {
		if cap(c) == readAheadChunk && len(ra.spare) < 4 {
			ra.spare = append(ra.spare, c[:cap(c)])
		}
		ra.chunks[0] = nil
		ra.chunks, ra.off = ra.chunks[1:], 0
	}
	if ra.held >= readAheadMax && ra.held-n < readAheadMax {
		ra.more.Broadcast() // the reader may go on
	}
	ra.held -= n
	return n, nil
}

// count is the number of bytes read from the socket so far, for messages.
func (ra *readAhead) count() int64 {
	ra.mu.Lock()
	defer ra.mu.Unlock()
	return ra.n
}
