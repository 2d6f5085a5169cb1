package main

import (
	"bytes"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// lineSink is a Graphite plaintext receiver on loopback that only counts
// the lines it reads: the cheapest possible peer, so that what is measured
// is the sender.
type lineSink struct {
	ln    net.Listener
	lines atomic.Int64
	open  atomic.Int64
	wg    sync.WaitGroup
}

func startSink() (*lineSink, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &lineSink{ln: ln}
	s.wg.Add(1)
	go s.accept()
	return s, nil
}

func (s *lineSink) Addr() string { return s.ln.Addr().String() }

func (s *lineSink) accept() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.open.Add(1)
		s.wg.Add(1)
		go s.count(c)
	}
}

func (s *lineSink) count(c net.Conn) {
	defer s.wg.Done()
	defer s.open.Add(-1)
	defer c.Close()
	buf := make([]byte, 256*1024)
	for {
		n, err := c.Read(buf)
		s.lines.Add(int64(bytes.Count(buf[:n], []byte{'\n'})))
		if err != nil {
			return
		}
	}
}

// Take returns the lines counted since the last Take, once every sender
// connection has closed or the deadline passes.
func (s *lineSink) Take(deadline time.Duration) (int64, error) {
	end := time.Now().Add(deadline)
	for s.open.Load() > 0 {
		if time.Now().After(end) {
			return s.lines.Swap(0), errors.New("a sender still holds its connection open")
		}
		time.Sleep(5 * time.Millisecond)
	}
	return s.lines.Swap(0), nil
}

func (s *lineSink) Close() {
	s.ln.Close()
	s.wg.Wait()
}
