package jsonenc

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"strings"
	"testing"
)

// marshal is s as encoding/json writes it: json.Marshal (HTML escaped), or an Encoder with
// SetEscapeHTML(false), its trailing newline dropped.
func marshal(t testing.TB, s string, escapeHTML bool) string {
	t.Helper()
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(escapeHTML)
	if err := enc.Encode(s); err != nil {
		t.Fatal(err)
	}
	return strings.TrimSuffix(b.String(), "\n")
}

func TestAppendStringTable(t *testing.T) {
	tests := []struct {
		name, in, want, keepHTML string
	}{
		{"empty", "", `""`, ""},
		{"plain", "abc-XYZ_09 ~", `"abc-XYZ_09 ~"`, ""},
		{"quote and backslash", `a"b\c`, `"a\"b\\c"`, ""},
		{"short escapes", "\b\f\n\r\t", `"\b\f\n\r\t"`, ""},
		{"other control characters", "\x00\x01\x1f", `"\u0000\u0001\u001f"`, ""},
		{"DEL is plain", "\x7f", "\"\x7f\"", ""},
		{"HTML characters", "<a>&", `"\u003ca\u003e\u0026"`, `"<a>&"`},
		{"line and paragraph separators", "a\u2028b\u2029c", `"a\u2028b\u2029c"`, ""},
		{"multi-byte UTF-8", "é 정 😀", `"é 정 😀"`, ""},
		{"invalid byte", "a\xffb", `"a\ufffdb"`, ""},
		{"truncated sequence", "\xe2\x80", `"\ufffd\ufffd"`, ""},
		{"surrogate half", "\xed\xa0\x80", `"\ufffd\ufffd\ufffd"`, ""},
		{"overlong encoding", "\xc0\xaf", `"\ufffd\ufffd"`, ""},
		{"U+FFFD itself", "\uFFFD", "\"\uFFFD\"", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			keepHTML := tt.keepHTML
			if keepHTML == "" {
				keepHTML = tt.want
			}
			if got := string(AppendString(nil, tt.in)); got != tt.want {
				t.Errorf("AppendString(%q) = %s, want %s", tt.in, got, tt.want)
			}
			if got := string(AppendStringKeepHTML(nil, tt.in)); got != keepHTML {
				t.Errorf("AppendStringKeepHTML(%q) = %s, want %s", tt.in, got, keepHTML)
			}
			// The table states what encoding/json writes.
			if std := marshal(t, tt.in, true); std != tt.want {
				t.Errorf("json.Marshal(%q) = %s, the table says %s", tt.in, std, tt.want)
			}
			if std := marshal(t, tt.in, false); std != keepHTML {
				t.Errorf("Encoder without HTML escaping (%q) = %s, the table says %s", tt.in, std, keepHTML)
			}
		})
	}
}

func TestAppendStringAppends(t *testing.T) {
	if got := string(AppendString([]byte("x:"), "<")); got != `x:"\u003c"` {
		t.Fatalf("got %s", got)
	}
}

// corpus holds every single byte, the runes around the escaping boundaries, and mixes.
func corpus() []string {
	var out []string
	for b := range 256 {
		out = append(out, string([]byte{byte(b)}), "a"+string([]byte{byte(b)})+"z")
	}
	for _, r := range []rune{0x7f, 0x80, 0x7ff, 0x800, 0x2027, 0x2028, 0x2029, 0x202a, 0xd7ff, 0xe000, 0xfffd, 0xffff, 0x10000, 0x10ffff} {
		out = append(out, string(r), "<"+string(r)+">")
	}
	return append(out, strings.Repeat("a", 1000), "mary.major@example.com", `{"k":"v"}`,
		"\xf0\x9f\x98", "\xf0\x9f\x98\x80\xff", "tab\there\u2028\x00&amp;")
}

// Over the corpus and random strings, both functions write what encoding/json writes.
func TestAppendStringMatchesEncodingJSON(t *testing.T) {
	check := func(s string) {
		if got, want := string(AppendString(nil, s)), marshal(t, s, true); got != want {
			t.Fatalf("AppendString(%q) = %s, json.Marshal %s", s, got, want)
		}
		if got, want := string(AppendStringKeepHTML(nil, s)), marshal(t, s, false); got != want {
			t.Fatalf("AppendStringKeepHTML(%q) = %s, encoding/json %s", s, got, want)
		}
	}
	for _, s := range corpus() {
		check(s)
	}
	// Random strings drawn mostly from the bytes that matter: ASCII escapes, UTF-8 leads and
	// continuations, the bytes of U+2028.
	alphabet := []byte("a\"\\<>&\x00\x1f\b\n\x7f\x80\xbf\xc3\xa9\xe2\x80\xa8\xa9\xed\xf0\x9f\xff")
	rnd := rand.New(rand.NewPCG(1, 2))
	buf := make([]byte, 0, 32)
	for range 20_000 {
		buf = buf[:0]
		for range rnd.IntN(32) {
			buf = append(buf, alphabet[rnd.IntN(len(alphabet))])
		}
		check(string(buf))
	}
}

// FuzzAppendString: go test -fuzz FuzzAppendString ./shared/domain/jsonenc/ searches further;
// plain go test runs the seeds.
func FuzzAppendString(f *testing.F) {
	for _, s := range corpus() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := string(AppendString(nil, s)), marshal(t, s, true); got != want {
			t.Fatalf("AppendString(%q) = %s, json.Marshal %s", s, got, want)
		}
		if got, want := string(AppendStringKeepHTML(nil, s)), marshal(t, s, false); got != want {
			t.Fatalf("AppendStringKeepHTML(%q) = %s, encoding/json %s", s, got, want)
		}
	})
}

// The word tests agree with the byte tables: a word is plain exactly when all its bytes are.
// Every byte value in every lane of an otherwise plain word, then random words whose bytes
// are mostly plain (so that several flagged lanes meet borrows).
func TestPlainWordMatchesTables(t *testing.T) {
	check := func(b [8]byte) {
		t.Helper()
		s := string(b[:])
		wantSafe, wantHTML := true, true
		for _, c := range b {
			wantSafe = wantSafe && safe[c]
			wantHTML = wantHTML && htmlSafe[c]
		}
		if got := plainWord(word(s, 0)); got != wantSafe {
			t.Fatalf("plainWord(%q) = %v, the table says %v", s, got, wantSafe)
		}
		if got := plainWordHTML(word(s, 0)); got != wantHTML {
			t.Fatalf("plainWordHTML(%q) = %v, the table says %v", s, got, wantHTML)
		}
	}
	for lane := range 8 {
		for c := range 256 {
			b := [8]byte{'a', 'B', '0', ' ', '~', 0x7f, '!', '-'}
			b[lane] = byte(c)
			check(b)
		}
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 200_000 {
		var b [8]byte
		for i := range b {
			b[i] = byte(0x20 + r.IntN(0x60))
			if r.IntN(6) == 0 {
				b[i] = byte(r.IntN(256))
			}
		}
		check(b)
	}
}
