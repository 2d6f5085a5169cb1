package config

import (
	"bytes"
	"fmt"
)

// EnvError reports an environment variable that could not be substituted:
// one that is not set and has no default, or one whose ${NAME:?message} or
// ${NAME?message} check failed. Line is the line (from 1) of the pattern in
// the original text, so a caller can print "file:line: message".
type EnvError struct {
	Line int    // line of the pattern in the text given to expandEnv
	Name string // the variable's name
	Msg  string // what went wrong and, when it can, what to do
}

func (e *EnvError) Error() string {
	return fmt.Sprintf("line %d: %s", e.Line, e.Msg)
}

// expandEnv returns data with environment variables substituted, as
// Telegraf does before it parses its configuration (in its non-strict mode:
// the substitution works on the text, not on the parsed values), with the
// syntax of compose-spec's templates:
//
//	$NAME, ${NAME}    the value of NAME
//	${NAME:-word}     word if NAME is unset or empty
//	${NAME-word}      word if NAME is unset
//	${NAME:+word}     word if NAME is set and not empty, else ""
//	${NAME+word}      word if NAME is set, else ""
//	${NAME:?message}  an error carrying message if NAME is unset or empty
//	${NAME?message}   an error carrying message if NAME is unset
//	$$                a literal $
//
// lookup gives a variable's value and whether it is set (os.LookupEnv).
// A name is [A-Za-z_][A-Za-z0-9_]*; "$a.b" is the variable a followed by
// ".b". The word may itself hold patterns (${A:-${B:-x}}); it is expanded
// only when it is used. A braced pattern ends with the first "}" that
// closes it on the same line; "{" alone does not nest, "${" does.
//
// Text that is not a pattern stays as it is, so regular expressions and
// their replacements survive: a "$" not followed by a name, "{" or "$"
// ("^foo$", "[^a-z]$") is kept, and so is the "${" of an invalid braced
// pattern ("${1}", "${}", "${NAME:x}", a "${" without its "}" on the
// line), as Telegraf keeps them; the text after that "${" is read again.
//
// One difference from Telegraf is deliberate: a variable that is not set
// and has no default is an error (*EnvError) naming the variable and its
// line, where Telegraf silently keeps the pattern and the plugin later
// gets "$NAME" as a value, a mistake that is hard to see.
//
// Comments are left alone: a "#" outside a string starts a comment that
// runs to the end of the line, and nothing in it is substituted (Telegraf
// removes comments before substituting; here they are kept as they are so
// that the TOML parser's line numbers and messages stay right). A "#"
// inside a string does not start a comment, whichever its kind:
//
//	"basic, with \" escapes"    'literal'    """multi-line"""    '''multi-line'''
//
// Everything else is substituted, inside strings (literal strings too, as
// in Telegraf, since the substitution is on the text) and outside them
// (interval = $INTERVAL).
//
// Substitution never adds or removes a newline of the source and errors
// give the line of the pattern in data. A value that holds a newline is
// inserted as it is, as Telegraf does: the lines that follow it then move
// down in the result.
//
// Text without "$" is returned unchanged (data itself). On error the
// result is nil and the error is the first one found, an *EnvError.
func expandEnv(data []byte, lookup func(string) (string, bool)) ([]byte, error) {
	if bytes.IndexByte(data, '$') < 0 {
		return data, nil
	}
	x := envExpander{lookup: lookup}
	out := make([]byte, 0, len(data)+len(data)/8)
	line, prev := 1, 0
	var err error
	for _, c := range envComments(data) {
		if out, err = x.expand(out, data[prev:c[0]], line); err != nil {
			return nil, err
		}
		line += bytes.Count(data[prev:c[0]], []byte{'\n'})
		out = append(out, data[c[0]:c[1]]...) // a comment has no newline
		prev = c[1]
	}
	if out, err = x.expand(out, data[prev:], line); err != nil {
		return nil, err
	}
	return out, nil
}

// envComments returns the comments of TOML text: for each, the offset of
// its "#" and that of the end of its line (not counting the newline). It
// follows Telegraf's comment remover: a backslash outside a string skips
// the next byte; a basic or literal string ends at its quote or at the end
// of its line; a basic string's backslash escapes the next byte. Unlike
// Telegraf it lets a multi-line string end with up to two more quotes
// ("""a""""" holds a""), as TOML does.
func envComments(data []byte) [][2]int {
	var comments [][2]int
	n := len(data)
	for i := 0; i < n; {
		switch data[i] {
		case '\\':
			i += 2
		case '#':
			end := n
			if j := bytes.IndexByte(data[i:], '\n'); j >= 0 {
				end = i + j
			}
			comments = append(comments, [2]int{i, end})
			i = end
		case '"', '\'':
			q := data[i]
			escapes := q == '"'
			if i+2 < n && data[i+1] == q && data[i+2] == q {
				i = envSkipMultiline(data, i+3, q, escapes)
			} else {
				i = envSkipString(data, i+1, q, escapes)
			}
		default:
			i++
		}
	}
	return comments
}

// envSkipString returns the offset just past the end of the one-line
// string whose content starts at i.
func envSkipString(data []byte, i int, q byte, escapes bool) int {
	for i < len(data) {
		switch c := data[i]; {
		case escapes && c == '\\':
			i += 2
		case c == q || c == '\n':
			return i + 1
		default:
			i++
		}
	}
	return len(data)
}

// envSkipMultiline returns the offset just past the end of the multi-line
// string whose content starts at i.
func envSkipMultiline(data []byte, i int, q byte, escapes bool) int {
	for i < len(data) {
		c := data[i]
		if escapes && c == '\\' {
			i += 2
			continue
		}
		if c != q {
			i++
			continue
		}
		run := 1
		for i+run < len(data) && data[i+run] == q {
			run++
		}
		if run >= 3 {
			return i + min(run, 5)
		}
		i += run
	}
	return len(data)
}

type envExpander struct {
	lookup func(string) (string, bool)
}

// expand appends s, with its patterns substituted, to out. s holds no
// comment; line is the line s starts on.
func (x envExpander) expand(out, s []byte, line int) ([]byte, error) {
	for {
		k := bytes.IndexByte(s, '$')
		if k < 0 {
			return append(out, s...), nil
		}
		line += bytes.Count(s[:k], []byte{'\n'})
		out = append(out, s[:k]...)
		var n int
		var err error
		if out, n, err = x.pattern(out, s[k:], line); err != nil {
			return nil, err
		}
		s = s[k+n:]
	}
}

// pattern appends the substitution of the pattern that starts s (s[0] is
// '$') to out, and says how many bytes of s it took.
func (x envExpander) pattern(out, s []byte, line int) ([]byte, int, error) {
	if len(s) < 2 {
		return append(out, '$'), 1, nil
	}
	switch c := s[1]; {
	case c == '$':
		return append(out, '$'), 2, nil
	case envNameStart(c):
		end := envNameEnd(s, 1)
		name := string(s[1:end])
		v, ok := x.lookup(name)
		if !ok {
			return nil, 0, envUnset(line, name)
		}
		return append(out, v...), end, nil
	case c == '{':
		return x.braced(out, s, line)
	}
	return append(out, '$'), 1, nil
}

// braced handles a pattern that starts with "${". An invalid one keeps
// its "${" and the text that follows it is read again.
func (x envExpander) braced(out, s []byte, line int) ([]byte, int, error) {
	invalid := func() ([]byte, int, error) { return append(out, '$', '{'), 2, nil }
	if len(s) < 3 || !envNameStart(s[2]) {
		return invalid()
	}
	i := envNameEnd(s, 2)
	name := string(s[2:i])
	if i < len(s) && s[i] == '}' {
		v, ok := x.lookup(name)
		if !ok {
			return nil, 0, envUnset(line, name)
		}
		return append(out, v...), i + 1, nil
	}
	colon := i < len(s) && s[i] == ':'
	if colon {
		i++
	}
	if i >= len(s) || (s[i] != '-' && s[i] != '+' && s[i] != '?') {
		return invalid()
	}
	op := s[i]
	i++
	end := envClosingBrace(s, i)
	if end < 0 {
		return invalid()
	}
	word := s[i:end]

	v, set := x.lookup(name)
	present := set && (!colon || v != "")
	switch {
	case op == '-' && !present:
		out, err := x.expand(out, word, line)
		return out, end + 1, err
	case op == '+' && present:
		out, err := x.expand(out, word, line)
		return out, end + 1, err
	case op == '+':
		return out, end + 1, nil
	case op == '?' && !present:
		msg := "environment variable " + name + " is not set"
		if set {
			msg = "environment variable " + name + " is empty"
		}
		if len(word) > 0 {
			text, err := x.expand(nil, word, line)
			if err != nil {
				text = word // a message that names an unset variable
			}
			msg += ": " + string(text)
		}
		return nil, 0, &EnvError{Line: line, Name: name, Msg: msg}
	}
	return append(out, v...), end + 1, nil
}

// envClosingBrace returns the offset of the "}" that closes a braced
// pattern whose word starts at i, or -1 if the line ends first. Only "${"
// opens a nested pattern; "$$" is a literal "$".
func envClosingBrace(s []byte, i int) int {
	depth := 1
	for i < len(s) {
		switch s[i] {
		case '\n':
			return -1
		case '$':
			if i+1 < len(s) && (s[i+1] == '$' || s[i+1] == '{') {
				if s[i+1] == '{' {
					depth++
				}
				i += 2
				continue
			}
		case '}':
			depth--
			if depth == 0 {
				return i
			}
		}
		i++
	}
	return -1
}

func envUnset(line int, name string) *EnvError {
	return &EnvError{
		Line: line,
		Name: name,
		Msg: fmt.Sprintf("environment variable %s is not set "+
			"(set it, give a default with ${%s:-value}, or write $$ for a literal $)",
			name, name),
	}
}

func envNameStart(c byte) bool {
	return c == '_' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z'
}

// envNameEnd returns the offset just past the name that starts at s[i].
func envNameEnd(s []byte, i int) int {
	for i++; i < len(s); i++ {
		c := s[i]
		if !envNameStart(c) && (c < '0' || c > '9') {
			break
		}
	}
	return i
}
