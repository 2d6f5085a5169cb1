package lineproto

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/influxdata/telegraf"
	"github.com/influxdata/telegraf/metric"
)

var now = time.Unix(1800000000, 0)

// lp renders a metric as line protocol, its fields sorted, a line break
// ending it.
func lp(t *testing.T, m telegraf.Metric) string {
	t.Helper()
	sorted := metric.New(m.Name(), m.Tags(), map[string]any{}, m.Time())
	fields := m.FieldList()
	slices.SortFunc(fields, func(a, b *telegraf.Field) int { return strings.Compare(a.Key, b.Key) })
	for _, f := range fields {
		sorted.AddField(f.Key, f.Value)
	}
	var b bytes.Buffer
	enc := NewEncoder(&b)
	if err := enc.Encode(sorted); err != nil {
		t.Fatal(err)
	}
	if err := enc.Flush(); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func TestDecodeLine(t *testing.T) {
	for _, tc := range []struct {
		name, line string
		want       string // the metric re-encoded, without its line break; "" for none
		err        string
	}{
		{"every type", `mem,host=a,zone=b\ c used=42i,free=7u,ok=true,name="x y",pct=1.5 3000000000`,
			`mem,host=a,zone=b\ c free=7u,name="x y",ok=true,pct=1.5,used=42i 3000000000`, ""},
		{"line break", "cpu v=1 1\n", "cpu v=1 1", ""},
		{"CRLF", "cpu v=1 1\r\n", "cpu v=1 1", ""},
		{"no timestamp", "cpu v=1", fmt.Sprintf("cpu v=1 %d", now.UnixNano()), ""},
		{"empty", "", "", ""},
		{"blank", "  \n", "", ""},
		{"comment", "# cpu v=1 1\n", "", ""},
		{"no value", "cpu,host=a usage= 2000000000", "", "column 18: field value has unrecognized type"},
		{"no field", "cpu,host=a 2000000000", "", `column 22: want '=' after field key "2000000000", found end of input`},
		{"invalid UTF-8", "bad\xff\xfe,host=a v=1 5000000000", "", "column 1: "},
		{"bad timestamp", "cpu v=3 notatime", "", `column 9: invalid timestamp ("notatime")`},
		{"timestamp out of range", "cpu v=4 99999999999999999999999", "", "invalid timestamp: line-protocol value out of range"},
		{"two metrics", "cpu v=1 1\ncpu v=2 2\n", "", "more than one metric on the line"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := DecodeLine([]byte(tc.line), now)
			switch {
			case tc.err != "":
				if err == nil || !strings.HasPrefix(err.Error(), tc.err) {
					t.Errorf("error %v, want one starting %q", err, tc.err)
				}
				if err != nil && regexp.MustCompile(`line \d`).MatchString(err.Error()) {
					t.Errorf("error %q names the decoder's line", err)
				}
				if m != nil {
					t.Errorf("a metric and an error")
				}
			case err != nil:
				t.Errorf("error %v", err)
			case tc.want == "":
				if m != nil {
					t.Errorf("got %q, want no metric", lp(t, m))
				}
			case m == nil:
				t.Errorf("no metric, want %q", tc.want)
			default:
				if got := strings.TrimSuffix(lp(t, m), "\n"); got != tc.want {
					t.Errorf("got %q, want %q", got, tc.want)
				}
			}
		})
	}
}

// readAll renders what Next returns until the end, one string each: the
// metric's line, "line N: error", "EOF" or "read error: ...".
func readAll(t *testing.T, r *Reader) []string {
	t.Helper()
	var got []string
	for range 1000 {
		m, err := r.Next()
		var le *LineError
		var re *ReadError
		switch {
		case err == nil:
			got = append(got, strings.TrimSuffix(lp(t, m), "\n"))
			continue
		case errors.As(err, &le):
			got = append(got, err.Error())
			if le.Err == nil || !errors.Is(err, le.Err) {
				t.Errorf("%v does not unwrap to its cause", err)
			}
			continue
		case errors.Is(err, io.EOF):
			got = append(got, "EOF")
		case errors.As(err, &re):
			got = append(got, "read error: "+err.Error())
		default:
			t.Fatalf("Next: unexpected error %T %v", err, err)
		}
		// The end is final.
		if _, again := r.Next(); again != err {
			t.Errorf("Next after %v: %v", err, again)
		}
		return got
	}
	t.Fatal("no end")
	return nil
}

func TestReader(t *testing.T) {
	big := strings.Repeat("x", 200<<10) // over bufio's 64 KiB
	for _, tc := range []struct {
		name  string
		input string
		max   int
		want  []string
	}{
		{"nothing", "", 0, []string{"EOF"}},
		{"good lines", "a v=1 1\nb,k=v s=\"x\" 2\nc u=3u 3\n", 0,
			[]string{"a v=1 1", `b,k=v s="x" 2`, "c u=3u 3", "EOF"}},
		{"bad line then good line", "a v= 1\nb v=2 2\n", 0,
			[]string{"line 1: column 5: field value has unrecognized type", "b v=2 2", "EOF"}},
		{"empty and comment lines counted", "\n# a comment\n\n  \na v=1 1\n#\nbad\nb v=2 2\n", 0,
			[]string{"a v=1 1", "line 7: column 4: expected tag key or field but found '\\n' instead", "b v=2 2", "EOF"}},
		{"comments only", "# one\n# two\n", 0, []string{"EOF"}},
		{"CRLF", "a v=1 1\r\nb v=2 2\r\n", 0, []string{"a v=1 1", "b v=2 2", "EOF"}},
		{"no timestamp", "a v=1\n", 0, []string{fmt.Sprintf("a v=1 %d", now.UnixNano()), "EOF"}},
		{"line of max bytes", "a v=1 1\nab v=1 1\n", 8, []string{"a v=1 1", "ab v=1 1", "EOF"}},
		{"line of max bytes and CR", "ab v=1 1\r\n", 8, []string{"line 1: line too long", "EOF"}},
		{"too long then good", "abc v=1 1\nb v=2 2\nabcdefghijkl v=3 3\nc v=4 4\n", 8,
			[]string{"line 1: line too long", "b v=2 2", "line 3: line too long", "c v=4 4", "EOF"}},
		{"too long, longer than the buffer", "a v=1 1\nb s=\"" + big + "\" 2\nc v=3 3\n", 100 << 10,
			[]string{"a v=1 1", "line 2: line too long", "c v=3 3", "EOF"}},
		{"long, longer than the buffer", "b s=\"" + big + "\" 2\nc v=3 3\n", 0,
			[]string{`b s="` + big + `" 2`, "c v=3 3", "EOF"}},
		{"last line without line break", "a v=1 1\nb v=123 2", 0,
			[]string{"a v=1 1", "line 2: input ended before the line break", "EOF"}},
		{"last line without line break after blank lines", "a v=1 1\n\n\nb v=1", 0,
			[]string{"a v=1 1", "line 4: input ended before the line break", "EOF"}},
		{"last line too long without line break", "a v=1 1\nabcdefghijkl v=3 3", 8,
			[]string{"a v=1 1", "line 2: line too long", "EOF"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, slow := range []bool{false, true} {
				var in io.Reader = strings.NewReader(tc.input)
				if slow && len(tc.input) < 1000 {
					in = iotest.OneByteReader(in)
				}
				r := NewReader(in, tc.max)
				r.now = func() time.Time { return now }
				got := readAll(t, r)
				if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
					t.Errorf("one byte per read: %v\ngot  %q\nwant %q", slow, got, tc.want)
				}
			}
		})
	}
}

func TestReaderSentinels(t *testing.T) {
	r := NewReader(strings.NewReader("abcdefghij v=1 1\na v=1"), 8)
	_, err := r.Next()
	var le *LineError
	if !errors.As(err, &le) || le.Line != 1 || le.Err != ErrLineTooLong || !errors.Is(err, ErrLineTooLong) {
		t.Errorf("too long: %#v", err)
	}
	_, err = r.Next()
	if !errors.As(err, &le) || le.Line != 2 || le.Err != ErrCutShort || !errors.Is(err, ErrCutShort) {
		t.Errorf("cut short: %#v", err)
	}
	if r.Line() != 2 {
		t.Errorf("Line() = %d, want 2", r.Line())
	}
}

func TestReaderReadError(t *testing.T) {
	boom := errors.New("boom")
	for _, tc := range []struct {
		name, before string
		want         []string
	}{
		{"between lines", "a v=1 1\nb v=2 2\n", []string{"a v=1 1", "b v=2 2", "read error: after line 2: boom"}},
		{"mid-line: the partial line is dropped", "a v=1 1\nb v=12", []string{"a v=1 1", "read error: after line 1: boom"}},
		{"mid too-long line", "a v=1 1\nabcdefghijkl", []string{"a v=1 1", "read error: after line 1: boom"}},
		{"first", "", []string{"read error: after line 0: boom"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := NewReader(io.MultiReader(strings.NewReader(tc.before), iotest.ErrReader(boom)), 8)
			got := readAll(t, r)
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("got  %q\nwant %q", got, tc.want)
			}
			_, err := r.Next()
			var re *ReadError
			if !errors.Is(err, boom) || !errors.As(err, &re) {
				t.Errorf("Next: %v, want a *ReadError wrapping the reader's", err)
			}
		})
	}
}

func TestReaderDefaultMax(t *testing.T) {
	if r := NewReader(strings.NewReader(""), 0); r.max != MaxLineBytes {
		t.Errorf("max %d, want MaxLineBytes", r.max)
	}
}
