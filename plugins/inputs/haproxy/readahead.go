package haproxy

import (
	"errors"
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
// most readAheadMax of it, packed: each read fills the rest of the buffer
// the last one left off in (a socket gives a few KiB at a time), so the
// memory held is what was read, not a buffer per read.
type readAhead struct {
	mu     sync.Mutex
	more   *sync.Cond
	chunks []raChunk // read, not yet taken; chunks[0].b[off:] is next
	off    int
	cur    *raBuffer   // the buffer the reader fills
	spare  []*raBuffer // buffers done with, to read into again
	held   int         // bytes in chunks
	err    error       // the reader's last error, io.EOF at the end
	n      int64       // bytes read from r

	stopped bool          // stop was called: the reader ends
	done    chan struct{} // closed when the reader has ended
	closer  io.Closer     // r, if it can be closed: stop ends a read in progress
}

// raBuffer is one buffer reads are packed into. It can be read into again
// once the reader has moved on from it and the parser has taken every
// chunk read into it.
type raBuffer struct {
	data    []byte
	fill    int  // bytes read into it
	pending int  // chunks of it not yet taken
	retired bool // the reader moved on
}

// raChunk is what one read gave: b is part of buf.data.
type raChunk struct {
	b   []byte
	buf *raBuffer
}

// minReadRoom is the least room a read is given: with less left, the
// reader moves on to another buffer.
const minReadRoom = 4 << 10

// newReadAhead starts reading r. The caller owns the reading goroutine:
// it calls stop when done with the answer, however the parse ended.
func newReadAhead(r io.Reader) *readAhead {
	ra := &readAhead{done: make(chan struct{})}
	ra.closer, _ = r.(io.Closer)
	ra.more = sync.NewCond(&ra.mu)
	go ra.fill(r)
	return ra
}

// stop ends the reader, a read in progress by closing r, and waits for
// it; what was read and not taken is given back. The parser may stop
// before the answer's end (a bad answer, a timeout): the reader would
// otherwise wait at readAheadMax, holding that memory, for ever.
func (ra *readAhead) stop() {
	ra.mu.Lock()
	ra.stopped = true
	ra.more.Broadcast()
	ra.mu.Unlock()
	if ra.closer != nil {
		_ = ra.closer.Close()
	}
	<-ra.done
	ra.mu.Lock()
	defer ra.mu.Unlock()
	ra.chunks, ra.off, ra.held = nil, 0, 0
}

func (ra *readAhead) fill(r io.Reader) {
	defer close(ra.done)
	for {
		ra.mu.Lock()
		for ra.held >= readAheadMax && !ra.stopped {
			ra.more.Wait()
		}
		if ra.stopped {
			ra.err = errReadAheadStopped
			ra.retireLocked()
			ra.more.Broadcast()
			ra.mu.Unlock()
			return
		}
		if ra.cur == nil || len(ra.cur.data)-ra.cur.fill < minReadRoom {
			ra.retireLocked()
			if k := len(ra.spare); k > 0 {
				ra.cur, ra.spare = ra.spare[k-1], ra.spare[:k-1]
			} else {
				ra.cur = raBuffers.Get().(*raBuffer)
			}
			ra.cur.fill, ra.cur.retired = 0, false
		}
		buf := ra.cur
		room := buf.data[buf.fill:]
		ra.mu.Unlock()
		n, err := r.Read(room) // the parser never touches this part
		ra.mu.Lock()
		if n > 0 {
			ra.chunks = append(ra.chunks, raChunk{b: buf.data[buf.fill : buf.fill+n : buf.fill+n], buf: buf})
			buf.fill += n
			buf.pending++
			ra.held += n
			ra.n += int64(n)
		}
		if err != nil {
			ra.err = err
			ra.retireLocked()
			for _, b := range ra.spare {
				raBuffers.Put(b)
			}
			ra.spare = nil
		}
		ra.more.Broadcast()
		ra.mu.Unlock()
		if err != nil {
			return
		}
	}
}

// errReadAheadStopped is what Read returns after stop.
var errReadAheadStopped = errors.New("read ahead stopped")

// retireLocked marks the reader's buffer as left behind; ra.mu is held.
func (ra *readAhead) retireLocked() {
	if b := ra.cur; b != nil {
		b.retired = true
		ra.cur = nil
		ra.recycleLocked(b)
	}
}

// recycleLocked keeps b to read into again once nothing refers to it: a
// few for this answer, the others for the next answers.
func (ra *readAhead) recycleLocked(b *raBuffer) {
	if !b.retired || b.pending != 0 {
		return
	}
	if ra.err == nil && len(ra.spare) < 4 {
		ra.spare = append(ra.spare, b)
		return
	}
	raBuffers.Put(b)
}

// raBuffers are the buffers answers are read into, shared by the
// answers of every gather.
var raBuffers = sync.Pool{New: func() any { return &raBuffer{data: make([]byte, readAheadChunk)} }}

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
	n := copy(p, c.b[ra.off:])
	ra.off += n
	if ra.off == len(c.b) {
		ra.chunks[0] = raChunk{}
		ra.chunks, ra.off = ra.chunks[1:], 0
		c.buf.pending--
		ra.recycleLocked(c.buf)
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
