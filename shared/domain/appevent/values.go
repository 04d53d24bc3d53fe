package appevent

// Typed readers of JSON values: each reports a wrong type or range as a field error and
// leaves the scanner after the value.

import (
	"math"
	"strconv"
	"time"

	"github.com/retarget-dev/retarget/shared/domain/envelope"
)

// string reads an optional string member; null counts as absent.
func (st *state) string(field string) (string, bool) {
	switch st.sc.peek() {
	case '"':
		return st.sc.str(), true
	case 'n':
		st.sc.literal("null")
		return "", false
	}
	st.typeError(field, "a string")
	return "", false
}

// boundedString reads a string of at most max bytes without control characters.
func (st *state) boundedString(field string, max int) string {
	s, ok := st.string(field)
	if !ok {
		return ""
	}
	if len(s) > max {
		st.reject(field, "too_long", "at most "+strconv.Itoa(max)+" bytes")
		return ""
	}
	if st.sc.slowStr && hasControl(s) {
		st.reject(field, "invalid_characters", "contains control characters")
		return ""
	}
	return s
}

func (st *state) float(field string) (float64, bool) {
	switch c := st.sc.peek(); {
	case c == 'n':
		st.sc.literal("null")
		return 0, false
	case c == '-' || c >= '0' && c <= '9':
		v, err := parseNumber(st.sc.number())
		if err != nil || math.IsInf(v, 0) {
			st.reject(field, "out_of_range", "number out of range")
			return 0, false
		}
		return v, true
	}
	st.typeError(field, "a number")
	return 0, false
}

// parseNumber converts a JSON number. Plain decimals of up to 15 digits (most of the numbers an
// event carries: counts, prices) skip strconv: their digits, read as an integer, are exact in a
// float64, and dividing by an exact power of ten is one correctly rounded operation, which is
// what strconv's own exact path computes.
func parseNumber(s string) (float64, error) {
	if s == "" {
		return 0, strconv.ErrSyntax
	}
	if len(s) <= 17 {
		var n int64
		i := 0
		if s[0] == '-' {
			i = 1
		}
		j, digits, frac := i, 0, -1
		for ; j < len(s); j++ {
			c := s[j]
			if c >= '0' && c <= '9' {
				n = n*10 + int64(c-'0')
				digits++
				continue
			}
			if c != '.' || frac >= 0 {
				break
			}
			frac = j
		}
		if j == len(s) && digits > 0 && digits <= 15 {
			v := float64(n)
			if frac >= 0 {
				v /= float64pow10[len(s)-1-frac]
			}
			if i == 1 {
				v = -v // -0 stays negative zero, as strconv reads it
			}
			return v, nil
		}
	}
	return strconv.ParseFloat(s, 64)
}

// float64pow10 holds powers of ten exact in a float64.
var float64pow10 = [...]float64{1, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16}

func (st *state) nonNegativeFloat(field string) float64 {
	v, ok := st.float(field)
	if ok && v < 0 {
		st.reject(field, "out_of_range", "must not be negative")
		return 0
	}
	return v
}

// count reads a non-negative integer.
func (st *state) count(field string, max int64) int64 {
	v, ok := st.float(field)
	if !ok {
		return 0
	}
	if v != math.Trunc(v) || v < 0 || v > float64(max) {
		st.reject(field, "out_of_range", "must be a whole number from 0 to "+strconv.FormatInt(max, 10))
		return 0
	}
	return int64(v)
}

func (st *state) flag(field string) envelope.Flag {
	switch st.sc.peek() {
	case 't', 'f':
		return envelope.FlagOf(st.sc.boolean())
	case 'n':
		st.sc.literal("null")
		return envelope.Unset
	}
	st.typeError(field, "true or false")
	return envelope.Unset
}

// timestamp reads unix seconds (a number) or an RFC 3339 string.
func (st *state) timestamp(field string) (int64, bool) {
	switch c := st.sc.peek(); {
	case c == '"':
		s := st.sc.str()
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			st.reject(field, "invalid", "not a time: use unix seconds or RFC 3339 (2026-11-28T10:00:00Z)")
			return 0, false
		}
		return t.Unix(), true
	case c == 'n':
		st.sc.literal("null")
		return 0, false
	case c == '-' || c >= '0' && c <= '9':
		v, err := parseNumber(st.sc.number())
		switch {
		case err != nil || v < 0:
			st.reject(field, "invalid", "not a unix time in seconds")
			return 0, false
		case v >= 1e11:
			st.reject(field, "invalid", "looks like milliseconds: send unix seconds")
			return 0, false
		}
		return int64(v), true
	}
	st.typeError(field, "unix seconds or an RFC 3339 string")
	return 0, false
}
