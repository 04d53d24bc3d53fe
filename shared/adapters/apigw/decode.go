package apigw

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"math/bits"
	"sync"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/aws/aws-lambda-go/events"
)

// ProxyHandler serves API Gateway proxy events (REST API, and HTTP API with payload format
// 1.0) to a handler function. It implements the Lambda runtime's Handler interface
// (lambda.Start takes it as it is): the event is read with DecodeProxyRequest and the response
// written as the runtime's reflection handler writes it, so a function behaves the same with
// either; only the decoding is cheaper.
type ProxyHandler func(context.Context, events.APIGatewayProxyRequest) (events.APIGatewayProxyResponse, error)

// Invoke decodes payload, calls f and encodes its response.
func (f ProxyHandler) Invoke(ctx context.Context, payload []byte) ([]byte, error) {
	req, err := DecodeProxyRequest(payload)
	if err != nil {
		return nil, err
	}
	resp, err := f(ctx, req)
	if err != nil {
		return nil, err
	}
	// As aws-lambda-go writes a handler's result: an Encoder, HTML characters as they are.
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(resp); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil // the runtime drops the Encoder's newline
}

// DecodeProxyRequest decodes an API Gateway proxy event exactly as the Lambda runtime does
// (a json.Decoder into events.APIGatewayProxyRequest), for a fraction of the work on large
// bodies. The body arrives as one JSON string holding the whole request, every quote in it
// escaped: encoding/json reads it three times, a byte at a time (to find the value, to scan it,
// to unquote it). Here the body string is found and unquoted in one pass, 8 bytes at a time
// where nothing needs unescaping, and encoding/json decodes the rest of the event with an
// empty body. Anything unusual (the body not a plain member "body" of the top-level object,
// seen once; text the scan does not expect; a body encoding/json would reject) goes to
// encoding/json whole, so errors are its own.
func DecodeProxyRequest(payload []byte) (events.APIGatewayProxyRequest, error) {
	var req events.APIGatewayProxyRequest
	if start, end, body, ok := findBody(payload); ok {
		rest := make([]byte, 0, len(payload)-(end-start)+2)
		rest = append(append(append(rest, payload[:start]...), `""`...), payload[end:]...)
		if err := json.NewDecoder(bytes.NewReader(rest)).Decode(&req); err == nil {
			req.Body = body
			return req, nil
		}
		req = events.APIGatewayProxyRequest{}
	}
	err := json.NewDecoder(bytes.NewReader(payload)).Decode(&req)
	return req, err
}

// findBody returns the string value of the member "body" of the top-level object, decoded,
// and where it begins and ends in b (quotes included). ok is false unless b is one object,
// followed by nothing but whitespace, with exactly one member whose name folds to "body",
// spelt so, with a string value encoding/json accepts: the other cases are left to
// encoding/json. The scan only follows the structure; the rest of the event is validated by
// encoding/json, the body by unquote.
func findBody(b []byte) (start, end int, body string, ok bool) {
	i := skipWS(b, 0)
	if i == len(b) || b[i] != '{' {
		return 0, 0, "", false
	}
	i = skipWS(b, i+1)
	found := false
	for first := true; ; first = false {
		if i < len(b) && b[i] == '}' && first {
			i++
			break
		}
		if i == len(b) || b[i] != '"' {
			return 0, 0, "", false
		}
		keyEnd, plain := skipString(b, i)
		if keyEnd < 0 {
			return 0, 0, "", false
		}
		key := b[i+1 : keyEnd-1]
		i = skipWS(b, keyEnd)
		if i == len(b) || b[i] != ':' {
			return 0, 0, "", false
		}
		i = skipWS(b, i+1)
		var valEnd int
		// encoding/json matches member names without regard to case (and, for "body", no other
		// folding applies: no letter outside ASCII folds to b, o, d or y).
		if !plain || bytes.EqualFold(key, []byte("body")) {
			if !plain || string(key) != "body" || found || i == len(b) || b[i] != '"' {
				return 0, 0, "", false
			}
			if body, valEnd, ok = unquote(b, i); !ok {
				return 0, 0, "", false
			}
			found, start, end = true, i, valEnd
		} else if valEnd = skipValue(b, i); valEnd < 0 {
			return 0, 0, "", false
		}
		i = skipWS(b, valEnd)
		if i < len(b) && b[i] == ',' {
			i = skipWS(b, i+1)
			continue
		}
		if i < len(b) && b[i] == '}' {
			i++
			break
		}
		return 0, 0, "", false
	}
	if skipWS(b, i) != len(b) {
		return 0, 0, "", false // a json.Decoder stops after the first value; leave that to it
	}
	return start, end, body, found
}

func skipWS(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// skipString returns the index after the string starting at b[i] ('"'), or -1; plain reports
// that it holds no escape and no byte outside printable ASCII.
func skipString(b []byte, i int) (end int, plain bool) {
	plain = true
	for i++; ; {
		i = nextStop(b, i)
		if i == len(b) {
			return -1, false
		}
		switch c := b[i]; {
		case c == '"':
			return i + 1, plain
		case c == '\\':
			plain = false
			i += 2 // the escaped byte is never the end of the string
		case c < 0x20:
			return -1, false
		default:
			plain = false // 0x80 or more
			i++
		}
		if i > len(b) {
			return -1, false
		}
	}
}

// nextStop returns the index of the first byte at or after i that a string scan stops at (a
// control character, '"', '\\', a byte of 0x80 or more), or len(b): 8 bytes at a time.
func nextStop(b []byte, i int) int {
	for ; i+8 <= len(b); i += 8 {
		if m := stops(word(b, i)); m != 0 {
			return i + bits.TrailingZeros64(m)>>3
		}
	}
	for ; i < len(b); i++ {
		if c := b[i]; c < 0x20 || c == '"' || c == '\\' || c >= utf8.RuneSelf {
			return i
		}
	}
	return i
}

// skipValue returns the index after the value starting at b[i], or -1. Objects and arrays
// are followed by their brackets and strings only; scalars run to the next delimiter.
func skipValue(b []byte, i int) int {
	if i == len(b) {
		return -1
	}
	switch b[i] {
	case '"':
		end, _ := skipString(b, i)
		return end
	case '{', '[':
		depth := 0
		for i < len(b) {
			switch b[i] {
			case '"':
				end, _ := skipString(b, i)
				if end < 0 {
					return -1
				}
				i = end
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1
				}
			}
			i++
		}
		return -1
	}
	start := i
	for i < len(b) && b[i] != ',' && b[i] != '}' && b[i] != ']' && b[i] != '"' &&
		b[i] != ' ' && b[i] != '\t' && b[i] != '\n' && b[i] != '\r' {
		i++
	}
	if i == start {
		return -1
	}
	return i
}

// unquote decodes the JSON string starting at s[i] ('"') as encoding/json does: escapes
// resolved, a UTF-16 surrogate pair joined and a lone surrogate replaced by U+FFFD, each byte
// of invalid UTF-8 replaced by U+FFFD. It returns the index after the closing quote; ok is
// false where encoding/json would report a syntax error (a control character, an unknown
// escape, no closing quote). Bytes that need nothing are copied 8 at a time: the word is
// stored whole, then cut back to the first byte that needs something.
func unquote(s []byte, i int) (string, int, bool) {
	i++
	buf := unquoteBufs.Get().(*[]byte)
	out := (*buf)[:0]
	defer func() {
		if *buf = out[:0]; cap(out) <= maxPooledBuf {
			unquoteBufs.Put(buf)
		}
	}()
	for {
		for i+8 <= len(s) {
			w := word(s, i)
			out = binary.LittleEndian.AppendUint64(out, w)
			m := stops(w)
			if m == 0 {
				i += 8
				continue
			}
			n := bits.TrailingZeros64(m) >> 3
			out = out[:len(out)-8+n]
			if i += n; s[i] == '\\' && i+1 < len(s) && s[i+1] == '"' {
				// \" is most escapes of a body (JSON inside a JSON string): taken here.
				out = append(out, '"')
				i += 2
				continue
			}
			break
		}
		for ; i < len(s); i++ {
			if c := s[i]; c < 0x20 || c == '"' || c == '\\' || c >= utf8.RuneSelf {
				break
			}
			out = append(out, s[i])
		}
		if i == len(s) {
			return "", 0, false
		}
		switch c := s[i]; {
		case c == '"':
			return string(out), i + 1, true
		case c < 0x20:
			return "", 0, false
		case c >= utf8.RuneSelf:
			r, size := utf8.DecodeRune(s[i:])
			if r == utf8.RuneError && size == 1 {
				out = utf8.AppendRune(out, utf8.RuneError)
			} else {
				out = append(out, s[i:i+size]...)
			}
			i += size
			continue
		}
		if i+1 == len(s) {
			return "", 0, false
		}
		switch e := s[i+1]; e {
		case '"', '\\', '/':
			out = append(out, e)
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			r, ok := hex4(s, i+2)
			if !ok {
				return "", 0, false
			}
			i += 6
			if utf16.IsSurrogate(r) {
				if r2, ok := escapedRune(s, i); ok {
					if dec := utf16.DecodeRune(r, r2); dec != utf8.RuneError {
						out = utf8.AppendRune(out, dec)
						i += 6
						continue
					}
				}
				r = utf8.RuneError // a lone surrogate; what follows is read on its own
			}
			out = utf8.AppendRune(out, r)
			continue
		default:
			return "", 0, false
		}
		i += 2
	}
}

// unquoteBufs holds unquote's scratch buffers (the string it returns is a copy): a warm
// function reuses one instead of allocating a body's size per request.
var unquoteBufs = sync.Pool{New: func() any { return new([]byte) }}

// maxPooledBuf bounds the buffers kept: a rare huge body does not pin its size in memory.
const maxPooledBuf = 1 << 20

// escapedRune reads a \uXXXX escape at s[i].
func escapedRune(s []byte, i int) (rune, bool) {
	if i+1 >= len(s) || s[i] != '\\' || s[i+1] != 'u' {
		return 0, false
	}
	return hex4(s, i+2)
}

func hex4(s []byte, i int) (rune, bool) {
	if i+4 > len(s) {
		return 0, false
	}
	var r rune
	for _, c := range s[i : i+4] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			c = c - 'A' + 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}

// stops marks, in 8 bytes (little-endian), the lanes a string scan stops at: a control
// character, '"', '\\' or a byte of 0x80 or more. A lane below 0x20 or equal to '"' or '\\'
// borrows and sets its top bit, a lane of 0x80 or more has it set already. Borrows only run
// upwards from a stop, so the lowest marked lane is the first stop.
func stops(x uint64) uint64 {
	const lanes, tops = 0x0101010101010101, 0x8080808080808080
	t := (x - 0x20*lanes) | ((x ^ '"'*lanes) - lanes) | ((x ^ '\\'*lanes) - lanes)
	return (t&^x | x) & tops
}

func word(b []byte, i int) uint64 {
	b = b[i : i+8]
	return uint64(b[0]) | uint64(b[1])<<8 | uint64(b[2])<<16 | uint64(b[3])<<24 |
		uint64(b[4])<<32 | uint64(b[5])<<40 | uint64(b[6])<<48 | uint64(b[7])<<56
}
