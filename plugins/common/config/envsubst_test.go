package config

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
)

// testEnv is the environment of the tests: SET is set, EMPTY is set to "",
// UNSET is not set.
var testEnv = map[string]string{
	"SET":      "value",
	"EMPTY":    "",
	"OTHER":    "other",
	"INTERVAL": "10s",
	"PORT":     "8404",
	"_u9":      "underscore",
	"DOLLAR":   "a$b",
	"NL":       "one\ntwo",
	"QUOTE":    `x"y`,
}

func testLookup(name string) (string, bool) {
	v, ok := testEnv[name]
	return v, ok
}

func TestExpandEnv(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		// the forms
		{"plain", "a = $SET", "a = value"},
		{"braced", "a = ${SET}", "a = value"},
		{"plain empty", "a = '$EMPTY'", "a = ''"},
		{"braced empty", "a = '${EMPTY}'", "a = ''"},
		{"name ends at a non-name byte", `a = "$SET.x-$SET/${SET}y"`, `a = "value.x-value/valuey"`},
		{"name with digits and underscore", `a = "$_u9 ${_u9}"`, `a = "underscore underscore"`},
		{"names are case-sensitive", `a = "${set:-no}"`, `a = "no"`},
		{"adjacent", `a = "$SET$OTHER${SET}${OTHER}"`, `a = "valueothervalueother"`},

		{":- set", `a = "${SET:-d}"`, `a = "value"`},
		{":- empty", `a = "${EMPTY:-d}"`, `a = "d"`},
		{":- unset", `a = "${UNSET:-d}"`, `a = "d"`},
		{":- unset, empty default", `a = "${UNSET:-}"`, `a = ""`},
		{"- set", `a = "${SET-d}"`, `a = "value"`},
		{"- empty", `a = "${EMPTY-d}"`, `a = ""`},
		{"- unset", `a = "${UNSET-d}"`, `a = "d"`},
		{":+ set", `a = "${SET:+alt}"`, `a = "alt"`},
		{":+ empty", `a = "${EMPTY:+alt}"`, `a = ""`},
		{":+ unset", `a = "${UNSET:+alt}"`, `a = ""`},
		{"+ set", `a = "${SET+alt}"`, `a = "alt"`},
		{"+ empty", `a = "${EMPTY+alt}"`, `a = "alt"`},
		{"+ unset", `a = "${UNSET+alt}"`, `a = ""`},
		{":? set", `a = "${SET:?needed}"`, `a = "value"`},
		{"? set", `a = "${SET?needed}"`, `a = "value"`},
		{"? empty", `a = "${EMPTY?needed}"`, `a = ""`},
		{"default with spaces and symbols", `a = "${UNSET:-a b:c-d+e?f}"`, `a = "a b:c-d+e?f"`},
		{"default with #", `a = "${UNSET:-#x}"`, `a = "#x"`},
		{"default ends at the first }", `a = "${UNSET:-x}y}"`, `a = "xy}"`},
		{"{ does not nest", `a = "${UNSET:-{x}}"`, `a = "{x}"`},

		// nested patterns in the word
		{"nested default", `a = "${UNSET:-${OTHER}}"`, `a = "other"`},
		{"nested plain", `a = "${UNSET:-$OTHER/x}"`, `a = "other/x"`},
		{"nested twice", `a = "${UNSET:-${UNSET2:-${SET}}}!"`, `a = "value!"`},
		{"nested in alt", `a = "${SET:+<${OTHER}>}"`, `a = "<other>"`},
		{"unused word is not expanded", `a = "${SET:-${UNSET}}"`, `a = "value"`},
		{"unused alt is not expanded", `a = "${UNSET:+${UNSET2}}"`, `a = ""`},
		{"$$ in a default", `a = "${UNSET:-$$5}"`, `a = "$5"`},

		// $$
		{"$$", `a = "$$SET"`, `a = "$SET"`},
		{"$$ braced", `a = "$${SET}"`, `a = "${SET}"`},
		{"$$$$", `a = "$$$$"`, `a = "$$"`},
		{"$$$", `a = "$$$SET"`, `a = "$value"`},

		// values are inserted as they are, not read again
		{"value with $", `a = "$DOLLAR"`, `a = "a$b"`},
		{"value with quote", `a = "$QUOTE"`, `a = "x"y"`},

		// text that is not a pattern
		{"regex end", `pattern = "^foo$"`, `pattern = "^foo$"`},
		{"regex class", `pattern = '[^a-z]$'`, `pattern = '[^a-z]$'`},
		{"regex group", `pattern = '^(a|b)$|^c$'`, `pattern = '^(a|b)$|^c$'`},
		{"$ at the end", "a = 1 $", "a = 1 $"},
		{"$ before a newline", "a = '$'\nb = 2$\n", "a = '$'\nb = 2$\n"},
		{"$ before a digit", `replacement = "${1}-$1"`, `replacement = "${1}-$1"`},
		{"${}", `a = "${}"`, `a = "${}"`},
		{"${ space", `a = "${ SET}"`, `a = "${ SET}"`},
		{"invalid operator", `a = "${SET:x}"`, `a = "${SET:x}"`},
		{"invalid operator keeps the rest", `a = "${SET*}$SET"`, `a = "${SET*}value"`},
		{"unclosed", `a = "${UNSET:-x"`, `a = "${UNSET:-x"`},
		{"unclosed on the line", "a = \"\"\"${UNSET:-x\n}\"\"\"", "a = \"\"\"${UNSET:-x\n}\"\"\""},
		{"unclosed nested", `a = "${UNSET:-${SET}"`, `a = "${UNSET:-value"`},
		{"unclosed before a comment", "a = ${UNSET:-x # }\n", "a = ${UNSET:-x # }\n"},

		// outside strings
		{"unquoted", "interval = $INTERVAL\n", "interval = 10s\n"},
		{"number", "port = ${PORT}\n", "port = 8404\n"},
		{"in a key and a header", "[inputs.${SET}]\n$SET = 1\n", "[inputs.value]\nvalue = 1\n"},

		// literal strings are substituted too, as Telegraf does
		{"literal string", `a = '$SET ${OTHER}'`, `a = 'value other'`},
		{"multi-line literal", "a = '''\n$SET\n'''", "a = '''\nvalue\n'''"},

		// comments
		{"comment", "a = 1 # $UNSET ${UNSET} $$\n", "a = 1 # $UNSET ${UNSET} $$\n"},
		{"comment line", "# $UNSET\na = \"$SET\"\n", "# $UNSET\na = \"value\"\n"},
		{"comment at the end", "a = \"$SET\" # ${UNSET:?boom}", "a = \"value\" # ${UNSET:?boom}"},
		{"comment after a pattern", "a = $SET# $UNSET", "a = value# $UNSET"},
		{"indented comment", "  # ${UNSET}\n  a = $SET", "  # ${UNSET}\n  a = value"},
		{"# in a basic string", `a = "x # $SET" # $UNSET`, `a = "x # value" # $UNSET`},
		{"# in a literal string", `a = 'x # $SET' # $UNSET`, `a = 'x # value' # $UNSET`},
		{"escaped quote", `a = "a \" # not a comment $SET" # $UNSET`, `a = "a \" # not a comment value" # $UNSET`},
		{"escaped backslash", `a = "a \\" # $UNSET`, `a = "a \\" # $UNSET`},
		{"backslash in a literal string", `a = 'a \' # $UNSET`, `a = 'a \' # $UNSET`},
		{"' in a basic string", `a = "it's $SET" # $UNSET`, `a = "it's value" # $UNSET`},
		{`" in a literal string`, `a = 'say "$SET' # $UNSET`, `a = 'say "value' # $UNSET`},
		{"empty strings", `a = "" # $UNSET` + "\n" + `b = '' # $UNSET`, `a = "" # $UNSET` + "\n" + `b = '' # $UNSET`},
		{"# in a multi-line basic string",
			"a = \"\"\"\nx # $SET\n\"y\" # $SET\n\"\"\" # $UNSET\nb = $SET",
			"a = \"\"\"\nx # value\n\"y\" # value\n\"\"\" # $UNSET\nb = value"},
		{"# in a multi-line literal string",
			"a = '''\nx # $SET\n'y' # $SET\n''' # $UNSET\nb = $SET",
			"a = '''\nx # value\n'y' # value\n''' # $UNSET\nb = value"},
		{"escaped quotes in a multi-line string",
			"a = \"\"\"x \\\"\"\" # $SET\n\"\"\" # $UNSET",
			"a = \"\"\"x \\\"\"\" # value\n\"\"\" # $UNSET"},
		{"multi-line string ending with quotes",
			"a = \"\"\"x\"\"\"\"\" # $UNSET\nb = '''y''''' # $UNSET",
			"a = \"\"\"x\"\"\"\"\" # $UNSET\nb = '''y''''' # $UNSET"},
		{"unterminated string ends at the line's end",
			"a = \"x $SET\nb = 1 # $UNSET",
			"a = \"x value\nb = 1 # $UNSET"},

		// no $ at all
		{"empty", "", ""},
		{"no $", "a = 'b' # c\n", "a = 'b' # c\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := expandEnv([]byte(tt.in), testLookup)
			if err != nil {
				t.Fatalf("expandEnv(%q): %v", tt.in, err)
			}
			if string(got) != tt.want {
				t.Errorf("expandEnv(%q)\n got %q\nwant %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestExpandEnvErrors(t *testing.T) {
	tests := []struct {
		name, in string
		line     int
		varName  string
		msg      string
	}{
		{"plain unset", "a = 1\nb = $UNSET\n", 2, "UNSET",
			"environment variable UNSET is not set (set it, give a default with ${UNSET:-value}, or write $$ for a literal $)"},
		{"braced unset", "[agent]\n\n\n\n\n\n  socket = \"${HAPROXY_SOCKET}\"\n", 7, "HAPROXY_SOCKET",
			"environment variable HAPROXY_SOCKET is not set (set it, give a default with ${HAPROXY_SOCKET:-value}, or write $$ for a literal $)"},
		{"unset in a literal string", "a = 'x$UNSET'", 1, "UNSET", "UNSET is not set"},
		{"unset unquoted", "a = 1 # $NOPE\nb = $UNSET # $NOPE", 2, "UNSET", "UNSET is not set"},
		{"unset in a used default", `a = "${UNSET:-${UNSET2}}"`, 1, "UNSET2", "UNSET2 is not set"},
		{"unset in a used alt", `a = "${SET:+$UNSET2}"`, 1, "UNSET2", "UNSET2 is not set"},
		{":? unset", "a = 1\n\nb = \"${UNSET:?give the socket's path}\"", 3, "UNSET",
			"environment variable UNSET is not set: give the socket's path"},
		{":? empty", `b = "${EMPTY:?give it}"`, 1, "EMPTY", "environment variable EMPTY is empty: give it"},
		{"? unset", `b = "${UNSET?give it}"`, 1, "UNSET", "environment variable UNSET is not set: give it"},
		{":? without a message", `b = "${UNSET:?}"`, 1, "UNSET", "environment variable UNSET is not set"},
		{":? message with a variable", `b = "${UNSET:?$SET needs it}"`, 1, "UNSET", "is not set: value needs it"},
		{":? message with an unset variable", `b = "${UNSET:?$UNSET2 needs it}"`, 1, "UNSET", "is not set: $UNSET2 needs it"},
		{"pattern on the 3rd line of a multi-line string",
			"a = 1\nb = \"\"\"\nfirst\n# not a comment\nx $UNSET\n\"\"\"\n", 5, "UNSET", "UNSET is not set"},
		{"pattern on the 3rd line of a multi-line literal string",
			"b = '''one\ntwo # not a comment\n${UNSET}'''\n", 3, "UNSET", "UNSET is not set"},
		{"after a value holding a newline", "a = \"$NL\"\nb = \"$UNSET\"", 2, "UNSET", "UNSET is not set"},
		{"after a comment with a quote", "a = 1 # it's\nb = \"$UNSET\"", 2, "UNSET", "UNSET is not set"},
		{"first error wins", "a = $UNSET1\nb = $UNSET2", 1, "UNSET1", "UNSET1 is not set"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := expandEnv([]byte(tt.in), testLookup)
			if err == nil {
				t.Fatalf("expandEnv(%q) = %q, want an error", tt.in, got)
			}
			var e *EnvError
			if !errors.As(err, &e) {
				t.Fatalf("expandEnv(%q): error %T %v, want *EnvError", tt.in, err, err)
			}
			if e.Line != tt.line || e.Name != tt.varName || !strings.Contains(e.Msg, tt.msg) {
				t.Errorf("expandEnv(%q): got line %d, name %q, msg %q; want line %d, name %q, msg containing %q",
					tt.in, e.Line, e.Name, e.Msg, tt.line, tt.varName, tt.msg)
			}
			if want := fmt.Sprintf("line %d: %s", tt.line, e.Msg); err.Error() != want {
				t.Errorf("Error() = %q, want %q", err.Error(), want)
			}
			if got != nil {
				t.Errorf("result = %q on error, want nil", got)
			}
		})
	}
}

func TestExpandEnvKeepsLines(t *testing.T) {
	in := "# $UNSET\n[inputs.haproxy]\n  servers = [\"${SOCK:-/run/haproxy.sock}\"] # ${UNSET}\n" +
		"  tag = '''\n$SET\n''' # $$\n  interval = \"$INTERVAL\"\n"
	got, err := expandEnv([]byte(in), testLookup)
	if err != nil {
		t.Fatal(err)
	}
	if g, w := bytes.Count(got, []byte("\n")), strings.Count(in, "\n"); g != w {
		t.Errorf("%d lines, want %d:\n%s", g, w, got)
	}
	want := "# $UNSET\n[inputs.haproxy]\n  servers = [\"/run/haproxy.sock\"] # ${UNSET}\n" +
		"  tag = '''\nvalue\n''' # $$\n  interval = \"10s\"\n"
	if string(got) != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}

func TestExpandEnvValueWithNewline(t *testing.T) {
	got, err := expandEnv([]byte("a = '''$NL'''\nb = 1"), testLookup)
	if err != nil {
		t.Fatal(err)
	}
	if want := "a = '''one\ntwo'''\nb = 1"; string(got) != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func FuzzExpandEnv(f *testing.F) {
	for _, s := range []string{
		"", "a = 1", "a = $SET", "a = ${UNSET:-${SET}} # $X", `a = "x # \" $SET"`,
		"a = '''\n#\n$SET'''", `"""a""""" # $X`, "${", "$$", "${A:?}", "${1}", `\#`,
		"a = \"${SET:+${EMPTY-x}}\"\n", "'''''''", `"\`,
	} {
		f.Add(s)
	}
	lines := func(b []byte) int { return bytes.Count(b, []byte("\n")) + 1 }
	f.Fuzz(func(t *testing.T, in string) {
		got, err := expandEnv([]byte(in), testLookup)
		if err != nil {
			var e *EnvError
			if !errors.As(err, &e) {
				t.Fatalf("error %T %v, want *EnvError", err, err)
			}
			if e.Line < 1 || e.Line > lines([]byte(in)) || e.Name == "" {
				t.Fatalf("error %+v for %q", e, in)
			}
		}
		if !strings.Contains(in, "$") {
			if err != nil || string(got) != in {
				t.Fatalf("expandEnv(%q) = %q, %v; want it unchanged", in, got, err)
			}
		}

		// With every variable set to a value without a newline, nothing
		// fails and the lines stay as they are.
		got, err = expandEnv([]byte(in), func(string) (string, bool) { return "v", true })
		if err != nil {
			t.Fatalf("expandEnv(%q) with every variable set: %v", in, err)
		}
		if lines(got) != lines([]byte(in)) {
			t.Fatalf("expandEnv(%q) = %q: %d lines, want %d", in, got, lines(got), lines([]byte(in)))
		}
	})
}
