package metasandbox

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// singleKeySchemas are the names payload.schema takes as a plain string.
var singleKeySchemas = []string{"EMAIL_SHA256", "PHONE_SHA256", "MOBILE_ADVERTISER_ID", "EXTERN_ID"}

// multiKeySchemas are the names a payload.schema list takes.
var multiKeySchemas = []string{"EXTERN_ID", "EMAIL", "PHONE", "GEN", "DOBY", "DOBM", "DOBD", "LN", "FN", "FI",
	"CT", "ST", "ZIP", "MADID", "COUNTRY", "LOOKALIKE_VALUE"}

const lookalikeValue = "LOOKALIKE_VALUE"

// madidRE is an advertising id as Meta wants it: a lowercase UUID, hyphens kept.
var madidRE = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

// zeroMADID is what iOS hands out when tracking is limited: it identifies nobody.
const zeroMADID = "00000000-0000-0000-0000-000000000000"

// checkedRow is one row of payload.data after the per-cell rules.
type checkedRow struct {
	// key identifies the member (see AudienceMember.Key); "" for an invalid row.
	key string
	// cells are the non-empty cells by column; nil for an invalid row.
	cells map[string]string
	// reason says why the row is invalid, naming the column, never the value; "" when valid.
	reason string
}

// checkedBatch is payload after the request-level and row-level rules.
type checkedBatch struct {
	rows           []checkedRow
	valid, invalid int
	// samples maps a few invalid rows' 0-based indexes to their reasons.
	samples map[string]string
}

// checkPayload applies the request-level rules to payload (any failure refuses the request)
// and the row-level ones (a failure makes only that row invalid). It also returns the number
// of rows, for the request log, whenever data is an array.
func checkPayload(text string, valueBased bool) (checkedBatch, int, *graphError) {
	var payload map[string]json.RawMessage
	if err := json.Unmarshal([]byte(text), &payload); err != nil || payload == nil {
		return checkedBatch{}, 0, errParam("param payload must be a JSON object with schema and data")
	}
	data, ok := payload["data"]
	if !ok || isJSONNull(data) {
		return checkedBatch{}, 0, errParam("The parameter payload.data is required")
	}
	var rawRows []json.RawMessage
	if err := json.Unmarshal(data, &rawRows); err != nil {
		return checkedBatch{}, 0, errParam("param payload.data must be an array.")
	}
	n := len(rawRows)
	schema, single, gerr := parseSchema(payload["schema"], valueBased)
	if gerr != nil {
		return checkedBatch{}, n, gerr
	}
	switch {
	case n == 0:
		return checkedBatch{}, n, errInvalid(0, "No Users", "payload.data must hold at least one row.")
	case n > MaxAudienceRowsPerRequest:
		return checkedBatch{}, n, errInvalid(0, "Too Many Users", fmt.Sprintf(
			"A request carries at most %d rows; this one carries %d. Send them as several batches of one session.",
			MaxAudienceRowsPerRequest, n))
	}
	batch := checkedBatch{rows: make([]checkedRow, n), samples: map[string]string{}}
	for i, raw := range rawRows {
		cells, gerr := rowCells(i, raw, len(schema), single)
		if gerr != nil {
			return checkedBatch{}, n, gerr
		}
		row := checkRow(schema, cells)
		batch.rows[i] = row
		if row.reason == "" {
			batch.valid++
			continue
		}
		batch.invalid++
		if len(batch.samples) < MaxInvalidEntrySamples {
			batch.samples[strconv.Itoa(i)] = row.reason
		}
	}
	return batch, n, nil
}

// parseSchema reads payload.schema: one single-key name, or a list of multi-key names.
// LOOKALIKE_VALUE goes with value-based audiences only, and they require it.
func parseSchema(raw json.RawMessage, valueBased bool) (schema []string, single bool, gerr *graphError) {
	invalid := func(format string, args ...any) ([]string, bool, *graphError) {
		return nil, false, errInvalid(0, "Invalid Schema", fmt.Sprintf(format, args...))
	}
	if len(bytes.TrimSpace(raw)) == 0 || isJSONNull(raw) {
		return nil, false, errParam("The parameter payload.schema is required")
	}
	var one string
	if json.Unmarshal(raw, &one) == nil {
		switch {
		case !slices.Contains(singleKeySchemas, one) && slices.Contains(multiKeySchemas, one):
			return invalid("A multi-key name goes in a list (payload.schema: [%q, ...]); a single-key schema is one of %s.",
				one, strings.Join(singleKeySchemas, ", "))
		case !slices.Contains(singleKeySchemas, one):
			return invalid("payload.schema must be one of %s, or a list of %s.",
				strings.Join(singleKeySchemas, ", "), strings.Join(multiKeySchemas, ", "))
		case valueBased:
			return nil, false, errInvalid(0, "Missing LOOKALIKE_VALUE",
				"A value-based audience takes a multi-key schema with a LOOKALIKE_VALUE column.")
		}
		return []string{one}, true, nil
	}
	var list []string
	if json.Unmarshal(raw, &list) != nil || len(list) == 0 {
		return invalid("payload.schema must be a key name or a non-empty list of key names.")
	}
	for j, key := range list {
		switch {
		case !slices.Contains(multiKeySchemas, key):
			return invalid("payload.schema[%d] is not a multi-key name; use %s.", j, strings.Join(multiKeySchemas, ", "))
		case slices.Index(list, key) != j:
			return invalid("payload.schema lists %s twice.", key)
		}
	}
	hasValue := slices.Contains(list, lookalikeValue)
	switch {
	case hasValue && !valueBased:
		return invalid("LOOKALIKE_VALUE is only taken by a value-based audience (created with is_value_based=true).")
	case !hasValue && valueBased:
		return nil, false, errInvalid(0, "Missing LOOKALIKE_VALUE",
			"A value-based audience requires a LOOKALIKE_VALUE column in payload.schema.")
	case len(list) == 1 && hasValue:
		return invalid("payload.schema needs at least one identifier besides LOOKALIKE_VALUE.")
	}
	return list, false, nil
}

// rowCells decodes one row: an array of width cells, or, for a single-key schema, also the
// bare value (Meta's examples send ["<hash>", ...] there).
func rowCells(i int, raw json.RawMessage, width int, single bool) ([]any, *graphError) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, errParam("param payload.data must be an array.")
	}
	cells, isArray := v.([]any)
	switch {
	case !isArray && single:
		return []any{v}, nil
	case !isArray:
		return nil, errInvalid(0, "Data Schema Mismatch", fmt.Sprintf(
			"Row %d: with a multi-key schema each row is an array of %d cells.", i, width))
	case len(cells) != width:
		return nil, errInvalid(0, "Data Schema Mismatch", fmt.Sprintf(
			"Row %d has %d cells; the schema has %d keys. Send \"\" for an unknown value.", i, len(cells), width))
	}
	return cells, nil
}

// checkRow applies the cell rules; the first broken one makes the row invalid. A valid row
// needs at least one identifier (a non-empty cell other than LOOKALIKE_VALUE).
func checkRow(schema []string, cells []any) checkedRow {
	var reason, firstID, externID string
	values := make(map[string]string, len(schema))
	for j, column := range schema {
		var s string
		switch v := cells[j].(type) {
		case string:
			s = v
		case json.Number:
			s = v.String()
		default:
			reason = cmp.Or(reason, column+": not a string")
			continue
		}
		if s == "" {
			if column == lookalikeValue {
				reason = cmp.Or(reason, "LOOKALIKE_VALUE: required on a value-based audience")
			}
			continue
		}
		if r := checkCell(column, s); r != "" {
			reason = cmp.Or(reason, r)
			continue
		}
		values[column] = s
		if column == "EXTERN_ID" {
			externID = s
		}
		if column != lookalikeValue && firstID == "" {
			firstID = s
		}
	}
	if reason == "" && firstID == "" {
		reason = "no identifier: every key cell is empty"
	}
	if reason != "" {
		return checkedRow{reason: reason}
	}
	return checkedRow{key: cmp.Or(externID, firstID), cells: values}
}

// checkCell checks one non-empty cell. Reasons name the column, never the value.
func checkCell(column, s string) string {
	switch column {
	case "EXTERN_ID":
		return "" // any string: the advertiser's own id, not hashed
	case "MADID", "MOBILE_ADVERTISER_ID":
		switch {
		case s == zeroMADID:
			return column + ": a zeroed advertising id (tracking limited) identifies nobody; send \"\""
		case madidRE.MatchString(s):
			return ""
		case madidRE.MatchString(strings.ToLower(s)):
			return column + ": uppercase; send the advertising id in lowercase"
		case isSHA256Hex(s):
			return column + ": looks hashed; send the advertising id unhashed"
		}
		return column + ": not an advertising id (a lowercase UUID with its hyphens)"
	case lookalikeValue:
		f, err := strconv.ParseFloat(s, 64)
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) || f < 0 {
			return "LOOKALIKE_VALUE: not a non-negative number"
		}
		return ""
	}
	switch {
	case !isSHA256Hex(s):
		return fmt.Sprintf("%s: not a SHA-256 hash (64 lowercase hex characters; got %d characters%s)", column, len(s), unhashedHint(s))
	case s == emptySHA256:
		return column + ": the SHA-256 of an empty string; send \"\" for an unknown value"
	}
	return ""
}

// sessionParams is the session parameter of one batch; id 0 means the call had none.
type sessionParams struct {
	id        int64
	batchSeq  int
	lastBatch bool
	estimated int64
}

// parseSession reads {"session_id", "batch_seq", "last_batch_flag", "estimated_num_total"}.
// Numbers may come as JSON numbers or numeric strings.
func parseSession(text string) (sessionParams, *graphError) {
	dec := json.NewDecoder(strings.NewReader(text))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil || m == nil {
		return sessionParams{}, errParam("param session must be a JSON object with session_id, batch_seq and last_batch_flag")
	}
	var p sessionParams
	var ok bool
	if p.id, ok = jsonInt(m["session_id"]); !ok || p.id <= 0 {
		return sessionParams{}, errParam("param session.session_id must be a positive 64-bit integer")
	}
	seq, ok := jsonInt(m["batch_seq"])
	if !ok || seq <= 0 || seq > math.MaxInt32 {
		return sessionParams{}, errParam("param session.batch_seq must be a positive integer")
	}
	p.batchSeq = int(seq)
	switch v := m["last_batch_flag"].(type) {
	case nil:
	case bool:
		p.lastBatch = v
	case string:
		if p.lastBatch, ok = parseGraphBool(v); !ok {
			return sessionParams{}, errParam("param session.last_batch_flag must be a boolean")
		}
	default:
		return sessionParams{}, errParam("param session.last_batch_flag must be a boolean")
	}
	if v, present := m["estimated_num_total"]; present && v != nil {
		if p.estimated, ok = jsonInt(v); !ok || p.estimated < 0 {
			return sessionParams{}, errParam("param session.estimated_num_total must be a non-negative integer")
		}
	}
	return p, nil
}

// jsonInt reads an integer decoded with UseNumber, or written as a numeric string.
func jsonInt(v any) (int64, bool) {
	var text string
	switch v := v.(type) {
	case json.Number:
		text = v.String()
	case string:
		text = v
	default:
		return 0, false
	}
	n, err := strconv.ParseInt(text, 10, 64)
	return n, err == nil
}

func isJSONNull(raw json.RawMessage) bool {
	return bytes.Equal(bytes.TrimSpace(raw), []byte("null"))
}
