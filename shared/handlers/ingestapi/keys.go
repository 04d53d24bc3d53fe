package ingestapi

import (
	"encoding/json"
	"fmt"

	"github.com/retarget-dev/retarget/shared/domain/appconfig"
)

// ParseKeyIDs reads the API_KEY_APP_IDS value the stack sets: a JSON object mapping API Gateway
// key ids to app ids. An empty string yields an empty map.
func ParseKeyIDs(s string) (map[string]string, error) {
	m := map[string]string{}
	if s == "" {
		return m, nil
	}
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		return nil, fmt.Errorf("API_KEY_APP_IDS: want a JSON object {\"<api key id>\": \"<app id>\"}: %w", err)
	}
	return m, nil
}

// DevKeys maps each app's api_key.dev_value to the app. override, when set (DEV_API_KEY),
// replaces the first app's dev key.
func DevKeys(cfg *appconfig.Config, override string) map[string]string {
	m := map[string]string{}
	for i, a := range cfg.Apps {
		key := a.APIKey.DevValue
		if i == 0 && override != "" {
			key = override
		}
		if key != "" {
			m[key] = a.ID
		}
	}
	return m
}
