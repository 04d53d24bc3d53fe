package env

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestLoadAppsNamesTheFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "apps.json")
	if err := os.WriteFile(path, []byte(`{"version": 1}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadApps(path); err == nil || !strings.Contains(err.Error(), path) {
		t.Fatalf("error %v does not name %s", err, path)
	}
	if _, err := LoadApps(filepath.Join(t.TempDir(), "missing.json")); err == nil {
		t.Fatal("missing file accepted")
	}
	if _, err := LoadApps(filepath.Join("..", "..", "..", "infra", "config", "apps.json")); err != nil {
		t.Fatalf("sample config: %v", err)
	}
}

func getenv(kv map[string]string) Getenv { return func(k string) string { return kv[k] } }

// Every function's configuration reads its names, applies the one config file default, and
// refuses a malformed value with an error that names the variable.
func TestRead(t *testing.T) {
	all := map[string]string{
		StreamName: "events", StreamFormat: "v1", Pepper: "p", PepperSecretID: "arn:pepper", APIKeyAppIDs: `{"k1":"app"}`,
		DevAuth: "true", DevAPIKey: "dev", MetricsNamespace: "Retarget",
		GraphURL: "http://127.0.0.1:1", CAPIVersion: "v25.0", APIVersion: "v26.0", MetaSecretID: "arn:meta", AccessToken: "t", AppSecret: "s",
		DeadLetterQueueURL: "https://sqs/q", DeadLetterFile: "dl.jsonl", HoldPause: "3s", DynamoEndpoint: "http://127.0.0.1:2",
		StateTableName: "state", UserTTLDays: "10", SweepLookbackHours: "5", ErasureTombstoneDays: "2", ErasureAuditDays: "7",
		LambdaTaskRoot: "/var/task",
	}
	in, err := ReadIngest(getenv(all))
	if err != nil || in.StreamName != "events" || in.StreamFormat != StreamFormatV1 || in.Pepper != (PepperSource{SecretID: "arn:pepper", Value: "p"}) ||
		in.Keys.KeyIDs["k1"] != "app" || !in.Keys.DevAuth || in.Keys.DevAPIKey != "dev" ||
		in.ConfigFile != "/var/task/config.json" || in.MetricsNamespace != "Retarget" {
		t.Errorf("ReadIngest = %+v, %v", in, err)
	}
	fw, err := ReadForwarder(getenv(all))
	if err != nil || fw.HoldPause != 3*time.Second || fw.StateTable != "state" || fw.DeadLetterQueueURL != "https://sqs/q" ||
		fw.DeadLetterFile != "dl.jsonl" || fw.DynamoEndpoint != "http://127.0.0.1:2" ||
		fw.Meta != (Meta{GraphURL: "http://127.0.0.1:1", CAPIVersion: "v25.0", MarketingVersion: "v26.0", SecretID: "arn:meta", AccessToken: "t", AppSecret: "s"}) {
		t.Errorf("ReadForwarder = %+v, %v", fw, err)
	}
	sw, err := ReadSweeper(getenv(all))
	if err != nil || sw.Lookback != 5*time.Hour || sw.State != (State{Table: "state", UserTTL: 10 * 24 * time.Hour}) {
		t.Errorf("ReadSweeper = %+v, %v", sw, err)
	}
	us, err := ReadUsersAPI(getenv(all))
	if err != nil || us.TombstoneTTL != 2*24*time.Hour || us.AuditRetention != 7*24*time.Hour || us.Keys.KeyIDs["k1"] != "app" {
		t.Errorf("ReadUsersAPI = %+v, %v", us, err)
	}
	as, err := ReadAudienceSync(getenv(all))
	if err != nil || as.State.Table != "state" || as.Meta.SecretID != "arn:meta" {
		t.Errorf("ReadAudienceSync = %+v, %v", as, err)
	}
	all[ConfigFile] = "apps.json"
	if up, err := ReadUpdater(getenv(all)); err != nil || up.ConfigFile != "apps.json" {
		t.Errorf("ReadUpdater = %+v, %v", up, err)
	}

	bad := []struct {
		name, value string
		read        func(Getenv) error
	}{
		{StreamName, "", func(g Getenv) error { _, err := ReadIngest(g); return err }},
		{StreamFormat, "2", func(g Getenv) error { _, err := ReadIngest(g); return err }},
		{APIKeyAppIDs, "[1]", func(g Getenv) error { _, err := ReadIngest(g); return err }},
		{HoldPause, "10", func(g Getenv) error { _, err := ReadForwarder(g); return err }},
		{StateTableName, "", func(g Getenv) error { _, err := ReadUpdater(g); return err }},
		{UserTTLDays, "-1", func(g Getenv) error { _, err := ReadUpdater(g); return err }},
		{SweepLookbackHours, "1h", func(g Getenv) error { _, err := ReadSweeper(g); return err }},
		{ErasureTombstoneDays, "0", func(g Getenv) error { _, err := ReadUsersAPI(g); return err }},
		{ErasureAuditDays, "x", func(g Getenv) error { _, err := ReadUsersAPI(g); return err }},
		{StateTableName, "", func(g Getenv) error { _, err := ReadAudienceSync(g); return err }},
	}
	for _, b := range bad {
		kv := map[string]string{}
		for k, v := range all {
			kv[k] = v
		}
		kv[b.name] = b.value
		if err := b.read(getenv(kv)); err == nil || !strings.Contains(err.Error(), b.name) {
			t.Errorf("%s=%q: error %v does not name the variable", b.name, b.value, err)
		}
	}
}
