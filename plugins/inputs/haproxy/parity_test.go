package haproxy

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/influxdata/line-protocol/v2/lineprotocol"
	"github.com/influxdata/telegraf"

	"github.com/hap-monitor/hap-monitor/internal/testbed"
)

// lpRow is one metric reduced to what parity compares: tags with values,
// field names with their line-protocol type.
type lpRow struct {
	tags   map[string]string
	fields map[string]string // name -> "i", "u", "f", "s", "b"
}

// TestSchemaParityWithTelegraf runs the real Telegraf v1.39.3 with
// [[inputs.haproxy]] on the same HAProxy and checks that each of its
// haproxy metrics has our tags and our field names and types, ignoring
// only our documented additions (process_num, status.*, servers.*).
func TestSchemaParityWithTelegraf(t *testing.T) {
	bin := testbed.Telegraf(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	hp := testbed.NewHAProxy(t, testbed.HAProxyOptions{})
	plain := []string{hp.AdminSocket, "tcp://" + hp.TCPAddr, hp.StatsURL}
	kept := []string{"socket:" + hp.UserSocket}

	ours := func() map[string]lpRow {
		a := newPlugin(t, &HAProxy{Servers: plain})
		b := newPlugin(t, &HAProxy{Servers: kept, KeepFieldNames: true})
		ma, ea := gather(t, a)
		mb, eb := gather(t, b)
		if len(ea)+len(eb) > 0 {
			t.Fatalf("our errors: %v %v", ea, eb)
		}
		return rowsOf(append(ma, mb...))
	}
	before := ours()
	theirs := runTelegraf(ctx, t, bin, plain, kept)
	after := ours()
	// A string cell can be empty for a moment (last_chk while a check
	// runs): ask Telegraf again, up to twice, for fields only we emitted,
	// and keep every field it emitted in any of its snapshots.
	for i := 0; i < 2 && onlyOurs(before, after, theirs); i++ {
		for key, row := range runTelegraf(ctx, t, bin, plain, kept) {
			if tr, ok := theirs[key]; ok {
				for name, typ := range row.fields {
					if _, seen := tr.fields[name]; !seen {
						tr.fields[name] = typ
					}
				}
			}
		}
	}

	t.Logf("telegraf printed %d haproxy metrics from %d servers", len(theirs), len(plain)+len(kept))
	if len(theirs) != len(before) {
		t.Errorf("telegraf printed %d haproxy metrics, we emit %d", len(theirs), len(before))
	}
	for key, tr := range theirs {
		or, ok := before[key]
		if !ok {
			t.Errorf("%s: telegraf's metric has no counterpart here", key)
			continue
		}
		delete(or.tags, "process_num")
		if fmt.Sprint(or.tags) != fmt.Sprint(tr.tags) {
			t.Errorf("%s: tags %v, telegraf %v", key, or.tags, tr.tags)
		}
		for name, typ := range tr.fields {
			if got, ok := or.fields[name]; ok && got != typ {
				t.Errorf("%s: field %s typed %s, telegraf %s", key, name, got, typ)
			} else if !ok && after[key].fields[name] == "" {
				t.Errorf("%s: field %s (%s) missing here", key, name, typ)
			}
		}
		for name := range or.fields {
			if _, ok := tr.fields[name]; !ok && !ourAddition(name) && after[key].fields[name] != "" {
				t.Errorf("%s: field %s emitted here, not by telegraf", key, name)
			}
		}
	}
}

// ourAddition reports whether a field is one Telegraf does not emit by
// design: the one-hot status fields and a backend's server counts.
func ourAddition(name string) bool {
	return strings.HasPrefix(name, statusFieldPrefix) || strings.HasPrefix(name, serverCountPrefix)
}

// onlyOurs reports whether a row of ours, in both snapshots, has a field
// other than our additions that Telegraf's same row lacks.
func onlyOurs(before, after, theirs map[string]lpRow) bool {
	for key, tr := range theirs {
		for name := range before[key].fields {
			if _, ok := tr.fields[name]; !ok && !ourAddition(name) && after[key].fields[name] != "" {
				return true
			}
		}
	}
	return false
}

func runTelegraf(ctx context.Context, t *testing.T, bin string, plain, kept []string) map[string]lpRow {
	t.Helper()
	conf := fmt.Sprintf("[agent]\n  omit_hostname = true\n[[inputs.haproxy]]\n  servers = %s\n[[inputs.haproxy]]\n  servers = %s\n  keep_field_names = true\n",
		tomlList(plain), tomlList(kept))
	path := filepath.Join(t.TempDir(), "telegraf.conf")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(ctx, bin, "--config", path, "--test")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("telegraf --test: %v\n%s", err, stderr.String())
	}
	var lp strings.Builder
	for _, line := range strings.Split(string(out), "\n") {
		if l, ok := strings.CutPrefix(line, "> "); ok && strings.HasPrefix(l, "haproxy,") {
			lp.WriteString(l + "\n")
		}
	}
	rows, err := decodeLP(lp.String())
	if err != nil {
		t.Fatalf("telegraf's output: %v\n%s", err, out)
	}
	if len(rows) == 0 {
		t.Fatalf("telegraf printed no haproxy metric:\n%s\n%s", out, stderr.String())
	}
	return rows
}

func tomlList(s []string) string {
	q := make([]string, len(s))
	for i, v := range s {
		q[i] = fmt.Sprintf("%q", v)
	}
	return "[" + strings.Join(q, ", ") + "]"
}

func decodeLP(text string) (map[string]lpRow, error) {
	rows := make(map[string]lpRow)
	dec := lineprotocol.NewDecoderWithBytes([]byte(text))
	for dec.Next() {
		if _, err := dec.Measurement(); err != nil {
			return nil, err
		}
		r := lpRow{tags: map[string]string{}, fields: map[string]string{}}
		for {
			k, v, err := dec.NextTag()
			if err != nil {
				return nil, err
			}
			if k == nil {
				break
			}
			r.tags[string(k)] = string(v)
		}
		for {
			k, v, err := dec.NextField()
			if err != nil {
				return nil, err
			}
			if k == nil {
				break
			}
			r.fields[string(k)] = map[lineprotocol.ValueKind]string{lineprotocol.Int: "i", lineprotocol.Uint: "u",
				lineprotocol.Float: "f", lineprotocol.String: "s", lineprotocol.Bool: "b"}[v.Kind()]
		}
		rows[rowKey(r.tags)] = r
	}
	return rows, nil
}

// rowsOf reduces our haproxy metrics as decodeLP does Telegraf's.
func rowsOf(ms []telegraf.Metric) map[string]lpRow {
	rows := make(map[string]lpRow)
	for _, m := range ms {
		if m.Name() != "haproxy" {
			continue
		}
		r := lpRow{tags: m.Tags(), fields: map[string]string{}}
		for _, f := range m.FieldList() {
			switch f.Value.(type) {
			case int64:
				r.fields[f.Key] = "i"
			case uint64:
				r.fields[f.Key] = "u"
			case float64:
				r.fields[f.Key] = "f"
			case string:
				r.fields[f.Key] = "s"
			case bool:
				r.fields[f.Key] = "b"
			default:
				r.fields[f.Key] = fmt.Sprintf("%T", f.Value)
			}
		}
		rows[rowKey(r.tags)] = r
	}
	return rows
}

func rowKey(tags map[string]string) string {
	keys := []string{"server", "proxy", "pxname", "sv", "svname"}
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		if v, ok := tags[k]; ok {
			parts = append(parts, k+"="+v)
		}
	}
	sort.Strings(parts)
	return strings.Join(parts, ",")
}
