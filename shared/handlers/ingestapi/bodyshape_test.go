package ingestapi

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/retarget-dev/retarget/shared/domain/appconfig"
	"github.com/retarget-dev/retarget/shared/domain/appevent"
	"github.com/retarget-dev/retarget/shared/domain/identity"
)

// The model API Gateway applies passes exactly what it should, and everything it refuses the
// function refuses too (so a deployed API and `make dev` answer 400 to the same bodies).
func TestBodyShape(t *testing.T) {
	pseudo, err := identity.NewPseudonymizer([]byte("body-shape-test-pepper-0123456789"))
	if err != nil {
		t.Fatal(err)
	}
	parser := appevent.NewParser(pseudo)
	app := &appconfig.App{ID: "shop", Platforms: []appconfig.Platform{"ios"}}
	tests := []struct {
		body string
		ok   bool
	}{
		{`{"events": [{}]}`, true},
		{"{\"events\": [ {} ,\n\t{\"a\":1} ] }", true}, // whitespace around the elements
		{`{"events": [{"event_id": "x"}, {}], "extra": 1}`, true},
		{`{"events": []}`, true},                                  // the function's to refuse (400 "events is empty")
		{`{"events":[` + strings.Repeat(" ", 3<<19) + `]}`, true}, // the function's: 413
		{`{"events": {}}`, false},
		{`{"events": [1]}`, false},
		{`{"events": [{}, null]}`, false},
		{`{"events": null}`, false},
		{`{}`, false},
		{`[]`, false},
		{`null`, false},
		{`"events"`, false},
		{`{"events": [{}]`, false},
		{``, false},
	}
	for _, tt := range tests {
		if got := appevent.BodyShapeOK([]byte(tt.body)); got != tt.ok {
			t.Errorf("appevent.BodyShapeOK(%s) = %v, want %v", tt.body, got, tt.ok)
		}
		if !tt.ok {
			b, err := parser.Parse(app, tt.body, time.Now())
			if err == nil && len(b.Accepted) > 0 {
				t.Errorf("the gateway refuses %s but the function would accept events of it", tt.body)
			}
		}
	}
	var doc map[string]string
	if err := json.Unmarshal([]byte(appevent.BodyShapeResponse()), &doc); err != nil || doc["error"] != appevent.BodyShapeMessage {
		t.Fatalf("appevent.BodyShapeResponse() = %s", appevent.BodyShapeResponse())
	}
}
