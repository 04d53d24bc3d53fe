package ingestapi

import (
	"github.com/retarget-dev/retarget/shared/domain/appconfig"
)

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
