package bronze

import (
	"encoding/json"
	"unicode/utf8"
)

// The sink checks every message with one pass of this scanner: it
// validates the payload as a JSON object in UTF-8 and finds the top-level
// member the partition timestamp is read from. A separate validation and
// lookup (gjson) took a fifth of the sink's CPU, and no library both
// checks UTF-8 and finds a member in one pass. Invalid UTF-8 must be
// caught here: DuckDB refuses to read a whole bronze file if one payload
// holds it.

// maxDepth is encoding/json's nesting limit.
const maxDepth = 10000

// member is a top-level value found by scanObject: raw is its JSON text;
// escaped reports a string value with escape sequences.
type member struct {
	raw     []byte
	escaped bool
}

// scanObject reports whether data is one JSON object (RFC 8259, UTF-8, at
// most maxDepth deep) and returns its first top-level member named field
// (raw nil if it has none).
func scanObject(data []byte, field string) (member, bool) {
	s := scanner{data: data, field: field}
	s.space()
	if s.i >= len(s.data) || s.data[s.i] != '{' {
		return member{}, false
	}
	if !s.object(1, true) {
		return member{}, false
	}
	s.space()
	return s.found, s.i == len(s.data)
}

type scanner struct {
	data  []byte
	i     int
	field string
	found member
	seen  bool
}

func (s *scanner) space() {
	if s.i < len(s.data) && s.data[s.i] > ' ' {
		return // the usual case: no whitespace
	}
	for s.i < len(s.data) {
		switch s.data[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

func (s *scanner) value(depth int) bool {
	if s.i >= len(s.data) {
		return false
	}
	switch c := s.data[s.i]; {
	case c == '"':
		_, ok := s.str()
		return ok
	case c == '{':
		return depth < maxDepth && s.object(depth+1, false)
	case c == '[':
		return depth < maxDepth && s.array(depth+1)
	case c == '-' || c >= '0' && c <= '9':
		return s.number()
	case c == 't':
		return s.literal("true")
	case c == 'f':
		return s.literal("false")
	case c == 'n':
		return s.literal("null")
	}
	return false
}

// object scans from '{'; top marks the payload's own object, whose
// members are compared with the field.
func (s *scanner) object(depth int, top bool) bool {
	if s.open('}') {
		return true
	}
	for ; ; s.space() {
		if s.i >= len(s.data) || s.data[s.i] != '"' {
			return false
		}
		keyStart := s.i
		escaped, ok := s.str()
		if !ok {
			return false
		}
		want := top && !s.seen && keyIs(s.data[keyStart:s.i], escaped, s.field)
		s.space()
		if s.i >= len(s.data) || s.data[s.i] != ':' {
			return false
		}
		s.i++
		s.space()
		valStart := s.i
		valEscaped := false
		// Strings, most values, skip value's dispatch (a twentieth of the
		// scan) and tell whether they hold escapes.
		if s.i < len(s.data) && s.data[s.i] == '"' {
			if valEscaped, ok = s.str(); !ok {
				return false
			}
		} else if !s.value(depth) {
			return false
		}
		if want {
			s.found, s.seen = member{raw: s.data[valStart:s.i], escaped: valEscaped}, true
		}
		if more, ok := s.next('}'); !more {
			return ok
		}
	}
}

func (s *scanner) array(depth int) bool {
	if s.open(']') {
		return true
	}
	for ; ; s.space() {
		if !s.value(depth) {
			return false
		}
		if more, ok := s.next(']'); !more {
			return ok
		}
	}
}

// open steps past a container's opening bracket and any space, and
// reports whether the container is empty (stepping past its close too).
func (s *scanner) open(close byte) (empty bool) {
	s.i++
	s.space()
	if s.i < len(s.data) && s.data[s.i] == close {
		s.i++
		return true
	}
	return false
}

// next steps past what follows an element: a comma (more elements
// follow, from the next non-space) or the container's close; ok is false
// for anything else. Small enough to inline: it runs once per element.
func (s *scanner) next(close byte) (more, ok bool) {
	s.space()
	if s.i >= len(s.data) {
		return false, false
	}
	c := s.data[s.i]
	s.i++
	return c == ',', c == ',' || c == close
}

// str scans a string from its opening quote and reports whether it holds
// escape sequences. Plain bytes are skipped with a table, four at a time:
// faster than eight-byte word tricks for the short strings of events.
func (s *scanner) str() (escaped, ok bool) {
	d := s.data
	i := s.i + 1
	for {
		for i+4 <= len(d) && plainByte[d[i]] && plainByte[d[i+1]] && plainByte[d[i+2]] && plainByte[d[i+3]] {
			i += 4
		}
		for i < len(d) && plainByte[d[i]] {
			i++
		}
		if i >= len(d) {
			return false, false
		}
		switch c := d[i]; {
		case c == '"':
			s.i = i + 1
			return escaped, true
		case c == '\\':
			escaped = true
			if i+1 >= len(d) {
				return false, false
			}
			switch d[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if i+6 > len(d) || !hex4(d[i+2:i+6]) {
					return false, false
				}
				i += 6
			default:
				return false, false
			}
		case c < 0x20:
			return false, false
		case c < utf8.RuneSelf:
			i++ // a plain byte of the last, short word
		default:
			r, n := utf8.DecodeRune(d[i:])
			if r == utf8.RuneError && n == 1 {
				return false, false
			}
			i += n
		}
	}
}

func hex4(b []byte) bool {
	for _, c := range b {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

func (s *scanner) digits() int {
	start := s.i
	for s.i < len(s.data) && s.data[s.i] >= '0' && s.data[s.i] <= '9' {
		s.i++
	}
	return s.i - start
}

// number scans -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func (s *scanner) number() bool {
	if s.data[s.i] == '-' {
		s.i++
	}
	if s.i < len(s.data) && s.data[s.i] == '0' {
		s.i++
	} else if s.digits() == 0 {
		return false
	}
	if s.i < len(s.data) && s.data[s.i] == '.' {
		s.i++
		if s.digits() == 0 {
			return false
		}
	}
	if s.i < len(s.data) && (s.data[s.i] == 'e' || s.data[s.i] == 'E') {
		s.i++
		if s.i < len(s.data) && (s.data[s.i] == '+' || s.data[s.i] == '-') {
			s.i++
		}
		if s.digits() == 0 {
			return false
		}
	}
	return true
}

func (s *scanner) literal(word string) bool {
	if len(s.data)-s.i < len(word) || string(s.data[s.i:s.i+len(word)]) != word {
		return false
	}
	s.i += len(word)
	return true
}

// keyIs compares a raw JSON key (with its quotes) with field.
func keyIs(raw []byte, escaped bool, field string) bool {
	if !escaped {
		return string(raw[1:len(raw)-1]) == field
	}
	k, ok := unquote(raw)
	return ok && k == field
}

// plainByte marks the bytes a string holds as they are: printable ASCII
// other than '"' and '\\'.
var plainByte = func() (t [256]bool) {
	for c := 0x20; c < 0x80; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// unquote decodes a JSON string with escape sequences (rare in keys and
// timestamps, so the standard decoder is fast enough).
func unquote(raw []byte) (string, bool) {
	var v string
	err := json.Unmarshal(raw, &v)
	return v, err == nil
}
