package haproxy

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hap-monitor/hap-monitor/internal/testbed"
)

// record makes TestLiveAnswersAsRecorded write the running release's
// answers into testdata/ instead of comparing them:
//
//	HAP_MONITOR_HAPROXY=3.2 go test ./plugins/inputs/haproxy -run TestLiveAnswersAsRecorded -record
var record = flag.Bool("record", false, "write the live HAProxy's answers to testdata/")

// Recordings of a release X.Y.Z, made by TestLiveAnswersAsRecorded:
//
//	haproxy-X.Y.Z.txt        "show info;show stat;show table" on the admin socket
//	haproxy-X.Y.Z-usage.txt  the answer of a command HAProxy does not have
//	haproxy-X.Y.Z-proc.txt   the master's "show proc" through the sequence
//	                         of procSequence, each state headed by a line
//	                         "=== <state>: serving <pid>[; old<N> <pid>]..."
//	                         naming each worker by what the test bed
//	                         knows of it (which generation it started)
const (
	answerSuffix = ".txt"
	usageSuffix  = "-usage.txt"
	procSuffix   = "-proc.txt"
)

// The states of the master-worker sequence, in order.
var procSequence = []string{"fresh", "after a good reload", "after a failed reload", "after the next good reload"}

// recordingVersion is the upstream version of "2.2.9-2+deb11u6": "2.2.9".
func recordingVersion(v string) string {
	v, _, _ = strings.Cut(v, "-")
	return v
}

var releaseFile = regexp.MustCompile(`^haproxy-(\d+\.\d+)\.\d+\.txt$`)

// recordedRelease returns the testdata path, less its suffix, of the
// recording of the release with version v's major.minor:
// "testdata/haproxy-3.2.26"; "" when there is none.
func recordedRelease(t testing.TB, v string) string {
	t.Helper()
	mm := strings.Join(strings.SplitN(recordingVersion(v), ".", 3)[:2], ".")
	for _, r := range recordedReleases(t) {
		if strings.HasPrefix(filepath.Base(r), "haproxy-"+mm+".") {
			return r
		}
	}
	return ""
}

// recordedReleases lists the recorded releases: "testdata/haproxy-2.2.9", ...
func recordedReleases(t testing.TB) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", "haproxy-*.txt"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, f := range files {
		if releaseFile.MatchString(filepath.Base(f)) {
			out = append(out, strings.TrimSuffix(f, answerSuffix))
		}
	}
	sort.Strings(out)
	return out
}

// TestLiveAnswersAsRecorded runs the release HAP_MONITOR_HAPROXY names
// (the system's HAProxy without it) and checks that it answers as its
// recording in testdata/ says: the same show stat columns, the same show
// info names, show table's layout, the same usage text for a command it
// does not have, and through the master CLI's sequence the same workers
// under "# workers" and "# old workers". So the table tests on the
// recordings speak of the real release.
func TestLiveAnswersAsRecorded(t *testing.T) {
	if testing.Short() {
		t.Skip("needs HAProxy (apt-get install haproxy, or ./scripts/test)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	hp := newStickyMaster(ctx, t)
	resp, err := http.Get("http://" + hp.FrontendAddr + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()

	answer, err := hp.Command(ctx, "show info;show stat;show table")
	if err != nil {
		t.Fatal(err)
	}
	usage, err := hp.Command(ctx, "show nosuchthing")
	if err != nil {
		t.Fatal(err)
	}
	procs := masterSequence(ctx, t, hp)

	base := recordedRelease(t, hp.Version)
	if *record {
		if base != "" && filepath.Base(base) != "haproxy-"+recordingVersion(hp.Version) {
			t.Fatalf("%s is already recorded as %s: remove it first", hp.Version, base)
		}
		base = filepath.Join("testdata", "haproxy-"+recordingVersion(hp.Version))
		for suffix, data := range map[string]string{answerSuffix: answer, usageSuffix: usage, procSuffix: procs} {
			if err := os.WriteFile(base+suffix, []byte(data), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		t.Logf("recorded HAProxy %s into %s*", hp.Version, base)
		return
	}
	if base == "" {
		t.Fatalf("HAProxy %s has no recording in testdata/: run this test with -record", hp.Version)
	}
	want := readTestdata(t, filepath.Base(base)+answerSuffix)
	if got, w := statHeader(answer), statHeader(string(want)); got != w {
		t.Errorf("HAProxy %s's show stat header differs from %s's:\n%s\n%s", hp.Version, base, got, w)
	}
	if got, w := infoNames(answer), infoNames(string(want)); !slices.Equal(got, w) {
		t.Errorf("HAProxy %s's show info names differ from %s's:\n%v\n%v", hp.Version, base, got, w)
	}
	for _, line := range tableLines(answer) {
		if _, err := parseTableHead([]byte(line)); err != nil {
			t.Errorf("HAProxy %s's show table: %v", hp.Version, err)
		}
	}
	if u := readTestdata(t, filepath.Base(base)+usageSuffix); firstLine(usage) != firstLine(string(u)) {
		t.Errorf("HAProxy %s's usage text starts %q, its recording %q", hp.Version, firstLine(usage), firstLine(string(u)))
	}
	gotStates, err := parseProcRecording(procs)
	if err != nil {
		t.Fatal(err)
	}
	wantStates, err := parseProcRecording(string(readTestdata(t, filepath.Base(base)+procSuffix)))
	if err != nil {
		t.Fatal(err)
	}
	for i := range procSequence {
		if g, w := gotStates[i].listing(t), wantStates[i].listing(t); g != w {
			t.Errorf("HAProxy %s %s: show proc lists %s, its recording %s", hp.Version, procSequence[i], g, w)
		}
	}
}

// masterSequence takes hp through procSequence (a session held on each
// of the first two workers) and returns the recording of show proc.
func masterSequence(ctx context.Context, t *testing.T, hp *testbed.HAProxy) string {
	t.Helper()
	var b strings.Builder
	var gens []int // the workers' pids, oldest first
	snap := func(state string) {
		out, err := hp.MasterCommand(ctx, "show proc")
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "=== %s: serving %d", state, gens[len(gens)-1])
		for i := len(gens) - 2; i >= 0; i-- {
			fmt.Fprintf(&b, "; old%d %d", len(gens)-1-i, gens[i])
		}
		b.WriteString("\n" + out)
	}
	p, err := hp.Processes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	gens = append(gens, p.Current[0])
	snap(procSequence[0])
	for range 2 {
		held, err := hp.HoldConnection(ctx)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = held.Close() })
		if len(gens) == 2 {
			if _, err := hp.FailReload(ctx); err != nil {
				t.Fatal(err)
			}
			snap(procSequence[2])
		}
		pid, err := hp.Reload(ctx)
		if err != nil {
			t.Fatal(err)
		}
		gens = append(gens, pid)
		snap(procSequence[len(gens)*2-3])
	}
	return b.String()
}

// procState is one state of a show proc recording.
type procState struct {
	name    string
	workers map[string]int // "" for the serving worker, "old1", ... -> pid
	answer  string
}

// parseProcRecording reads a -proc.txt recording.
func parseProcRecording(s string) ([]procState, error) {
	var out []procState
	for _, part := range strings.Split(s, "=== ")[1:] {
		head, answer, _ := strings.Cut(part, "\n")
		name, roles, ok := strings.Cut(head, ": ")
		if !ok {
			return nil, fmt.Errorf("recording state %q has no roles", head)
		}
		st := procState{name: name, workers: map[string]int{}, answer: answer}
		for _, r := range strings.Split(roles, "; ") {
			tag, pid, _ := strings.Cut(r, " ")
			n, err := strconv.Atoi(pid)
			if err != nil {
				return nil, fmt.Errorf("recording state %q: %q", head, r)
			}
			if tag == "serving" {
				tag = ""
			}
			st.workers[tag] = n
		}
		out = append(out, st)
	}
	if len(out) != len(procSequence) {
		return nil, fmt.Errorf("%d states recorded, want %d", len(out), len(procSequence))
	}
	for i := range out {
		if out[i].name != procSequence[i] {
			return nil, fmt.Errorf("state %d is %q, want %q", i, out[i].name, procSequence[i])
		}
	}
	return out, nil
}

// listing says where show proc lists each worker: "serving worker under
// # old workers, old1 under # old workers".
func (st procState) listing(t *testing.T) string {
	t.Helper()
	p, err := parseShowProc(newLineReader(strings.NewReader(st.answer)))
	if err != nil {
		t.Fatalf("%s: %v", st.name, err)
	}
	section := map[int]string{}
	for _, w := range p.current {
		section[w.pid] = "# workers"
	}
	for _, w := range p.old {
		section[w.pid] = "# old workers"
	}
	var tags []string
	for tag := range st.workers {
		tags = append(tags, tag)
	}
	sort.Strings(tags)
	var out []string
	for _, tag := range tags {
		who := tag
		if who == "" {
			who = "the serving worker"
		}
		where := section[st.workers[tag]]
		if where == "" {
			where = "nowhere"
		}
		out = append(out, who+" under "+where)
	}
	return strings.Join(out, ", ")
}

func statHeader(answer string) string {
	for _, line := range strings.Split(answer, "\n") {
		if strings.HasPrefix(line, "# pxname,") {
			return line
		}
	}
	return ""
}

// infoNames lists the names of show info's lines, in order.
func infoNames(answer string) []string {
	var out []string
	sc := bufio.NewScanner(strings.NewReader(answer))
	for sc.Scan() && sc.Text() != "" {
		if name, _, ok := strings.Cut(sc.Text(), ": "); ok {
			out = append(out, name)
		}
	}
	return out
}

func tableLines(answer string) []string {
	var out []string
	for _, line := range strings.Split(answer, "\n") {
		if strings.HasPrefix(line, "# table: ") {
			out = append(out, line)
		}
	}
	return out
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}
