package metasandbox

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// addMembers creates an audience in testAdAccount and adds n EXTERN_ID members u0..u(n-1).
func addMembers(t *testing.T, sb *Sandbox, n int) string {
	t.Helper()
	id := createAudience(t, sb, "Cart abandoners", false)
	if n > 0 {
		mustOK(t, callJSON(t, sb, "POST", usersPath(id), usersBody(externRows(0, n))))
	}
	return id
}

func externRows(from, to int) [][]string {
	var rows [][]string
	for i := from; i < to; i++ {
		rows = append(rows, []string{fmt.Sprintf("u%d", i)})
	}
	return rows
}

func usersBody(rows [][]string) map[string]any {
	data := make([]any, len(rows))
	for i, r := range rows {
		data[i] = r
	}
	return map[string]any{"payload": map[string]any{"schema": []string{"EXTERN_ID"}, "data": data}}
}

// Meta refuses removals from small audiences ("audience size too low"): the sandbox refuses a
// removal that would leave fewer than Config.RemovalMinSize members, 100 by default.
func TestRemovalThreshold(t *testing.T) {
	for _, tc := range []struct {
		name             string
		minSize, members int
		remove           int
		refused          bool
	}{
		{"default 100, 100 left", 0, 101, 1, false},
		{"default 100, 99 left", 0, 100, 1, true},
		{"threshold 5, 5 left", 5, 7, 2, false},
		{"threshold 5, 4 left", 5, 7, 3, true},
		{"off, 1 left", -1, 3, 2, false},
		{"off, none left", -1, 3, 3, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sb, _ := newAudienceSandbox(t, func(c *Config) { c.RemovalMinSize = tc.minSize })
			id := addMembers(t, sb, tc.members)
			r := callJSON(t, sb, "DELETE", usersPath(id), usersBody(externRows(0, tc.remove)))
			left := len(sb.AudienceMembers(id))
			if !tc.refused {
				mustOK(t, r)
				if left != tc.members-tc.remove {
					t.Errorf("%d members left, want %d", left, tc.members-tc.remove)
				}
				return
			}
			mustFail(t, r, CodeAudienceUpdateFailed, 0)
			if r.body.Error.UserTitle != titleSizeTooLow || left != tc.members {
				t.Errorf("refusal %q, %d members left; want Meta's message and %d", r.body.Error.UserMsg, left, tc.members)
			}
		})
	}
}

// Faults.RefuseRemovals refuses every removal while adds go on; the request log names the fault.
func TestRefuseRemovalsFault(t *testing.T) {
	sb, _ := newAudienceSandbox(t, nil)
	id := addMembers(t, sb, 3)
	sb.SetFaults(Faults{RefuseRemovals: true})
	mustFail(t, callJSON(t, sb, "DELETE", usersPath(id), usersBody(externRows(0, 1))), CodeAudienceUpdateFailed, 0)
	mustOK(t, callJSON(t, sb, "POST", usersPath(id), usersBody(externRows(3, 4))))
	reqs := sb.Requests()
	if reqs[len(reqs)-2].Fault != FaultRemovalRefused {
		t.Errorf("fault %q, want %q", reqs[len(reqs)-2].Fault, FaultRemovalRefused)
	}
	sb.SetFaults(Faults{})
	mustOK(t, callJSON(t, sb, "DELETE", usersPath(id), usersBody(externRows(0, 1))))
	if n := len(sb.AudienceMembers(id)); n != 3 {
		t.Errorf("%d members, want 3", n)
	}
}

// A deleted audience answers 100/33 on every edge and is not found by name any more; the name
// lookup finds the others by exact name.
func TestDeletedAudienceAndNameLookup(t *testing.T) {
	sb, _ := newAudienceSandbox(t, nil)
	id := addMembers(t, sb, 2)
	other := addMembers(t, sb, 0)
	srv := httptest.NewServer(sb)
	defer srv.Close()

	lookup := func() string {
		t.Helper()
		fields := map[string]any{"fields": "id,name",
			"filtering": []map[string]string{{"field": "name", "operator": "EQUAL", "value": "Cart abandoners"}}}
		r := callJSON(t, sb, "GET", createPath(testAdAccount), fields)
		mustOK(t, r)
		fields["method"] = "GET" // the Graph method override: a POST that reads
		if o := callJSON(t, sb, "POST", createPath(testAdAccount), fields); string(o.raw) != string(r.raw) {
			t.Errorf("POST method=GET = %s, GET = %s", o.raw, r.raw)
		}
		return string(r.raw)
	}
	if got, want := lookup(), fmt.Sprintf(`{"data":[{"id":"%s","name":"Cart abandoners"},{"id":"%s","name":"Cart abandoners"}]}`, id, other); strings.TrimSpace(got) != want {
		t.Errorf("lookup = %s, want %s", got, want)
	}
	resp, err := http.Post(srv.URL+"/_sandbox/audiences/"+id+"/delete", "application/json", nil)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("delete: %v %v", resp, err)
	}
	resp.Body.Close()
	for _, method := range []string{"POST", "DELETE"} {
		mustFail(t, callJSON(t, sb, method, usersPath(id), usersBody(externRows(0, 1))), CodeInvalidParameter, SubcodeObjectNotFound)
	}
	if got, want := lookup(), fmt.Sprintf(`{"data":[{"id":"%s","name":"Cart abandoners"}]}`, other); strings.TrimSpace(got) != want {
		t.Errorf("lookup after delete = %s, want %s", got, want)
	}
}
