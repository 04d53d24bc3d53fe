package main

import (
	"strings"
	"testing"

	"github.com/retarget-dev/retarget/shared/runtime/env"
)

// TestProdWarnsOfTestEventCodes: the dev config (which sets a test code) warns on prod and on
// no other stage; the config cdk.json deploys by default never warns.
func TestProdWarnsOfTestEventCodes(t *testing.T) {
	dev, err := env.LoadApps("../config/apps.dev.json")
	if err != nil {
		t.Fatal(err)
	}
	sample, err := env.LoadApps("../config/apps.json")
	if err != nil {
		t.Fatal(err)
	}
	w := testCodeWarnings("prod", dev)
	if len(w) != 1 || !strings.Contains(w[0], `app "sample-shop" sets meta.test_event_code "TEST12345" on the prod stage`) {
		t.Fatalf("prod with the dev config: %q", w)
	}
	for _, stage := range []string{"dev", "staging"} {
		if w := testCodeWarnings(stage, dev); len(w) != 0 {
			t.Errorf("%s stage: %q", stage, w)
		}
	}
	if w := testCodeWarnings("prod", sample); len(w) != 0 {
		t.Errorf("the default config warns on prod: %q", w)
	}
}
