package testbed

import (
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// liveServers are the loopback listeners behind the HAProxy servers that
// must be UP: HTTP servers answering 200 to every request (health checks
// included) but /status/NNN, which answers status NNN, and TCP echo
// servers.
type liveServers struct {
	httpAddrs []string
	tcpAddrs  []string

	servers []*http.Server
	tcp     []net.Listener

	mu    sync.Mutex
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

func startLiveServers(nHTTP, nTCP int) (*liveServers, error) {
	ls := &liveServers{conns: make(map[net.Conn]struct{})}
	for range nHTTP {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			ls.close()
			return nil, err
		}
		srv := &http.Server{
			Handler:           http.HandlerFunc(okHandler),
			ReadHeaderTimeout: 5 * time.Second,
			IdleTimeout:       5 * time.Second,
			ErrorLog:          log.New(io.Discard, "", 0),
		}
		ls.servers = append(ls.servers, srv)
		ls.httpAddrs = append(ls.httpAddrs, l.Addr().String())
		ls.wg.Add(1)
		go func() {
			defer ls.wg.Done()
			_ = srv.Serve(l)
		}()
	}
	for range nTCP {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			ls.close()
			return nil, err
		}
		ls.tcp = append(ls.tcp, l)
		ls.tcpAddrs = append(ls.tcpAddrs, l.Addr().String())
		ls.wg.Add(1)
		go ls.echoLoop(l)
	}
	return ls, nil
}

func okHandler(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain")
	if code, ok := strings.CutPrefix(r.URL.Path, "/status/"); ok {
		if n, err := strconv.Atoi(code); err == nil && n >= 200 && n <= 599 {
			w.WriteHeader(n)
			_, _ = io.WriteString(w, code+"\n")
			return
		}
	}
	_, _ = io.WriteString(w, "ok\n")
}

func (ls *liveServers) echoLoop(l net.Listener) {
	defer ls.wg.Done()
	for {
		c, err := l.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		ls.mu.Lock()
		ls.conns[c] = struct{}{}
		ls.mu.Unlock()
		ls.wg.Add(1)
		go func() {
			defer ls.wg.Done()
			_ = c.SetDeadline(time.Now().Add(time.Minute))
			_, _ = io.Copy(c, c)
			c.Close()
			ls.mu.Lock()
			delete(ls.conns, c)
			ls.mu.Unlock()
		}()
	}
}

// close stops every listener and connection and waits for their goroutines.
func (ls *liveServers) close() {
	for _, s := range ls.servers {
		_ = s.Close()
	}
	for _, l := range ls.tcp {
		_ = l.Close()
	}
	ls.mu.Lock()
	for c := range ls.conns {
		_ = c.Close()
	}
	ls.mu.Unlock()
	ls.wg.Wait()
}
