package main

import (
	"fmt"

	"github.com/retarget-dev/retarget/infra/stack"
	"github.com/retarget-dev/retarget/shared/domain/appconfig"
)

// testCodeWarnings lists a warning for each app whose config sets meta.test_event_code when
// the stage is prod: Meta routes every event carrying a test_event_code to Events Manager >
// Test Events only, never to ads delivery or measurement ("never send it in production":
// Conversions API, test events, as in the project's Meta reference notes, section 1). Other
// stages may keep test codes (a staging stack trying a real dataset).
func testCodeWarnings(stage string, cfg *appconfig.Config) []string {
	if stage != stack.ProdStage || cfg == nil {
		return nil
	}
	var out []string
	for _, a := range cfg.Apps {
		if a.Meta.TestEventCode != "" {
			out = append(out, fmt.Sprintf("app %q sets meta.test_event_code %q on the %s stage: Meta sends every event of this app to Test Events only, never to ads; remove it from the config for production (keep test codes in a dev or staging config such as infra/config/apps.dev.json)",
				a.ID, a.Meta.TestEventCode, stage))
		}
	}
	return out
}
