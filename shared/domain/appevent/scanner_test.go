package appevent

import (
	"math/rand/v2"
	"testing"
)

// hasStop agrees with strStop: a word holds a stop exactly when one of its bytes is one. Every
// byte value in every lane of an otherwise plain word, then random words of mostly plain
// bytes (so that several stops, and bytes of 0x80 and more, meet borrows).
func TestHasStopMatchesTable(t *testing.T) {
	check := func(b [8]byte) {
		t.Helper()
		want := false
		for _, c := range b {
			want = want || strStop[c]
		}
		if got := hasStop(word(string(b[:]), 0)); got != want {
			t.Fatalf("hasStop(%q) = %v, strStop says %v", b[:], got, want)
		}
	}
	for lane := range 8 {
		for c := range 256 {
			b := [8]byte{'a', 0xc3, 0xa9, ' ', '~', 0x80, 0xff, '-'}
			b[lane] = byte(c)
			check(b)
		}
	}
	r := rand.New(rand.NewPCG(3, 4))
	for range 200_000 {
		var b [8]byte
		for i := range b {
			b[i] = byte(0x20 + r.IntN(0xe0))
			if r.IntN(6) == 0 {
				b[i] = byte(r.IntN(256))
			}
		}
		check(b)
	}
}
