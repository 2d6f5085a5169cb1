package haproxy

import (
	"bytes"
	"fmt"
	"net"
	"slices"
	"strings"
	"testing"

	"github.com/influxdata/telegraf"

	"github.com/hap-monitor/hap-monitor/internal/testbed"
	"github.com/hap-monitor/hap-monitor/plugins/common/logger"
)

// releaseFacts is what each recorded release's answers hold (see
// TestLiveAnswersAsRecorded for how they are recorded and checked
// against the live release).
var releaseFacts = []struct {
	version string // the recording's
	columns int    // of show stat, by header name
	// infoHas and infoHasNot are show info names there and not there.
	infoHas, infoHasNot []string
	// statHas are show stat columns, statHasNot columns it lacks.
	statHas, statHasNot []string
	failedReloads       bool // show proc's "[failed: N]"
}{
	{"2.2.9", 99, []string{"ZlibMemUsage", "Stopping"}, []string{"BootTime_ms", "TotalSplicedBytesOut"},
		[]string{"idle_conn_cur"}, []string{"-", "h1req"}, false},
	{"2.6.12", 128, []string{"TotalSplicdedBytesOut", "Stopping"}, []string{"ZlibMemUsage", "BootTime_ms"},
		[]string{"-", "h2_headers_rcvd"}, []string{"h1req", "quic_rxbuf_full"}, true},
	{"3.0.11", 205, []string{"TotalSplicedBytesOut", "BootTime_ms", "CumStreams", "TotalWarnings", "Stopping"}, []string{"TotalSplicdedBytesOut"},
		[]string{"-", "h1req", "quic_rxbuf_full", "h3_data", "qpack_decoder_stream_error"}, []string{"ssl_ocsp_staple"}, true},
	{"3.2.26", 207, []string{"TotalSplicedBytesOut", "BootTime_ms", "MaxconnReached", "Stopping"}, []string{"TotalSplicdedBytesOut", "NbThreadGroups"},
		[]string{"-", "h1req", "ssl_ocsp_staple", "ssl_failed_ocsp_staple"}, []string{"reqbin", "priv_idle_cur"}, true},
	{"3.4.7", 213, []string{"TotalSplicedBytesOut", "BootTime_ms", "MaxconnReached", "NbThreadGroups", "PatternsAdded", "PatternsFreed", "Stopping"}, []string{"TotalSplicdedBytesOut"},
		[]string{"-", "h1req", "ssl_ocsp_staple", "reqbin", "reqbout", "resbin", "resbout", "priv_idle_cur", "quic_ncbuf_gap_limit"}, nil, true},
}

// TestReleaseRecordings checks every recorded release: its facts, and
// that hap-monitor reads its answers whole, as HAProxy 2.6.12's.
func TestReleaseRecordings(t *testing.T) {
	recorded := recordedReleases(t)
	var versions []string
	for _, f := range releaseFacts {
		versions = append(versions, "testdata/haproxy-"+f.version)
	}
	if !slices.Equal(recorded, versions) {
		t.Errorf("recorded releases %v, want the facts of each: %v", recorded, versions)
	}
	for _, f := range releaseFacts {
		t.Run(f.version, func(t *testing.T) {
			base := "haproxy-" + f.version
			answer := readTestdata(t, base+answerSuffix)
			header := strings.Split(strings.TrimPrefix(statHeader(string(answer)), "# "), ",")
			if n := len(header) - 1; n != f.columns { // the trailing comma
				t.Errorf("%d show stat columns, want %d", n, f.columns)
			}
			for _, c := range f.statHas {
				if !slices.Contains(header, c) {
					t.Errorf("show stat has no column %s", c)
				}
			}
			for _, c := range f.statHasNot {
				if slices.Contains(header, c) {
					t.Errorf("show stat has a column %s", c)
				}
			}
			names := infoNames(string(answer))
			for _, n := range f.infoHas {
				if !slices.Contains(names, n) {
					t.Errorf("show info has no %s", n)
				}
			}
			for _, n := range f.infoHasNot {
				if slices.Contains(names, n) {
					t.Errorf("show info has %s", n)
				}
			}
			if f.version == "2.6.12" {
				return // recorded before the stick table; parse_test.go reads it
			}
			h := newPlugin(t, &HAProxy{Servers: []string{testSocketTag}})
			ms, err := readAnswer(t, h, answer, false)
			if err != nil {
				t.Fatal(err)
			}
			checkScenario(t, ms, testSocketTag)
			info := find(ms, "haproxy_info", nil)
			if v, _ := info.GetField("version"); !strings.HasPrefix(fmt.Sprint(v), f.version+"-") {
				t.Errorf("haproxy_info version %v, want %s", v, f.version)
			}
			// Every cell of every row is a field, but those left empty.
			fe := row(ms, testbed.ScenarioFrontend, "FRONTEND")
			if v, _ := fe.GetField("http_response.2xx"); v != uint64(1) {
				t.Errorf("%s FRONTEND http_response.2xx = %v, want the 1 request sent", testbed.ScenarioFrontend, v)
			}
			tbl := find(ms, "haproxy_table", map[string]string{"table": "sticky", "type": "ip"})
			if tbl == nil {
				t.Fatalf("no haproxy_table of table sticky")
			}
			if v, _ := tbl.GetField("used"); v != int64(1) {
				t.Errorf("table sticky used = %v, want 1", v)
			}
		})
	}
}

// TestReleaseUsageText: a socket whose HAProxy answers "show table" with
// its usage text, as each recorded release prints it for a command it
// does not have, loses nothing else: no error, every other metric, and
// "show table" is not sent again until another process answers there.
func TestReleaseUsageText(t *testing.T) {
	answer := readTestdata(t, "haproxy-2.6.12.txt") // its show table answer is empty: the last line
	if !bytes.HasSuffix(answer, []byte("\n\n\n")) {
		t.Fatal("the recorded answer does not end with an empty show table answer")
	}
	for _, f := range releaseFacts {
		t.Run(f.version, func(t *testing.T) {
			usage := readTestdata(t, "haproxy-"+f.version+usageSuffix)
			if !bytes.HasPrefix(usage, []byte("Unknown command")) || !bytes.HasSuffix(usage, []byte("\n\n")) {
				t.Fatalf("the recorded usage text %q...", clip(usage, 80))
			}
			noTable := append(slices.Clone(answer[:len(answer)-1]), usage...)
			restarted := bytes.Replace(answer, []byte("\nPid: 8058\n"), []byte("\nPid: 9001\n"), 1)
			if bytes.Equal(restarted, answer) {
				t.Fatal("the recorded answer has no Pid: 8058 line")
			}
			// The first process lacks show table; the third gather is
			// answered by another process, the fourth asks again.
			answers := [][]byte{noTable, answer, restarted, restarted}
			n := 0
			fake := testbed.NewFakeSocket(t, func(c net.Conn, cmd string) {
				c.Write(answers[min(n, len(answers)-1)]) //nolint:errcheck // test fake
				n++
			})
			var logs testbed.SyncBuffer
			h := newPlugin(t, &HAProxy{Servers: []string{fake.Path}, OptionalMeasurements: []string{"haproxy_table"},
				Log: logger.New(logger.NewSink(&logs, telegraf.Debug), "inputs.haproxy")})
			ms, errs := gather(t, h)
			if len(errs) > 0 {
				t.Errorf("a usage text for show table: errors %v", errs)
			}
			if count(ms, "haproxy_info") != 1 || count(ms, "haproxy") != 12 || count(ms, "haproxy_table") != 0 {
				t.Errorf("%d haproxy_info, %d haproxy, %d haproxy_table metrics; want 1, the 12 rows and 0",
					count(ms, "haproxy_info"), count(ms, "haproxy"), count(ms, "haproxy_table"))
			}
			for range 3 {
				if _, errs := gather(t, h); len(errs) > 0 {
					t.Errorf("errors %v", errs)
				}
			}
			cmds := fake.Commands()
			want := []string{"show info;show stat;show table\n", "show info;show stat\n", "show info;show stat\n", "show info;show stat;show table\n"}
			if !slices.Equal(cmds, want) {
				t.Errorf("commands %q, want %q", cmds, want)
			}
			for _, say := range []string{
				"D! [inputs.haproxy] " + fake.Path + ": HAProxy 2.6.12-1+deb12u4 (pid 8058) does not have show table (it answered with its usage text; 1.5 and later have it): no haproxy_table metrics, and show table is not sent to it again",
				"D! [inputs.haproxy] " + fake.Path + ": HAProxy restarted (pid 9001, was 8058): show table asked again",
			} {
				if strings.Count(logs.String(), say) != 1 {
					t.Errorf("the log does not say once %q:\n%s", say, logs.String())
				}
			}
		})
	}
}

// TestReleaseMasterSequence gathers every recorded release's master CLI
// through the sequence of procSequence, each worker answering Stopping as
// the one the test bed started it as: the serving worker untagged, the
// others old1, old2 ... as the recording names them, and haproxy_master
// counting them so, whatever show proc lists.
func TestReleaseMasterSequence(t *testing.T) {
	for _, f := range releaseFacts {
		states, err := parseProcRecording(string(readTestdata(t, "haproxy-"+f.version+procSuffix)))
		if err != nil {
			t.Fatalf("%s: %v", f.version, err)
		}
		for _, st := range states {
			t.Run(f.version+" "+st.name, func(t *testing.T) {
				var pids []int
				for _, pid := range st.workers {
					pids = append(pids, pid)
				}
				fake := fakeMaster(t, st.answer, []int{st.workers[""]}, pids...)
				h := newPlugin(t, &HAProxy{Servers: []string{"master:" + fake.Path}})
				ms, errs := gather(t, h)
				if len(errs) > 0 {
					t.Fatal(errs)
				}
				checkWorkers(t, st.name, ms, st.workers)
				m := find(ms, "haproxy_master", nil)
				if w, _ := m.GetField("workers"); w != int64(1) {
					t.Errorf("workers = %v, want 1", w)
				}
				if w, _ := m.GetField("old_workers"); w != int64(len(st.workers)-1) {
					t.Errorf("old_workers = %v, want %d", w, len(st.workers)-1)
				}
				if _, ok := m.GetField("failed_reloads"); ok != f.failedReloads {
					t.Errorf("failed_reloads given: %v, want %v", ok, f.failedReloads)
				}
			})
		}
	}
}

// moduleCounterGlobs is the input README's fieldexclude for a Graphite
// user who serves no QUIC: HAProxy 3.0's QUIC and HTTP/3 counters.
var moduleCounterGlobs = []string{"quic_*", "h3*", "qpack_*", "pack_decompression_failed"}

// TestModuleCountersLeftOut checks the input README's recipe on 3.2's
// recorded answer: fieldexclude leaves out each frontend's 69 QUIC and
// HTTP/3 counters, and nothing else of any row.
func TestModuleCountersLeftOut(t *testing.T) {
	answer := readTestdata(t, "haproxy-3.2.26.txt")
	all, err := readAnswer(t, newPlugin(t, &HAProxy{Servers: []string{testSocketTag}}), answer, false)
	if err != nil {
		t.Fatal(err)
	}
	h := &HAProxy{Servers: []string{testSocketTag}}
	h.SelectFields(nil, moduleCounterGlobs)
	less, err := readAnswer(t, newPlugin(t, h), answer, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != len(less) {
		t.Fatalf("%d metrics, %d with fieldexclude", len(all), len(less))
	}
	for i, m := range all {
		gone := map[string]bool{}
		for _, f := range m.FieldList() {
			gone[f.Key] = true
		}
		for _, f := range less[i].FieldList() {
			delete(gone, f.Key)
		}
		typ, _ := m.GetTag("type")
		want := 0
		if typ == "frontend" {
			want = 69
		}
		if len(gone) != want {
			t.Errorf("%s: fieldexclude left out %d fields, want %d", describeMetric(m), len(gone), want)
		}
		for k := range gone {
			if !strings.HasPrefix(k, "quic_") && !strings.HasPrefix(k, "h3") && !strings.HasPrefix(k, "qpack_") && k != "pack_decompression_failed" {
				t.Errorf("%s: fieldexclude left out %s", describeMetric(m), k)
			}
		}
	}
}
