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

func appendString(dst []byte, s string, plain *[256]bool) []byte {
	dst = append(dst, '"')
	start := 0 // s[start:i] is plain and not yet copied
	for i := 0; i < len(s); {
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
