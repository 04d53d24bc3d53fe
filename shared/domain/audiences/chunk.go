package audiences

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

// Chunk cuts rows into requests, in order, each with at most maxRows rows and a payload of at
// most maxBytes bytes as AppendPayload writes it (the payload the sync sends; sizes are measured
// by writing each row with AppendPayload's own row encoder, so they are exact, escapes
// included). maxRows <= 0 or above MaxRows means MaxRows (Meta refuses more); maxBytes <= 0
// means MaxPayloadBytes. A row that alone exceeds maxBytes is sent alone rather than dropped:
// Meta judges it, and the sync logs its answer. The requests share rows' backing array (nothing
// is copied). Nil for no rows.
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
	f := formOf(schema)
	scratch := f.appendHead(nil, schema)
	empty := len(scratch) + len(payloadTail)
	out := make([][][]string, 0, (len(rows)+maxRows-1)/maxRows)
	start, size := 0, empty
	for i, row := range rows {
		scratch = f.appendRow(scratch[:0], row)
		n := len(scratch)
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

// PayloadSize returns the length of AppendPayload(nil, schema, rows) (for rows it accepts).
func PayloadSize(schema []string, rows [][]string) int {
	f := formOf(schema)
	scratch := f.appendHead(nil, schema)
	n := len(scratch) + len(payloadTail)
	for i, row := range rows {
		if i > 0 {
			n++
		}
		scratch = f.appendRow(scratch[:0], row)
		n += len(scratch)
	}
	return n
}
