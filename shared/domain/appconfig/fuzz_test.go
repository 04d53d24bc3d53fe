package appconfig

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

// FuzzParse: Parse never panics; a config it accepts validates, and survives what synth does
// to it (ForDeployment, marshal, Parse again) with the same apps.
func FuzzParse(f *testing.F) {
	sample, err := os.ReadFile(filepath.Join("..", "..", "..", "infra", "config", "apps.json"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(sample)
	f.Add([]byte(`{"version": 1, "apps": [{"id": "a", "platforms": ["ios"], "api_key": {"name": "k"}, "meta": {"dataset_id": "1", "ad_account_id": "act_1"}}]}`))
	f.Add([]byte(`{"version": 2}`))
	f.Add([]byte(`{"version": 1, "apps": [{"id": "a", "segments": [{"id": "s", "when": [{"count": {"events": ["X"], "within": "1d", "at_least": 1}}]}]}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Parse(data)
		if err != nil {
			return
		}
		if err := cfg.Validate(); err != nil {
			t.Fatalf("Parse accepted a config that does not validate: %v", err)
		}
		out, err := json.Marshal(cfg.ForDeployment())
		if err != nil {
			t.Fatalf("accepted config does not marshal: %v", err)
		}
		again, err := Parse(out)
		if err != nil {
			t.Fatalf("accepted config does not survive re-marshalling: %v\n%s", err, out)
		}
		if len(again.Apps) != len(cfg.Apps) {
			t.Fatalf("%d apps after the round trip, want %d", len(again.Apps), len(cfg.Apps))
		}
		for i := range cfg.Apps {
			if again.Apps[i].ID != cfg.Apps[i].ID || again.Apps[i].APIKey.DevValue != "" {
				t.Fatalf("app %d after the round trip: %+v", i, again.Apps[i])
			}
		}
	})
}
