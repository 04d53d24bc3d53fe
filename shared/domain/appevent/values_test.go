package appevent

import (
	"math"
	"strconv"
	"testing"
)

// parseNumber reads the JSON number s with scanner.numberValue.
func parseNumber(s string) (float64, error) {
	sc := scanner{s: s}
	v, err := sc.numberValue()
	if sc.err != nil || sc.i != len(s) {
		return 0, strconv.ErrSyntax
	}
	return v, err
}

// numberValue reads every JSON number exactly as strconv.ParseFloat does, its fast path
// included.
func TestParseNumberMatchesStrconv(t *testing.T) {
	in := []string{"0", "-0", "-0.0", "0.1", "12.5", "1.005", "2.675", "0.000001", "999999999999999",
		"99999999999999.9", "9.99999999999999", "0.0000000000000001", "123456789012345.6", "1e3", "-1.5E-3", "17"}
	r := uint64(7)
	for range 200000 {
		r = r*6364136223846793005 + 1442695040888963407
		digits := strconv.FormatUint(r>>8%uint64(math.Pow10(int(r>>60%16)+1)), 10)
		if p := int(r >> 56 % 18); p > 0 && p < len(digits) {
			digits = digits[:p] + "." + digits[p:]
		}
		if digits[0] == '0' && len(digits) > 1 && digits[1] != '.' {
			continue // not JSON
		}
		if r&1 == 1 {
			digits = "-" + digits
		}
		in = append(in, digits)
	}
	for _, s := range in {
		want, werr := strconv.ParseFloat(s, 64)
		got, err := parseNumber(s)
		if (err != nil) != (werr != nil) || math.Float64bits(got) != math.Float64bits(want) {
			t.Fatalf("%s: got %v (%v), want %v (%v)", s, got, err, want, werr)
		}
	}
}
