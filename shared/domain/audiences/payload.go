package audiences

import (
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/retarget-dev/retarget/shared/domain/appconfig"
	"github.com/retarget-dev/retarget/shared/domain/jsonenc"
)

// singleKeySchemas are the schema names sent in Meta's single-key form: the schema as a
// string and data as a flat list. Any other schema is sent as a multi-key list.
var singleKeySchemas = map[string]bool{
	"EMAIL_SHA256": true, "PHONE_SHA256": true, "MOBILE_ADVERTISER_ID": true, "EXTERN_ID": true,
}

// payloadTail closes the data list and the payload object.
const payloadTail = "]}"

// payloadForm is how the payload of one schema is written: Meta's single-key form for one
// single-key column, the multi-key form otherwise (schema list, is_raw, 2-D data with
// LOOKALIKE_VALUE cells as JSON numbers).
type payloadForm struct {
	singleKey bool
	numeric   []bool // per column: the cell is written as a JSON number
}

func formOf(schema []string) payloadForm {
	if len(schema) == 1 && singleKeySchemas[schema[0]] {
		return payloadForm{singleKey: true}
	}
	numeric := make([]bool, len(schema))
	for i, k := range schema {
		numeric[i] = k == appconfig.ColumnValue
	}
	return payloadForm{numeric: numeric}
}

// appendHead writes the payload up to the first row: {"schema":...,"data":[
func (f payloadForm) appendHead(dst []byte, schema []string) []byte {
	if f.singleKey {
		dst = append(dst, `{"schema":`...)
		dst = jsonenc.AppendString(dst, schema[0])
		return append(dst, `,"data":[`...)
	}
	dst = append(dst, `{"schema":[`...)
	for i, k := range schema {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = jsonenc.AppendString(dst, k)
	}
	return append(dst, `],"is_raw":true,"data":[`...)
}

// appendRow writes one row (without the comma that separates it from the previous one). A
// numeric cell is written as it is: AppendPayload checks it is a JSON number first.
func (f payloadForm) appendRow(dst []byte, row []string) []byte {
	if f.singleKey {
		return jsonenc.AppendString(dst, row[0])
	}
	dst = append(dst, '[')
	for j, cell := range row {
		if j > 0 {
			dst = append(dst, ',')
		}
		if j < len(f.numeric) && f.numeric[j] {
			dst = append(dst, cell...)
		} else {
			dst = jsonenc.AppendString(dst, cell)
		}
	}
	return append(dst, ']')
}

// badNumber returns the index of the first numeric column of row whose cell is not a JSON
// number, or -1.
func (f payloadForm) badNumber(row []string) int {
	for j, num := range f.numeric {
		if num && j < len(row) && !isJSONNumber(row[j]) {
			return j
		}
	}
	return -1
}

// AppendPayload appends the payload of a Custom Audiences /users or /usersreplace request to
// dst, the JSON that travels as its "payload" parameter: {"schema":"EMAIL_SHA256","data":[...]}
// (Meta's single-key form) when schema is one single-key column, else
// {"schema":[...],"is_raw":true,"data":[[...],...]} with LOOKALIKE_VALUE cells written as JSON
// numbers. Strings are escaped as json.Marshal escapes them. Every row must have a cell per
// schema column. The error names the row of a LOOKALIKE_VALUE cell that is not a number, never
// its value (cells are customer identifiers); nothing is appended then.
func AppendPayload(dst []byte, schema []string, rows [][]string) ([]byte, error) {
	f := formOf(schema)
	for i, r := range rows {
		if f.badNumber(r) >= 0 {
			return dst, fmt.Errorf("row %d: %s is not a number", i, appconfig.ColumnValue)
		}
	}
	dst = f.appendHead(dst, schema)
	for i, r := range rows {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = f.appendRow(dst, r)
	}
	return append(dst, payloadTail...), nil
}

// isJSONNumber reports whether s is a finite number written as JSON writes numbers.
func isJSONNumber(s string) bool {
	if s == "" || (s[0] != '-' && (s[0] < '0' || s[0] > '9')) {
		return false
	}
	if _, err := strconv.ParseFloat(s, 64); err != nil {
		return false
	}
	return json.Valid([]byte(s))
}
