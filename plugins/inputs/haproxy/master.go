package haproxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/influxdata/telegraf"
	"github.com/influxdata/telegraf/metric"
)

// A master CLI is the socket HAProxy's master process listens on in
// master-worker mode (haproxy -W -S <socket>). Through it every worker
// can be asked what its own stats socket answers: the current one and
// the old ones that still serve their connections after a reload, which
// no stats socket reaches. Checked against HAProxy 2.6.12:
//
//   - "show proc" lists the processes:
//
//     #<PID>          <type>          <reloads>       <uptime>        <version>
//     8392            master          2 [failed: 0]   0d00h00m08s     2.6.12-1+deb12u4
//     # workers
//     8600            worker          0               0d00h00m00s     2.6.12-1+deb12u4
//     # old workers
//     8529            worker          1               0d00h00m04s     2.6.12-1+deb12u4
//     # programs
//
//     The master's reloads count every reload, failed ones included;
//     "failed" counts the failed ones since the last successful one (a
//     successful reload sets it back to 0). A worker's reloads count the
//     reloads it has lived through, failed ones included: the current
//     worker's is not 0 after a failed reload. HAProxy 2.0 to 2.4 print a
//     <relative PID> column more ("[was: 1]" for an old worker) and no
//     "[failed: N]"; columns are mapped by the header's names.
//   - After a failed reload, 2.2, 3.2 and 3.4 list no worker under "# workers":
//     the one still serving is under "# old workers" (2.6 and 3.0 keep it
//     under "# workers"). What a worker says of itself is right on every
//     version: "Stopping: 0" in its "show info" while it serves, 1 once a
//     reload has replaced it. So every worker listed as old is asked.
//   - 2.2's old workers answer "show stat" with its header and no row.
//   - "@!<pid>" routes what follows to the worker of that pid: as a
//     command of its own ("@!8600;show info;show stat;show table") it
//     routes every command after it on the line. The answers are the
//     worker's own, as on its stats socket. A pid the master no longer
//     knows is answered "Can't find the target PID matching the prefix
//     '@!8600'", without the empty line that ends other answers.
//   - "@1" routes to the current worker without knowing its pid.
//   - Unlike a stats socket, the master keeps the connection open after a
//     line, for the next one, until the client closes its side: the
//     client half-closes after its line and reads to EOF.
//   - While it re-executes itself on a reload (about 100 ms) the master
//     closes connections without an answer, then refuses them.

// masterPrefix starts a servers entry naming a master CLI.
const masterPrefix = "master:"

// masterProcCommand asks the master its processes, then the current
// worker's stats sockets (for the server tag of the workers' metrics).
const masterProcCommand = "show proc;@1 show cli sockets\n"

// retryPause is the pause between two tries at a master that is
// reloading.
const retryPause = 25 * time.Millisecond

// parseMasterServer reads a "master:" entry: a unix socket path (a glob
// works), "unix://" + path, or "tcp://host:port".
func parseMasterServer(entry, rest string) (endpoint, error) {
	if rest == "" || strings.HasPrefix(rest, masterPrefix) || strings.HasPrefix(rest, "http://") || strings.HasPrefix(rest, "https://") {
		return endpoint{}, fmt.Errorf("%q: a master CLI is \"master:\" and a unix socket path or tcp://host:port", entry)
	}
	var ep endpoint
	if strings.HasPrefix(rest, "tcp://") {
		var err error
		if ep, err = parseServer(rest); err != nil {
			return endpoint{}, err
		}
	} else {
		path := strings.TrimPrefix(rest, "unix://")
		if path == "" {
			return endpoint{}, fmt.Errorf("%q: empty socket path", entry)
		}
		if _, err := filepath.Match(path, ""); err != nil {
			return endpoint{}, fmt.Errorf("%q: bad glob: %w", entry, err)
		}
		ep = endpoint{kind: kindUnix, addr: path, tag: path, name: path}
	}
	ep.master = true
	ep.name = masterPrefix + ep.name
	return ep, nil
}

// procEntry is one process line of "show proc".
type procEntry struct {
	pid     int
	reloads int64
	uptime  int64 // seconds; -1 when not given
	version string
	// failed is the master's "[failed: N]", -1 when not given.
	failed int64
}

// procAnswer is the answer of "show proc".
type procAnswer struct {
	master  procEntry
	current []procEntry // "# workers"
	old     []procEntry // "# old workers"
}

// maxProcLines bounds the lines read from one "show proc" answer.
const maxProcLines = 10000

// parseShowProc reads the answer of "show proc" up to its empty line.
// Programs are left out. A process line it cannot read is an error.
func parseShowProc(lr *lineReader) (procAnswer, error) {
	var ans procAnswer
	var cols map[string]int
	section := "master"
	hasMaster := false
	for n := 1; ; n++ {
		if n > maxProcLines {
			return ans, fmt.Errorf("no end of answer within %d lines", maxProcLines)
		}
		line, complete, err := lr.next()
		if errors.Is(err, io.EOF) {
			if n == 1 {
				return ans, &TruncatedError{Reason: "empty answer"}
			}
			return ans, &TruncatedError{Reason: fmt.Sprintf("no closing empty line after line %d", n-1)}
		}
		if err != nil {
			return ans, err
		}
		if !complete {
			return ans, &TruncatedError{Reason: fmt.Sprintf("input ended inside line %d", n)}
		}
		if len(line) == 0 {
			break
		}
		s := string(line)
		switch {
		case n == 1:
			if !strings.HasPrefix(s, "#") {
				return ans, fmt.Errorf("answer is not show proc's, it starts with %q", clip(line, 80))
			}
			cols = procColumns(s)
			for _, c := range []string{"PID", "type", "reloads"} {
				if _, ok := cols[c]; !ok {
					return ans, fmt.Errorf("show proc header %q has no <%s> column", clip(line, 200), c)
				}
			}
			continue
		case strings.HasPrefix(s, "#"):
			section = strings.TrimSpace(strings.TrimPrefix(s, "#"))
			continue
		}
		if section != "master" && section != "workers" && section != "old workers" {
			continue // programs
		}
		e, typ, err := parseProcLine(s, cols)
		if err != nil {
			return ans, fmt.Errorf("line %d: %w: %q", n, err, clip(line, 200))
		}
		switch {
		case section == "master" && typ == "master":
			ans.master, hasMaster = e, true
		case section == "workers":
			ans.current = append(ans.current, e)
		case section == "old workers":
			ans.old = append(ans.old, e)
		}
	}
	if !hasMaster {
		return ans, errors.New("show proc lists no master")
	}
	return ans, nil
}

// procColumns maps the names of a "show proc" header ("#<PID> <type>
// <relative PID> <reloads> ...") to their positions.
func procColumns(header string) map[string]int {
	cols := make(map[string]int)
	for i, t := range procTokens(strings.TrimPrefix(header, "#")) {
		cols[strings.Trim(t, "<>")] = i
	}
	return cols
}

// procTokens splits a line of "show proc" on blanks, keeping a "[...]"
// or "<...>" group whole: "<relative PID>", "[was: 1]", "[failed: 0]".
func procTokens(s string) []string {
	fields := strings.Fields(s)
	out := fields[:0:0]
	for i := 0; i < len(fields); i++ {
		f := fields[i]
		if end, ok := closing[f[0]]; ok {
			for !strings.HasSuffix(f, end) && i+1 < len(fields) {
				i++
				f += " " + fields[i]
			}
		}
		out = append(out, f)
	}
	return out
}

var closing = map[byte]string{'[': "]", '<': ">"}

// parseProcLine reads one process line, mapping its values to the
// header's columns. The master's "[failed: N]" follows its reloads
// without a column of its own.
func parseProcLine(s string, cols map[string]int) (procEntry, string, error) {
	e := procEntry{uptime: -1, failed: -1}
	tokens := procTokens(s)
	values := tokens[:0:0]
	for _, t := range tokens {
		if rest, ok := strings.CutPrefix(t, "[failed:"); ok {
			n, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(rest, "]")), 10, 64)
			if err != nil || n < 0 {
				return e, "", fmt.Errorf("failed reloads %q is not a count", t)
			}
			e.failed = n
			continue
		}
		values = append(values, t)
	}
	get := func(name string) (string, bool) {
		i, ok := cols[name]
		if !ok || i >= len(values) {
			return "", false
		}
		return values[i], true
	}
	v, ok := get("PID")
	pid, err := strconv.Atoi(v)
	if !ok || err != nil || pid <= 0 {
		return e, "", fmt.Errorf("pid %q is not a pid", v)
	}
	e.pid = pid
	typ, _ := get("type")
	v, ok = get("reloads")
	if e.reloads, err = strconv.ParseInt(v, 10, 64); !ok || err != nil || e.reloads < 0 {
		return e, "", fmt.Errorf("reloads %q is not a count", v)
	}
	if v, ok := get("uptime"); ok {
		if sec, ok := parseProcUptime(v); ok {
			e.uptime = sec
		}
	}
	e.version, _ = get("version")
	return e, typ, nil
}

// parseProcUptime reads show proc's uptime, "0d00h02m07s", into seconds.
func parseProcUptime(s string) (int64, bool) {
	var total, n int64
	digits := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= '0' && c <= '9' {
			if n > (1<<62)/10 {
				return 0, false
			}
			n = n*10 + int64(c-'0')
			digits = true
			continue
		}
		if !digits {
			return 0, false
		}
		switch c {
		case 'd':
			n *= 86400
		case 'h':
			n *= 3600
		case 'm':
			n *= 60
		case 's':
		default:
			return 0, false
		}
		total += n
		n, digits = 0, false
	}
	if digits || s == "" {
		return 0, false
	}
	return total, true
}

// oldWorkerTags gives each stopping worker its worker tag, "old<N>": old1
// for the youngest (the fewest reloads lived through: the worker the last
// successful reload replaced, if it still runs), old2 for the one before
// it, and so on. Workers of one generation (nbproc) share their name. A
// failed reload, which every process counts, renames nobody; a worker
// that ends moves the older ones up.
func oldWorkerTags(stopping []procEntry) map[int]string {
	var gens []int64
	for _, w := range stopping {
		gens = append(gens, w.reloads)
	}
	slices.Sort(gens)
	gens = slices.Compact(gens)
	tags := make(map[int]string, len(stopping))
	for _, w := range stopping {
		n, _ := slices.BinarySearch(gens, w.reloads)
		tags[w.pid] = "old" + strconv.Itoa(n+1)
	}
	return tags
}

// readStatsSocket reads the answer of "show cli sockets" and returns the
// first stats socket as the server tag of a stats socket gather would
// name it: the path of "unix@/path", the host:port of
// "ipv4@host:port"; "" when there is none (only the master's socketpair)
// or the answer is not a socket list.
func readStatsSocket(lr *lineReader) string {
	for n := 1; n <= maxProcLines; n++ {
		line, complete, err := lr.next()
		if err != nil || !complete || len(line) == 0 {
			return ""
		}
		s := string(line)
		if n == 1 {
			if !strings.HasPrefix(s, "# socket") {
				return ""
			}
			continue
		}
		f := strings.Fields(s)
		if len(f) == 0 || strings.HasPrefix(f[0], "sockpair@") {
			continue
		}
		for _, p := range []string{"unix@", "ipv4@", "ipv6@"} {
			if rest, ok := strings.CutPrefix(f[0], p); ok {
				return rest
			}
		}
		return f[0]
	}
	return ""
}

// gatherMaster reads a master CLI: "show proc", its haproxy_master
// metric, then every worker through it, concurrently, each within the
// timeout. Each failure is one error naming the master and the worker.
func (h *HAProxy) gatherMaster(ep endpoint, acc telegraf.Accumulator, col *collisions) {
	var procs procAnswer
	var statsSocket string
	ts := time.Now()
	_, err := h.queryMaster(ep, masterProcCommand, func(lr *lineReader) error {
		var err error
		if procs, err = parseShowProc(lr); err != nil {
			return err
		}
		statsSocket = readStatsSocket(lr)
		return nil
	})
	if err != nil {
		acc.AddError(fmt.Errorf("show proc on %s: %w", ep.name, err))
		return
	}
	serving, stopping := h.workerRoles(ep, procs)
	macc := acc
	if col != nil {
		macc = col.source(ep.name, int64(procs.master.pid), procs.master.uptime).wrap(acc)
	}
	h.addMaster(ep, procs.master, len(serving), len(stopping), macc, ts)

	// The workers' metrics carry the server tag a gather through the
	// current worker's own stats socket gives them, so that they are the
	// same series.
	wep := ep
	if statsSocket != "" {
		wep.tag = statsSocket
	}
	tags := oldWorkerTags(stopping)
	var wg sync.WaitGroup
	gather := func(w procEntry, worker string) {
		defer wg.Done()
		if err := h.gatherWorker(wep, w, worker, acc, col); err != nil {
			acc.AddError(err)
		}
	}
	for _, w := range serving {
		wg.Add(1)
		go gather(w, "")
	}
	for _, w := range stopping {
		wg.Add(1)
		go gather(w, tags[w.pid])
	}
	wg.Wait()
}

// workerRoles sorts the workers show proc lists into those that serve and
// those that stop, by what each worker listed as old says of itself
// ("Stopping" in its show info): 2.2, 3.2 and 3.4 list the serving worker as
// old after a failed reload. A worker that does not say (a release without
// the line, an error) stays where show proc lists it; one the master no
// longer knows has ended and is left out.
func (h *HAProxy) workerRoles(ep endpoint, procs procAnswer) (serving, stopping []procEntry) {
	serving = procs.current
	type role struct {
		serves, gone bool
	}
	roles := make([]role, len(procs.old))
	var wg sync.WaitGroup
	for i, w := range procs.old {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var info infoAnswer
			_, err := h.queryMaster(ep, "@!"+strconv.Itoa(w.pid)+";show info\n", func(lr *lineReader) error {
				var err error
				info, err = parseInfo(lr)
				return err
			})
			_, gone := unknownPID(err)
			switch {
			case gone:
				roles[i].gone = true
			case err == nil:
				v, ok := info.field("Stopping")
				roles[i].serves = ok && v == 0
			}
		}()
	}
	wg.Wait()
	for i, w := range procs.old {
		switch {
		case roles[i].gone:
			h.Log.Debugf("%s, worker pid %d: ended since show proc listed it", ep.name, w.pid)
		case roles[i].serves:
			h.Log.Debugf("%s: worker pid %d is listed as old but serves (Stopping: 0): gathered as a current worker", ep.name, w.pid)
			serving = append(slices.Clip(serving), w)
		default:
			stopping = append(stopping, w)
		}
	}
	return serving, stopping
}

// gatherWorker reads one worker through the master, as gatherOne reads a
// stats socket. Old workers' metrics get the worker tag. An old worker
// that ended since "show proc" is not an error.
func (h *HAProxy) gatherWorker(ep endpoint, w procEntry, worker string, acc telegraf.Accumulator, col *collisions) error {
	master := ep.name
	who := fmt.Sprintf("worker pid %d", w.pid)
	if worker != "" {
		who += " (" + worker + ")"
	}
	ep.name += ", " + who
	a := acc
	if col != nil {
		a = col.source(ep.name, int64(w.pid), w.uptime).wrap(a)
	}
	if worker != "" {
		a = &tagAccumulator{Accumulator: a, key: "worker", value: worker}
	}
	g := &serverGather{h: h, ep: ep, acc: a, ts: time.Now()}
	g.query = func(line string, read func(*lineReader) error) error {
		_, err := h.queryMaster(ep, "@!"+strconv.Itoa(w.pid)+";"+line, read)
		return err
	}
	err, certErr := g.ask()
	if err == nil {
		if certErr != nil {
			return fmt.Errorf("show ssl cert on %s: %w", ep.name, certErr)
		}
		if worker != "" && g.rows == 0 && h.once("no rows of old workers: "+master) {
			h.Log.Infof("%s: HAProxy %s's old workers answer show stat with no rows: only their haproxy_info and the optional commands' metrics are gathered", master, g.version)
		}
		return nil
	}
	if line, ok := unknownPID(err); ok {
		if worker != "" {
			h.Log.Debugf("%s: ended since show proc listed it", ep.name)
			return nil
		}
		return fmt.Errorf("show stat on %s: the master no longer knows this pid (%s)", ep.name, line)
	}
	return fmt.Errorf("show stat on %s: %w", ep.name, err)
}

// unknownPID returns the master's answer for a pid it no longer knows,
// "Can't find the target PID matching the prefix '@!8600'", if err is it.
func unknownPID(err error) ([]byte, bool) {
	var ni *notInfoError
	if errors.As(err, &ni) && strings.HasPrefix(string(ni.first), "Can't find the target PID") {
		return ni.first, true
	}
	return nil, false
}

// queryMaster is querySocket on a master CLI within the timeout. While
// the master re-executes itself on a reload it closes connections
// unanswered, then refuses them: a try that read nothing is tried again
// until the timeout.
func (h *HAProxy) queryMaster(ep endpoint, command string, read func(*lineReader) error) (int64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(h.Timeout))
	defer cancel()
	start := time.Now()
	for tries := 1; ; tries++ {
		n, err := querySocket(ctx, ep, command, read)
		retry := err != nil && n == 0 && ctx.Err() == nil && reloadingError(err)
		if retry {
			t := time.NewTimer(retryPause)
			select {
			case <-ctx.Done():
				t.Stop()
				retry = false
			case <-t.C:
			}
		}
		if retry {
			continue
		}
		if err == nil {
			if tries > 1 {
				h.Log.Debugf("%s: answered after %d tries in %s (the master was reloading)", ep.name, tries, time.Since(start).Round(time.Millisecond))
			}
			return n, nil
		}
		if ctx.Err() != nil || errors.Is(err, os.ErrDeadlineExceeded) {
			err = fmt.Errorf("%w (timeout %s, %d bytes read)", err, h.Timeout, n)
		}
		if tries > 1 {
			err = fmt.Errorf("%w (%d tries in %s: the master refuses connections while it reloads, and when it has stopped)", err, tries, time.Since(start).Round(time.Millisecond))
		}
		return n, err
	}
}

// reloadingError reports an error a reloading master causes: a refused
// or reset connection, or one closed before any answer.
func reloadingError(err error) bool {
	var te *TruncatedError
	return errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.EPIPE) || errors.Is(err, io.EOF) ||
		(errors.As(err, &te) && te.Reason == "empty answer")
}

// addMaster emits the haproxy_master metric of one master: its reloads,
// and its workers counted as workerRoles sorted them.
func (h *HAProxy) addMaster(ep endpoint, master procEntry, serving, stopping int, acc telegraf.Accumulator, ts time.Time) {
	m := metric.New("haproxy_master", map[string]string{"server": ep.tag}, nil, ts)
	add := func(name string, v any) {
		if h.fields == nil || h.fields.Match(name) {
			m.AddField(name, v)
		}
	}
	add("reloads", master.reloads)
	if master.failed >= 0 {
		add("failed_reloads", master.failed)
	}
	add("workers", int64(serving))
	add("old_workers", int64(stopping))
	if master.uptime >= 0 {
		add("uptime_sec", master.uptime)
	}
	if master.version != "" {
		add("version", master.version)
	}
	if len(m.FieldList()) > 0 {
		acc.AddMetric(m)
	}
}

// tagAccumulator adds one tag to every metric on its way to Accumulator.
type tagAccumulator struct {
	telegraf.Accumulator
	key, value string
}

func (a *tagAccumulator) AddMetric(m telegraf.Metric) {
	m.AddTag(a.key, a.value)
	a.Accumulator.AddMetric(m)
}

func (a *tagAccumulator) tags(tags map[string]string) map[string]string {
	out := make(map[string]string, len(tags)+1)
	for k, v := range tags {
		out[k] = v
	}
	out[a.key] = a.value
	return out
}

func (a *tagAccumulator) AddFields(name string, fields map[string]any, tags map[string]string, t ...time.Time) {
	a.Accumulator.AddFields(name, fields, a.tags(tags), t...)
}

func (a *tagAccumulator) AddGauge(name string, fields map[string]any, tags map[string]string, t ...time.Time) {
	a.Accumulator.AddGauge(name, fields, a.tags(tags), t...)
}

func (a *tagAccumulator) AddCounter(name string, fields map[string]any, tags map[string]string, t ...time.Time) {
	a.Accumulator.AddCounter(name, fields, a.tags(tags), t...)
}

func (a *tagAccumulator) AddSummary(name string, fields map[string]any, tags map[string]string, t ...time.Time) {
	a.Accumulator.AddSummary(name, fields, a.tags(tags), t...)
}

func (a *tagAccumulator) AddHistogram(name string, fields map[string]any, tags map[string]string, t ...time.Time) {
	a.Accumulator.AddHistogram(name, fields, a.tags(tags), t...)
}
