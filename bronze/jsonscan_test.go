package bronze

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// reference is what scanObject must agree with: encoding/json's validity,
// UTF-8, an object at the top, and the raw text of the first top-level
// member named field.
func reference(data []byte, field string) (raw []byte, ok bool) {
	if !json.Valid(data) || !utf8.Valid(data) {
		return nil, false
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, false
	}
	for dec.More() {
		tok, _ := dec.Token()
		var v json.RawMessage
		_ = dec.Decode(&v)
		if tok == field && raw == nil {
			raw = v
		}
	}
	return raw, true
}

var scanCases = []string{
	`{}`, ` { } `, "\t{\n}\r\n", `{"ts":"2024-01-15T00:00:00Z"}`, `{"a":1,"ts":"x","ts":"y"}`,
	`{"a":{"ts":"nested"},"b":[1,{"ts":2}],"ts":null}`, `{"t\u0073":"escaped key"}`, `{"ts":"a\"b\\c\/\b\f\n\r\t\u00e9"}`,
	`{"ts":"héllo wörld — 日本語 🎉"}`, `{"n":[0,-0,1.5,-2e10,3E+2,4e-3,123456789012345678901234567890]}`,
	`{"t":true,"f":false,"n":null,"s":"","o":{},"a":[]}`,
	// invalid
	``, ` `, `[]`, `"x"`, `1`, `null`, `{`, `}`, `{"a"}`, `{"a":}`, `{"a":1,}`, `{,}`, `{"a":1}x`, `{"a":1}{}`,
	`{'a':1}`, `{a:1}`, `{"a":01}`, `{"a":1.}`, `{"a":.5}`, `{"a":-}`, `{"a":1e}`, `{"a":+1}`, `{"a":tru}`, `{"a":nul}`,
	`{"a":"\x"}`, `{"a":"\u12"}`, `{"a":"\u12g4"}`, "{\"a\":\"tab\there\"}", "{\"a\":\"nl\nhere\"}", `{"a":"unterminated}`,
	"{\"a\":\"\xff\"}", "{\"a\":\"\xc3\"}", "{\"a\":\"\xed\xa0\x80\"}", "{\"\xfe\":1}", "{\"a\":1}\xff", `{"a":[1,2}`, `{"a":[1,,2]}`,
	`{"a":[` + strings.Repeat("[", 9998) + strings.Repeat("]", 9998) + `]}`,
	`{"a":[` + strings.Repeat("[", 9999) + strings.Repeat("]", 9999) + `]}`,
	// long strings cross the eight-byte steps with every kind of byte
	`{"ts":"abcdefg","x":"` + strings.Repeat("0123456789", 20) + `"}`,
	"{\"x\":\"0123456\xc3\xa9789abcdef\\\"0123\"}",
}

func TestScanObject(t *testing.T) {
	for _, c := range scanCases {
		check(t, []byte(c), "ts")
	}
}

func FuzzScanObject(f *testing.F) {
	for _, c := range scanCases {
		f.Add([]byte(c), "ts")
	}
	f.Fuzz(check)
}

func check(t *testing.T, data []byte, field string) {
	wantRaw, wantOK := reference(data, field)
	got, ok := scanObject(data, field)
	if ok != wantOK {
		t.Fatalf("scanObject(%q) valid = %v, encoding/json says %v", data, ok, wantOK)
	}
	if ok && !bytes.Equal(got.raw, wantRaw) {
		t.Fatalf("scanObject(%q, %q) = %q, want %q", data, field, got.raw, wantRaw)
	}
	if ok && got.raw != nil && got.escaped != (got.raw[0] == '"' && bytes.IndexByte(got.raw, '\\') >= 0) {
		t.Fatalf("scanObject(%q): escaped = %v", data, got.escaped)
	}
}

// BenchmarkTimestamp reads the timestamp of a sink benchmark message.
func BenchmarkTimestamp(b *testing.B) {
	payload := []byte(`{"event_id":"e-000000012345","event_type":"view_item","event_timestamp":"2024-01-15T03:25:45.000Z","user_id":"u-12345","session_id":"s-00000617","device":"ios","city":"Austin","restaurant_id":"r-5","item_id":"m-45","order_id":null,"amount":null,"properties":{"note":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}}`)
	ts, now := NewTimestamp("event_timestamp", Bounds{}), time.Now()
	b.SetBytes(int64(len(payload)))
	for b.Loop() {
		if _, err := ts.Of(payload, now); err != nil {
			b.Fatal(err)
		}
	}
}
