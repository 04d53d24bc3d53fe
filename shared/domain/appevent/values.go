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
		v, err := st.sc.numberValue()
		if err != nil || math.IsInf(v, 0) {
			st.reject(field, "out_of_range", "number out of range")
			return 0, false
		}
		return v, true
	}
	st.typeError(field, "a number")
	return 0, false
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
		v, err := st.sc.numberValue()
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
