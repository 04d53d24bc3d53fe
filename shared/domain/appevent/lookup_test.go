package appevent

import (
	"strconv"
	"testing"
)

func TestKeySetsFindTheirNamesOnly(t *testing.T) {
	sets := map[string]struct {
		set   *keySet
		names []string
	}{
		"event":   {eventKeys, []string{"event_id", "event_name", "event_time", "user", "device", "consent", "custom_data"}},
		"user":    {userKeySet, userKeys[:]},
		"device":  {deviceKeys, nil},
		"consent": {consentKeys, nil},
		"custom":  {customKeys, nil},
		"content": {contentKeys, []string{"id", "quantity", "item_price"}},
		"names":   {eventNameSet, nil},
	}
	for name, s := range sets {
		names := s.names
		if names == nil {
			for _, slot := range s.set.slots {
				if slot.name != "" {
					names = append(names, slot.name)
				}
			}
		}
		for i, n := range names {
			got := s.set.index(n)
			if s.names != nil && got != i || got < 0 {
				t.Errorf("%s: index(%q) = %d, want %d", name, n, got, i)
			}
			for _, other := range []string{n[:len(n)-1], n + "x", "x" + n[1:], n[:len(n)-1] + "X", ""} {
				if other != "" && s.set.index(other) >= 0 && !contains(names, other) {
					t.Errorf("%s: index(%q) = %d for a name not in the set", name, other, s.set.index(other))
				}
			}
		}
		if s.set.index("") != -1 || s.set.index("no_such_member_"+strconv.Itoa(len(names))) != -1 {
			t.Errorf("%s: unknown names found", name)
		}
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
