package haproxy

import (
	"fmt"
	"net"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/influxdata/telegraf"

	"github.com/hap-monitor/hap-monitor/internal/testbed"
	"github.com/hap-monitor/hap-monitor/plugins/common/logger"
)

// TestOptionalCommandsLackedOrRefused: for each optional command, a
// socket whose HAProxy lacks it (its usage text) or refuses it at the
// socket's level loses nothing else: no error, every metric of show info
// and show stat, the reason said once per process, and the command not
// sent again until another process answers there.
func TestOptionalCommandsLackedOrRefused(t *testing.T) {
	answer := string(readTestdata(t, "haproxy-3.4.7.txt"))
	info, rest, _ := strings.Cut(answer, "\n\n")
	stat, _, _ := strings.Cut(rest, "\n\n")
	usage := string(readTestdata(t, "haproxy-3.4.7-usage.txt"))
	// The certificate commands' answers, for the rows not under test.
	certs := strings.Split(strings.TrimSuffix(string(readTestdata(t, "haproxy-3.4.7"+certsSuffix)), "\n\n"), "\n\n")
	acme := string(readTestdata(t, "haproxy-3.4.7"+acmeSuffix))
	certAnswer := func(cmd string) string {
		switch {
		case cmd == "acme status":
			return acme
		case cmd == "show ssl cert":
			return certs[0] + "\n\n"
		case cmd == "show ssl sni":
			return certs[1] + "\n\n"
		case strings.HasPrefix(cmd, "show ssl cert "):
			for _, d := range certs[2:] {
				if strings.HasPrefix(d, "Filename: "+strings.TrimPrefix(cmd, "show ssl cert ")+"\n") {
					return d + "\n\n"
				}
			}
		}
		return "\n" // nothing to say
	}
	rows := strings.Count(stat, "\n") // the lines after the header
	const pid, restarted = "Pid: 21858\n", "Pid: 9001\n"
	if !strings.Contains(info, pid) {
		t.Fatalf("the recorded show info has no %q", pid)
	}
	for _, c := range optionalCommands {
		// What each case says, per socket path: each line and how often
		// (once per process).
		for _, tc := range []struct {
			name, reply string
			says        func(path string) map[string]int
		}{
			{"lacks", usage, func(path string) map[string]int {
				return map[string]int{
					fmt.Sprintf("D! [inputs.haproxy] %s: HAProxy 3.4.7-1 (pid 21858) does not have %s", path, c.text): 1,
					fmt.Sprintf("D! [inputs.haproxy] %s: HAProxy 3.4.7-1 (pid 9001) does not have %s", path, c.text):  1,
				}
			}},
			{"refuses", "Permission denied\n\n", func(path string) map[string]int {
				return map[string]int{
					fmt.Sprintf("I! [inputs.haproxy] %s: %s needs a stats socket at level %s or above", path, c.text, c.level): 2,
				}
			}},
		} {
			t.Run(c.text+"/"+tc.name, func(t *testing.T) {
				var gathers atomic.Int32 // the gather under way, from 1
				fake := testbed.NewFakeSocket(t, func(conn net.Conn, line string) {
					gathers := gathers.Load()
					for _, cmd := range strings.Split(strings.TrimSpace(line), ";") {
						var part string
						switch {
						case cmd == "show info" && gathers >= 3: // another process from the third gather on
							part = strings.Replace(info, pid, restarted, 1) + "\n\n"
						case cmd == "show info":
							part = info + "\n\n"
						case strings.HasPrefix(cmd, "show stat"):
							part = stat + "\n\n"
						case cmd == c.text:
							part = tc.reply
						default:
							part = certAnswer(cmd)
						}
						if _, err := conn.Write([]byte(part)); err != nil {
							return
						}
					}
				})
				var logs testbed.SyncBuffer
				h := newPlugin(t, &HAProxy{Servers: []string{fake.Path}, Log: logger.New(logger.NewSink(&logs, telegraf.Debug), "inputs.haproxy")})
				var asked []bool
				for i := range 4 {
					before := len(fake.Commands())
					gathers.Store(int32(i + 1))
					ms, errs := gather(t, h)
					if len(errs) > 0 {
						t.Errorf("gather %d: errors %v", i+1, errs)
					}
					if count(ms, "haproxy_info") != 1 || count(ms, "haproxy") != rows {
						t.Errorf("gather %d: %d haproxy_info and %d haproxy metrics, want 1 and the %d rows", i+1, count(ms, "haproxy_info"), count(ms, "haproxy"), rows)
					}
					sent := false
					for _, line := range fake.Commands()[before:] {
						sent = sent || slices.Contains(strings.Split(strings.TrimSpace(line), ";"), c.text)
					}
					asked = append(asked, sent)
				}
				// Asked, refused; not asked; not asked (the gather that
				// finds another process); asked again.
				if want := []bool{true, false, false, true}; !slices.Equal(asked, want) {
					t.Errorf("%s asked in gathers 1 to 4: %v, want %v", c.text, asked, want)
				}
				for say, n := range tc.says(fake.Path) {
					if got := strings.Count(logs.String(), say); got != n {
						t.Errorf("the log says %d times %q, want %d:\n%s", got, say, n, logs.String())
					}
				}
			})
		}
	}
}
