// Package jsonenc writes JSON strings without reflection, byte for byte as encoding/json writes
// them. It serves the hand-written encoders of the wire formats (the stream envelope, the
// Custom Audiences payload, the Graph request bodies): they append to one buffer on hot paths,
// and their output, and so the sizes they plan with, must be exactly what encoding/json would
// send.
package jsonenc

import "unicode/utf8"

// AppendString appends s as a JSON string exactly as json.Marshal writes it: " and \ escaped
// with a backslash; \b \f \n \r \t as such; other control characters, and < > & (HTML-safe
// output), as \u00XX; U+2028 and U+2029 as \u2028 and \u2029; each byte of invalid UTF-8 as
// \ufffd; everything else as is.
func AppendString(dst []byte, s string) []byte { return appendString(dst, s, &htmlSafe) }

// AppendStringKeepHTML appends s as a JSON string like AppendString but writes < > & as they
// are, as a json.Encoder with SetEscapeHTML(false) does. Encoders whose output no browser
// renders use it: the escapes would only grow the bytes (six for one).
func AppendStringKeepHTML(dst []byte, s string) []byte { return appendString(dst, s, &safe) }

const hexDigits = "0123456789abcdef"

// safe marks the bytes written as they are (all but control characters, " and \, and any byte
// that starts or continues a multi-byte sequence, which is decoded first); htmlSafe also
// excludes < > &.
var safe, htmlSafe = func() (t, h [256]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\'
		h[c] = t[c] && c != '<' && c != '>' && c != '&'
	}
	return t, h
}()

// Word-at-a-time tests: each reports whether a little-endian word of 8 bytes holds a byte that
// is not written as it is (safe, htmlSafe). A byte below 0x20, or equal to one of the escaped
// ASCII characters, makes its lane borrow; a byte of 0x80 or more is flagged by its own top bit.
// As a yes/no answer over the word it is exact (borrows only ever follow a flagged lane).
const (
	lanes = 0x0101010101010101
	tops  = 0x8080808080808080
)

func plainWord(x uint64) bool {
	t := (x - 0x20*lanes) | ((x ^ '"'*lanes) - lanes) | ((x ^ '\\'*lanes) - lanes)
	return (t&^x|x)&tops == 0
}

func plainWordHTML(x uint64) bool {
	t := (x - 0x20*lanes) | ((x ^ '"'*lanes) - lanes) | ((x ^ '\\'*lanes) - lanes) |
		((x ^ '<'*lanes) - lanes) | ((x ^ '>'*lanes) - lanes) | ((x ^ '&'*lanes) - lanes)
	return (t&^x|x)&tops == 0
}

// word returns the 8 bytes of s at i as a little-endian word (one load once compiled).
func word(s string, i int) uint64 {
	s = s[i : i+8]
	return uint64(s[0]) | uint64(s[1])<<8 | uint64(s[2])<<16 | uint64(s[3])<<24 |
		uint64(s[4])<<32 | uint64(s[5])<<40 | uint64(s[6])<<48 | uint64(s[7])<<56
}

func appendString(dst []byte, s string, plain *[256]bool) []byte {
	dst = append(dst, '"')
	// Most strings are plain ASCII: skip them 8 bytes at a time, then byte by byte.
	i := 0
	if plain == &safe {
		for i+8 <= len(s) && plainWord(word(s, i)) {
			i += 8
		}
	} else {
		for i+8 <= len(s) && plainWordHTML(word(s, i)) {
			i += 8
		}
	}
	start := 0 // s[start:i] is plain and not yet copied
	for i < len(s) {
		c := s[i]
		if plain[c] {
			i++
			continue
		}
		if c < utf8.RuneSelf {
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			// Valid JSON, but not valid JavaScript before ES2019: encoding/json escapes them.
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
