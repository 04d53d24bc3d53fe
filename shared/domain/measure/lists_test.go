package measure

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestWithEmptyListsHasNoNullLists(t *testing.T) {
	for _, r := range []Report{{}, {Audiences: []AudienceReport{{}}, Groups: []GroupSpend{{}}}} {
		b, err := json.Marshal(r.WithEmptyLists())
		if err != nil {
			t.Fatal(err)
		}
		for _, list := range []string{"audiences", "groups", "adsets", "contaminated_days", "days", "notes"} {
			if strings.Contains(string(b), `"`+list+`":null`) {
				t.Errorf("%s is null: %s", list, b)
			}
		}
	}
}
