package appevent

import (
	"encoding/json"
)

// BodyShapeMessage is the error API Gateway answers (400, {"error": BodyShapeMessage}) without
// invoking the function when a POST /v1/events body fails the request model the stack declares:
// a JSON object with an "events" array of objects. The function refuses every such body too
// (with its own, more specific message); the gateway check only spares the invocation. The
// model says nothing of the array's length: an empty array, like a body over 1 MiB or more than
// 500 events, is the function's to refuse (400 with its message, or 413), as the API contract
// says.
const BodyShapeMessage = `body must be a JSON object with an "events" array of event objects`

// BodyShapeResponse is the gateway's answer body for a body that fails the model.
func BodyShapeResponse() string {
	b, _ := json.Marshal(map[string]string{"error": BodyShapeMessage})
	return string(b)
}

// BodyShapeOK reports whether body passes the request model of POST /v1/events (JSON Schema
// draft 4: type object, required "events", events an array whose items are objects), as API
// Gateway's validator applies it. The dev stack's gateway uses it to answer
// like API Gateway.
func BodyShapeOK(body []byte) bool {
	var doc map[string]json.RawMessage
	if err := json.Unmarshal(body, &doc); err != nil || doc == nil {
		return false
	}
	var events []json.RawMessage
	if err := json.Unmarshal(doc["events"], &events); err != nil || events == nil {
		return false
	}
	for _, e := range events {
		// Each element is valid JSON already (the body was checked whole), and a raw value
		// starts at its first byte: an object is one that starts with '{' (null does not).
		if len(e) == 0 || e[0] != '{' {
			return false
		}
	}
	return true
}
