package audiences

import "unicode/utf8"

// Request limits of POST/DELETE /{audience}/users and /usersreplace.
//
// MaxRows is Meta's documented limit. MaxPayloadBytes is ours, and it is deliberately not the
// "~60 KB body ceiling" the reference reports from Meta support: a row of the default schema
// (EXTERN_ID, EMAIL, PHONE, MADID) is ~220 bytes of JSON, ~230 with LOOKALIKE_VALUE (at most
// ~245), so 10,000 rows are ~2.2-2.5 MB, and a 60 KB cap would allow ~270 rows per request:
// 37 times the requests, the rate budget spent 37 times faster, and the target
// (>= 9,500 rows per request on average) out of reach. The 10,000-row limit is documented; the
// 60 KB figure is a support anecdote (plausibly about another endpoint or encoding). So the row
// cap binds, and the byte cap (3 MiB: 10,000 rows of up to ~310 bytes) only stops anomalies such
// as unexpectedly long cells. It is configurable per app (audience_sync.max_payload_bytes): if
// Meta answers with body-size errors in production, lower it there, e.g. to 60000, at the cost
// of more requests.
const (
	MaxRows         = 10_000
	MaxPayloadBytes = 3 << 20
)

// Fixed parts of the payload JSON: {"schema":[...],"data":[[...],...]}.
const (
	payloadHead = `{"schema":`
	payloadData = `,"data":[`
	payloadTail = `]}`
)

// Chunk cuts rows into requests, in order, each with at most maxRows rows and a payload of at
// most maxBytes bytes as AppendPayload encodes it ({"schema":[...],"data":[[...],...]}, the
// size computed exactly, escapes included). maxRows <= 0 or above MaxRows means MaxRows (Meta
// refuses more); maxBytes <= 0 means MaxPayloadBytes. A row that alone exceeds maxBytes is
// sent alone rather than dropped: Meta judges it, and the sync logs its answer. The requests
// share rows' backing array (nothing is copied). Nil for no rows.
func Chunk(rows [][]string, schema []string, maxRows, maxBytes int) [][][]string {
	if len(rows) == 0 {
		return nil
	}
	if maxRows <= 0 || maxRows > MaxRows {
		maxRows = MaxRows
	}
	if maxBytes <= 0 {
		maxBytes = MaxPayloadBytes
	}
	empty := PayloadSize(schema, nil)
	out := make([][][]string, 0, (len(rows)+maxRows-1)/maxRows)
	start, size := 0, empty
	for i, row := range rows {
		n := arrayLen(row)
		if i > start {
			n++ // the comma before the row
		}
		if i > start && (i-start == maxRows || size+n > maxBytes) {
			out = append(out, rows[start:i:i])
			start, size = i, empty
			n--
		}
		size += n
	}
	return append(out, rows[start:len(rows):len(rows)])
}

// PayloadSize returns len(AppendPayload(nil, schema, rows)) without encoding.
func PayloadSize(schema []string, rows [][]string) int {
	n := len(payloadHead) + arrayLen(schema) + len(payloadData) + len(payloadTail)
	for i, row := range rows {
		if i > 0 {
			n++
		}
		n += arrayLen(row)
	}
	return n
}

// AppendPayload appends the payload JSON {"schema":[...],"data":[[...],...]} to dst, strings
// escaped exactly as encoding/json.Marshal escapes them (HTML characters included), so the
// sizes Chunk plans with are the sizes sent whichever of the two the sync uses.
func AppendPayload(dst []byte, schema []string, rows [][]string) []byte {
	dst = append(dst, payloadHead...)
	dst = appendArray(dst, schema)
	dst = append(dst, payloadData...)
	for i, row := range rows {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendArray(dst, row)
	}
	return append(dst, payloadTail...)
}

// arrayLen is the encoded length of a JSON array of strings.
func arrayLen(cells []string) int {
	n := 2 // [ ]
	if len(cells) > 1 {
		n += len(cells) - 1 // commas
	}
	for _, c := range cells {
		n += quotedLen(c)
	}
	return n
}

func appendArray(dst []byte, cells []string) []byte {
	dst = append(dst, '[')
	for i, c := range cells {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendQuoted(dst, c)
	}
	return append(dst, ']')
}

// quotedLen is the length of s as a JSON string written by appendQuoted.
func quotedLen(s string) int {
	n := 2
	for i := 0; i < len(s); {
		if b := s[i]; b < utf8.RuneSelf {
			if e := asciiEscapes[b]; e != "" {
				n += len(e)
			} else {
				n++
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 || r == '\u2028' || r == '\u2029' {
			n += 6 // \ufffd, \u2028, \u2029
		} else {
			n += size
		}
		i += size
	}
	return n
}

// appendQuoted writes s as a JSON string the way encoding/json.Marshal does: short escapes for
// " \ \b \f \n \r \t, \u00XX for other control characters and < > &, \ufffd for invalid UTF-8,
// \u2028 and \u2029 escaped.
func appendQuoted(dst []byte, s string) []byte {
	dst = append(dst, '"')
	for i := 0; i < len(s); {
		if b := s[i]; b < utf8.RuneSelf {
			if e := asciiEscapes[b]; e != "" {
				dst = append(dst, e...)
			} else {
				dst = append(dst, b)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			dst = append(dst, `\ufffd`...)
		case r == '\u2028':
			dst = append(dst, `\u2028`...)
		case r == '\u2029':
			dst = append(dst, `\u2029`...)
		default:
			dst = append(dst, s[i:i+size]...)
		}
		i += size
	}
	return append(dst, '"')
}

// asciiEscapes holds the escape of each ASCII byte that needs one ("" = written as is).
var asciiEscapes = func() (t [utf8.RuneSelf]string) {
	const hexDigits = "0123456789abcdef"
	for b := range byte(utf8.RuneSelf) {
		switch b {
		case '"', '\\':
			t[b] = `\` + string(b)
		case '\b':
			t[b] = `\b`
		case '\f':
			t[b] = `\f`
		case '\n':
			t[b] = `\n`
		case '\r':
			t[b] = `\r`
		case '\t':
			t[b] = `\t`
		case '<', '>', '&':
			t[b] = `\u00` + string(hexDigits[b>>4]) + string(hexDigits[b&0xf])
		default:
			if b < 0x20 {
				t[b] = `\u00` + string(hexDigits[b>>4]) + string(hexDigits[b&0xf])
			}
		}
	}
	return t
}()
