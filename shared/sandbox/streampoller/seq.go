package streampoller

import (
	"cmp"
	"strings"
)

// Kinesis sequence numbers are decimal strings of up to 129 digits: they are compared as
// numbers by their digits, never through float64 (which keeps only ~16 digits).

// validSeq reports whether s is a non-empty string of decimal digits.
func validSeq(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// normSeq drops leading zeros, so that equal numbers have equal strings.
func normSeq(s string) string {
	if t := strings.TrimLeft(s, "0"); t != "" {
		return t
	}
	return "0"
}

// compareSeq compares two sequence numbers (strings of digits) numerically: -1, 0 or +1.
func compareSeq(a, b string) int {
	a, b = normSeq(a), normSeq(b)
	if c := cmp.Compare(len(a), len(b)); c != 0 {
		return c
	}
	return strings.Compare(a, b)
}
