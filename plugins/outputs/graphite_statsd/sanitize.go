package graphite_statsd

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// strictAllowed marks the ASCII bytes Telegraf's default strict sanitising
// regexp, [^a-zA-Z0-9-:._=\p{L}], leaves alone.
var strictAllowed = func() (t [utf8.RuneSelf]bool) {
	for c := byte('a'); c <= 'z'; c++ {
		t[c] = true
	}
	for c := byte('A'); c <= 'Z'; c++ {
		t[c] = true
	}
	for c := byte('0'); c <= '9'; c++ {
		t[c] = true
	}
	for _, c := range []byte("-:._=") {
		t[c] = true
	}
	return t
}()

// appendStrict appends s sanitised as Telegraf's graphite serializer does
// with its default strict regexp, without the regexp: "/", "@" and "*"
// become "-", backslashes are dropped, ".." becomes ".", and every other
// rune outside letters, digits and "-:._=" becomes "_" (one "_" per invalid
// UTF-8 byte). The result is byte for byte what Telegraf produces.
func appendStrict(dst []byte, s string) []byte {
	if strings.IndexByte(s, '\\') >= 0 && !utf8.ValidString(s) {
		// Dropping a backslash can join two invalid bytes into a valid
		// rune; Telegraf drops first and matches runes after, so do the
		// same in two passes.
		return appendRunes(dst, string(dropPass(nil, s)))
	}
	for i := 0; i < len(s); {
		c := s[i]
		if c >= utf8.RuneSelf {
			r, size := utf8.DecodeRuneInString(s[i:])
			dst = appendRune(dst, s[i:i+size], r)
			i += size
			continue
		}
		switch {
		case c == '\\':
			i++
			continue
		case c == '.' && i+1 < len(s) && s[i+1] == '.':
			i++ // ".." -> "."
		case c == '/' || c == '@' || c == '*':
			c = '-'
		case !strictAllowed[c]:
			c = '_'
		}
		dst = append(dst, c)
		i++
	}
	return dst
}

// appendStrictBytes is appendStrict for bytes, without converting them
// when they are ASCII without a backslash (the rules are then per byte).
func appendStrictBytes(dst, s []byte) []byte {
	for _, c := range s {
		if c >= utf8.RuneSelf || c == '\\' {
			return appendStrict(dst, string(s))
		}
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '.' && i+1 < len(s) && s[i+1] == '.':
			i++ // ".." -> "."
		case c == '/' || c == '@' || c == '*':
			c = '-'
		case !strictAllowed[c]:
			c = '_'
		}
		dst = append(dst, c)
	}
	return dst
}

// dropPass applies the hyphenation and dropping rules only.
func dropPass(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\\':
			continue
		case c == '.' && i+1 < len(s) && s[i+1] == '.':
			i++
		case c == '/' || c == '@' || c == '*':
			c = '-'
		}
		dst = append(dst, c)
	}
	return dst
}

// appendRunes applies the character class only.
func appendRunes(dst []byte, s string) []byte {
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if !strictAllowed[c] {
				c = '_'
			}
			dst = append(dst, c)
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		dst = appendRune(dst, s[i:i+size], r)
		i += size
	}
	return dst
}

func appendRune(dst []byte, raw string, r rune) []byte {
	if r != utf8.RuneError && unicode.IsLetter(r) {
		return append(dst, raw...)
	}
	return append(dst, '_')
}
