package metasandbox

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
)

// replaceSchemaKeys are the multi-key names Meta documents for usersreplace: the /users list
// without LOOKALIKE_VALUE. Whether Meta takes LOOKALIKE_VALUE there is unverified (the
// project's Meta reference notes, "Corrections and additions"; infra/docs/guarantees.md), so
// the sandbox follows the documented list and refuses it, and with it every replace of a
// value-based audience (which requires the column): what the config's refusal of a full
// refresh with a value-based audience guards against.
var replaceSchemaKeys = slices.DeleteFunc(slices.Clone(multiKeySchemas), func(k string) bool { return k == lookalikeValue })

// checkReplaceSchema refuses a usersreplace payload whose schema list names a key outside
// replaceSchemaKeys, in the shape of the other schema refusals ("Invalid Schema", code 100).
// A payload that is not a schema list passes: checkPayload judges it.
func checkReplaceSchema(payload string) *graphError {
	var p struct {
		Schema []string `json:"schema"`
	}
	if json.Unmarshal([]byte(payload), &p) != nil {
		return nil
	}
	for j, key := range p.Schema {
		if !slices.Contains(replaceSchemaKeys, key) {
			return errInvalid(0, "Invalid Schema", fmt.Sprintf(
				"payload.schema[%d] is not a key of usersreplace; use %s.", j, strings.Join(replaceSchemaKeys, ", ")))
		}
	}
	return nil
}
