package metasandbox

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

const (
	testAdAccount  = "1234567890"
	otherAdAccount = "555"
	testMADID      = "38400000-8cf0-11bd-b23e-10b96e40000d"
)

func sha(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// clock is a Config.Now the test moves by hand.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func newAudienceSandbox(t *testing.T, edit func(*Config)) (*Sandbox, *clock) {
	t.Helper()
	c := &clock{now: testNow}
	cfg := Config{
		AccessToken: testToken,
		AppSecret:   testSecret,
		Datasets:    []string{testDataset},
		AdAccounts:  []string{"act_" + testAdAccount, otherAdAccount},
		Now:         c.Now,
		// The tests remove from audiences of a few members: Meta's threshold (tested on its own
		// in TestRemovalThreshold) would refuse them all.
		RemovalMinSize: -1,
	}
	if edit != nil {
		edit(&cfg)
	}
	sb, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { sb.Close() })
	return sb, c
}

// audienceReply is a decoded answer of a Custom Audience endpoint.
type audienceReply struct {
	status int
	header http.Header
	raw    []byte
	body   struct {
		ID                  string            `json:"id"`
		AudienceID          string            `json:"audience_id"`
		SessionID           string            `json:"session_id"`
		NumReceived         int               `json:"num_received"`
		NumInvalidEntries   int               `json:"num_invalid_entries"`
		InvalidEntrySamples map[string]string `json:"invalid_entry_samples"`
		Error               *struct {
			Message     string `json:"message"`
			Type        string `json:"type"`
			Code        int    `json:"code"`
			Subcode     int    `json:"error_subcode"`
			IsTransient bool   `json:"is_transient"`
			UserTitle   string `json:"error_user_title"`
			UserMsg     string `json:"error_user_msg"`
			FBTraceID   string `json:"fbtrace_id"`
		} `json:"error"`
	}
}

func (r audienceReply) code() (int, int) {
	if r.body.Error == nil {
		return 0, 0
	}
	return r.body.Error.Code, r.body.Error.Subcode
}

// serve sends one request straight to the handler (no network: the tests stay fast).
func serve(t *testing.T, sb *Sandbox, req *http.Request) audienceReply {
	t.Helper()
	rec := httptest.NewRecorder()
	sb.ServeHTTP(rec, req)
	r := audienceReply{status: rec.Code, header: rec.Header(), raw: rec.Body.Bytes()}
	if strings.HasPrefix(rec.Header().Get("Content-Type"), "application/json") && !strings.HasPrefix(req.URL.Path, "/_sandbox/") {
		if err := json.Unmarshal(r.raw, &r.body); err != nil {
			t.Fatalf("answer is not JSON: %v\n%s", err, r.raw)
		}
	}
	return r
}

// callJSON sends fields as a JSON body with the token and proof; a nil field value removes it.
func callJSON(t *testing.T, sb *Sandbox, method, path string, fields map[string]any) audienceReply {
	t.Helper()
	body := map[string]any{"access_token": testToken, "appsecret_proof": testProof}
	for k, v := range fields {
		if v == nil {
			delete(body, k)
		} else {
			body[k] = v
		}
	}
	req := httptest.NewRequest(method, path, bytes.NewReader(mustJSON(t, body)))
	req.Header.Set("Content-Type", "application/json")
	return serve(t, sb, req)
}

func createPath(account string) string { return "/v26.0/act_" + account + "/customaudiences" }
func usersPath(id string) string       { return "/v26.0/" + id + "/users" }
func replacePath(id string) string     { return "/v26.0/" + id + "/usersreplace" }

func createAudience(t *testing.T, sb *Sandbox, name string, valueBased bool) string {
	t.Helper()
	r := callJSON(t, sb, "POST", createPath(testAdAccount), map[string]any{
		"name": name, "subtype": "CUSTOM", "customer_file_source": "USER_PROVIDED_ONLY", "is_value_based": valueBased,
	})
	if r.status != http.StatusOK || r.body.ID == "" {
		t.Fatalf("create %q: %d %s", name, r.status, r.raw)
	}
	return r.body.ID
}

func session(id int64, seq int, last bool) map[string]any {
	return map[string]any{"session_id": id, "batch_seq": seq, "last_batch_flag": last}
}

// upload sends payload {schema, data} and session to an audience edge.
func upload(t *testing.T, sb *Sandbox, method, path string, schema, data any, sess map[string]any) audienceReply {
	t.Helper()
	fields := map[string]any{"payload": map[string]any{"schema": schema, "data": data}}
	if sess != nil {
		fields["session"] = sess
	}
	return callJSON(t, sb, method, path, fields)
}

func mustOK(t *testing.T, r audienceReply) {
	t.Helper()
	if r.status != http.StatusOK || r.body.Error != nil {
		t.Fatalf("status %d: %s", r.status, r.raw)
	}
}

func mustFail(t *testing.T, r audienceReply, code, subcode int) {
	t.Helper()
	if r.status != http.StatusBadRequest || r.body.Error == nil {
		t.Fatalf("want %d/%d, got status %d: %s", code, subcode, r.status, r.raw)
	}
	if c, sc := r.code(); c != code || sc != subcode {
		t.Fatalf("want %d/%d, got %d/%d: %s", code, subcode, c, sc, r.raw)
	}
	if r.body.Error.FBTraceID == "" {
		t.Errorf("error without fbtrace_id: %s", r.raw)
	}
}

var multiKeySchema = []string{"EXTERN_ID", "EMAIL", "PHONE", "MADID"}

// threeRows are three people: one with an EXTERN_ID, two known by email or phone only.
func threeRows() [][]string {
	return [][]string{
		{"crm-1", sha("ann@example.com"), sha("15550000001"), testMADID},
		{"", sha("bob@example.com"), "", ""},
		{"", "", sha("15550000003"), ""},
	}
}

func TestCreateAudience(t *testing.T) {
	valid := map[string]any{"name": "Top spenders", "subtype": "CUSTOM", "customer_file_source": "USER_PROVIDED_ONLY",
		"description": "Bought 3+ times"}
	with := func(k string, v any) map[string]any {
		m := map[string]any{}
		for key, val := range valid {
			m[key] = val
		}
		m[k] = v
		return m
	}
	cases := []struct {
		name          string
		method, path  string
		fields        map[string]any
		faults        Faults
		code, subcode int
		msg           string
	}{
		{"name missing", "POST", createPath(testAdAccount), with("name", nil), Faults{}, 100, 0, "The parameter name is required"},
		{"name blank", "POST", createPath(testAdAccount), with("name", "  "), Faults{}, 100, 0, "name is required"},
		{"subtype missing", "POST", createPath(testAdAccount), with("subtype", nil), Faults{}, 100, 0, "subtype is required"},
		{"subtype LOOKALIKE", "POST", createPath(testAdAccount), with("subtype", "LOOKALIKE"), Faults{}, 100, 0, "subtype must be CUSTOM"},
		{"source missing", "POST", createPath(testAdAccount), with("customer_file_source", nil), Faults{}, 100, 0, "customer_file_source is required"},
		{"source unknown", "POST", createPath(testAdAccount), with("customer_file_source", "SCRAPED"), Faults{}, 100, 0, "must be one of"},
		{"is_value_based not a boolean", "POST", createPath(testAdAccount), with("is_value_based", "maybe"), Faults{}, 100, 0, "is_value_based"},
		{"unknown ad account", "POST", createPath("999"), valid, Faults{}, 100, 33, "Object with ID 'act_999' does not exist"},
		{"ad account without act_", "POST", "/v26.0/" + testAdAccount + "/customaudiences", valid, Faults{}, 100, 33, "does not exist"},
		{"DELETE", "DELETE", createPath(testAdAccount), valid, Faults{}, 100, 33, "Unsupported delete request"},
		{"old version", "POST", "/v25.0/act_" + testAdAccount + "/customaudiences", valid, Faults{}, 2635, 0, "deprecated version"},
		{"terms not accepted", "POST", createPath(testAdAccount), valid, Faults{TermsNotAccepted: true}, 200, 1870090, "customaudiences/tos/?act=" + testAdAccount},
		{"token expired", "POST", createPath(testAdAccount), valid, Faults{TokenExpired: true}, 190, 463, "Session has expired"},
		{"token wrong", "POST", createPath(testAdAccount), with("access_token", "EAAB-other"), Faults{}, 190, 0, "Invalid OAuth access token"},
		{"proof missing", "POST", createPath(testAdAccount), with("appsecret_proof", ""), Faults{}, 100, 0, "appsecret_proof"},
	}
	sb, _ := newAudienceSandbox(t, nil)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			sb.Reset()
			sb.SetFaults(tc.faults)
			r := callJSON(t, sb, tc.method, tc.path, tc.fields)
			mustFail(t, r, tc.code, tc.subcode)
			if e := r.body.Error; !strings.Contains(e.Message+" "+e.UserMsg, tc.msg) {
				t.Errorf("message %q / %q lacks %q", e.Message, e.UserMsg, tc.msg)
			}
			if len(sb.Audiences()) != 0 {
				t.Errorf("a refused create made an audience")
			}
			if reqs := sb.Requests(); len(reqs) != 1 || reqs[0].ErrorCode != tc.code || reqs[0].Status != 400 {
				t.Errorf("request log %+v", reqs)
			}
		})
	}

	t.Run("created", func(t *testing.T) {
		sb.Reset()
		sb.SetFaults(Faults{})
		r := callJSON(t, sb, "POST", createPath(testAdAccount), valid)
		mustOK(t, r)
		if _, err := strconv.ParseUint(r.body.ID, 10, 64); err != nil || !bytes.Equal(bytes.TrimSpace(r.raw), []byte(`{"id":"`+r.body.ID+`"}`)) {
			t.Errorf("want {\"id\": \"<digits>\"}, got %s", r.raw)
		}
		// A form body, values quoted the way Meta's curl examples quote them, value-based.
		form := url.Values{"name": {`"Top spenders by value"`}, "subtype": {`"CUSTOM"`},
			"customer_file_source": {"BOTH_USER_AND_PARTNER_PROVIDED"}, "is_value_based": {"true"},
			"access_token": {testToken}, "appsecret_proof": {testProof}}
		req := httptest.NewRequest("POST", createPath(testAdAccount), strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		r2 := serve(t, sb, req)
		mustOK(t, r2)

		got := sb.Audiences()
		want := []AudienceInfo{
			{ID: r.body.ID, AdAccount: testAdAccount, Name: "Top spenders", Description: "Bought 3+ times",
				CustomerFileSource: "USER_PROVIDED_ONLY", CreatedAt: testNow},
			{ID: r2.body.ID, AdAccount: testAdAccount, Name: "Top spenders by value",
				CustomerFileSource: "BOTH_USER_AND_PARTNER_PROVIDED", ValueBased: true, CreatedAt: testNow},
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("audiences\n got %+v\nwant %+v", got, want)
		}
		if reqs := sb.Requests(); len(reqs) != 2 || reqs[0].AdAccount != testAdAccount || reqs[0].AudienceID != r.body.ID || reqs[0].Status != 200 {
			t.Errorf("request log %+v", reqs)
		}
	})
}

func TestAudienceLimitPerAccount(t *testing.T) {
	sb, _ := newAudienceSandbox(t, nil)
	for i := range MaxCustomAudiencesPerAccount {
		createAudience(t, sb, fmt.Sprint("segment ", i), false)
	}
	r := callJSON(t, sb, "POST", createPath(testAdAccount), map[string]any{
		"name": "one too many", "subtype": "CUSTOM", "customer_file_source": "USER_PROVIDED_ONLY"})
	mustFail(t, r, CodeAudienceCreateFailed, 0)
	if r.body.Error.UserTitle != "Audience Limit Reached" {
		t.Errorf("error %+v", r.body.Error)
	}
	// The limit is per ad account.
	r = callJSON(t, sb, "POST", createPath(otherAdAccount), map[string]any{
		"name": "elsewhere", "subtype": "CUSTOM", "customer_file_source": "USER_PROVIDED_ONLY"})
	mustOK(t, r)
	if n := len(sb.Audiences()); n != MaxCustomAudiencesPerAccount+1 {
		t.Errorf("%d audiences", n)
	}
}

func TestAddThenRemoveMultiKey(t *testing.T) {
	sb, _ := newAudienceSandbox(t, nil)
	id := createAudience(t, sb, "Cart abandoners", false)

	r := upload(t, sb, "POST", usersPath(id), multiKeySchema, threeRows(), session(101, 1, true))
	mustOK(t, r)
	if r.body.AudienceID != id || r.body.SessionID != "101" || r.body.NumReceived != 3 || r.body.NumInvalidEntries != 0 ||
		r.body.InvalidEntrySamples == nil || len(r.body.InvalidEntrySamples) != 0 {
		t.Errorf("answer %s", r.raw)
	}
	if !bytes.Contains(r.raw, []byte(`"invalid_entry_samples":{}`)) {
		t.Errorf("invalid_entry_samples must be an empty object: %s", r.raw)
	}
	members := sb.AudienceMembers(id)
	wantKeys := []string{"crm-1", sha("bob@example.com"), sha("15550000003")}
	for _, k := range wantKeys {
		if _, ok := members[k]; !ok {
			t.Errorf("member %s missing; members %v", k, members)
		}
	}
	if m := members["crm-1"]; m.Row["EMAIL"] != sha("ann@example.com") || m.Row["MADID"] != testMADID || m.SessionID != 101 ||
		len(m.Row) != 4 || !m.AddedAt.Equal(testNow) {
		t.Errorf("member crm-1 %+v", m)
	}
	if m := members[sha("bob@example.com")]; len(m.Row) != 1 {
		t.Errorf("empty cells should be left out of the row: %+v", m.Row)
	}

	// Remove Bob, with the same body shape, as a form this time.
	form := url.Values{
		"payload":         {string(mustJSON(t, map[string]any{"schema": multiKeySchema, "data": [][]string{{"", sha("bob@example.com"), "", ""}}}))},
		"session":         {`{"session_id": 102, "batch_seq": 1, "last_batch_flag": true}`},
		"access_token":    {testToken},
		"appsecret_proof": {testProof},
	}
	req := httptest.NewRequest("DELETE", usersPath(id), strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	r = serve(t, sb, req)
	mustOK(t, r)
	if r.body.NumReceived != 1 {
		t.Errorf("answer %s", r.raw)
	}
	if got := sb.Audiences(); len(got) != 1 || got[0].Size != 2 {
		t.Fatalf("audiences %+v, want size 2", got)
	}
	if _, ok := sb.AudienceMembers(id)[sha("bob@example.com")]; ok {
		t.Errorf("Bob still a member")
	}
	reqs := sb.Requests()
	if last := reqs[len(reqs)-1]; last.Method != "DELETE" || last.Path != usersPath(id) || last.Rows != 1 || last.Status != 200 ||
		last.AudienceID != id || last.AdAccount != testAdAccount || last.SessionID != 102 || last.BatchSeq != 1 {
		t.Errorf("log %+v", last)
	}
}

func TestSingleKeySchemas(t *testing.T) {
	sb, _ := newAudienceSandbox(t, nil)
	id := createAudience(t, sb, "Single keys", false)
	cases := []struct {
		schema string
		data   any
	}{
		{"EMAIL_SHA256", []string{sha("a@example.com"), sha("b@example.com")}},   // bare values
		{"PHONE_SHA256", [][]string{{sha("15550000001")}, {sha("15550000002")}}}, // one-cell rows
		{"MOBILE_ADVERTISER_ID", []string{testMADID, "6d92078a-8246-4ba4-ae5b-76104861e7dc"}},
		{"EXTERN_ID", []any{"crm-7", 12345}}, // a number is taken as its text
	}
	for i, tc := range cases {
		r := upload(t, sb, "POST", usersPath(id), tc.schema, tc.data, session(int64(200+i), 1, true))
		mustOK(t, r)
		if r.body.NumReceived != 2 || r.body.NumInvalidEntries != 0 {
			t.Errorf("%s: %s", tc.schema, r.raw)
		}
	}
	if m := sb.AudienceMembers(id); len(m) != 8 || m["12345"].Row["EXTERN_ID"] != "12345" {
		t.Errorf("members %v", m)
	}
}

func TestValueBasedAudience(t *testing.T) {
	sb, _ := newAudienceSandbox(t, nil)
	valueID := createAudience(t, sb, "Customers by value", true)
	plainID := createAudience(t, sb, "Customers", false)

	// Refused whole: the schema does not fit the audience.
	mustFail(t, upload(t, sb, "POST", usersPath(valueID), []string{"EMAIL"}, [][]string{{sha("a@example.com")}}, session(1, 1, true)), 100, 0)
	mustFail(t, upload(t, sb, "POST", usersPath(valueID), "EMAIL_SHA256", []string{sha("a@example.com")}, session(2, 1, true)), 100, 0)
	r := upload(t, sb, "POST", usersPath(plainID), []string{"EMAIL", "LOOKALIKE_VALUE"}, [][]any{{sha("a@example.com"), 3}}, session(3, 1, true))
	mustFail(t, r, 100, 0)
	if !strings.Contains(r.body.Error.UserMsg, "value-based") {
		t.Errorf("message %q", r.body.Error.UserMsg)
	}

	// Meta's own example sends the values as JSON numbers; strings are taken too.
	r = upload(t, sb, "POST", usersPath(valueID), []string{"EMAIL", "LOOKALIKE_VALUE"}, [][]any{
		{sha("a@example.com"), 44.5},
		{sha("b@example.com"), "140"},
		{sha("c@example.com"), 0},
		{sha("d@example.com"), ""},    // required on a value-based audience
		{sha("e@example.com"), -1},    // negative
		{sha("f@example.com"), "12$"}, // not a number
		{"", 10},                      // no identifier
	}, session(4, 1, true))
	mustOK(t, r)
	if r.body.NumReceived != 7 || r.body.NumInvalidEntries != 4 {
		t.Errorf("answer %s", r.raw)
	}
	for idx, part := range map[string]string{"3": "required", "4": "non-negative", "5": "non-negative", "6": "no identifier"} {
		if !strings.Contains(r.body.InvalidEntrySamples[idx], part) {
			t.Errorf("sample %s = %q, want %q", idx, r.body.InvalidEntrySamples[idx], part)
		}
	}
	m := sb.AudienceMembers(valueID)
	if len(m) != 3 || m[sha("a@example.com")].Row["LOOKALIKE_VALUE"] != "44.5" || m[sha("b@example.com")].Row["LOOKALIKE_VALUE"] != "140" ||
		m[sha("c@example.com")].Row["LOOKALIKE_VALUE"] != "0" {
		t.Errorf("members %v", m)
	}
	if info := sb.Audiences()[0]; !info.ValueBased || info.Size != 3 {
		t.Errorf("info %+v", info)
	}
}

func TestInvalidRowsCountedNotRefused(t *testing.T) {
	sb, _ := newAudienceSandbox(t, nil)
	id := createAudience(t, sb, "Mixed quality", false)
	rawEmail := "mary@example.com"
	upperMADID := strings.ToUpper(testMADID)
	schema := []string{"EXTERN_ID", "EMAIL", "MADID", "FN"}
	data := [][]any{
		{"crm-1", sha("ann@example.com"), "", ""},            // 0 valid
		{"", rawEmail, "", ""},                               // 1 unhashed email
		{"", strings.ToUpper(sha("x@example.com")), "", ""},  // 2 uppercase hash
		{"", "", upperMADID, ""},                             // 3 uppercase MADID
		{"", "", "00000000-0000-0000-0000-000000000000", ""}, // 4 zeroed MADID
		{"", "", "", ""},                                     // 5 every cell empty
		{"crm-6", "", "", emptySHA256},                       // 6 SHA-256 of ""
		{"", 42, "", ""},                                     // 7 a number where a hash belongs
		{"", "", sha(testMADID), ""},                         // 8 hashed MADID
		{"", nil, testMADID, ""},                             // 9 null cell
		{"", "", testMADID, sha("mary")},                     // 10 valid, keyed by MADID
	}
	r := upload(t, sb, "POST", usersPath(id), schema, data, session(9, 1, true))
	mustOK(t, r)
	if r.body.NumReceived != 11 || r.body.NumInvalidEntries != 9 {
		t.Fatalf("answer %s", r.raw)
	}
	wantSamples := map[string]string{
		"1": "EMAIL: not a SHA-256 hash", "2": "EMAIL: not a SHA-256 hash", "3": "MADID: uppercase", "4": "MADID: a zeroed",
		"5": "no identifier", "6": "FN: the SHA-256 of an empty string", "7": "EMAIL: not a SHA-256 hash", "8": "MADID: looks hashed",
		"9": "EMAIL: not a string",
	}
	if len(r.body.InvalidEntrySamples) != len(wantSamples) {
		t.Errorf("samples %v", r.body.InvalidEntrySamples)
	}
	for idx, part := range wantSamples {
		if !strings.Contains(r.body.InvalidEntrySamples[idx], part) {
			t.Errorf("sample %s = %q, want %q", idx, r.body.InvalidEntrySamples[idx], part)
		}
	}
	// No value leaks into the answer or the log: samples are keyed by row index.
	logJSON := mustJSON(t, sb.Requests())
	for _, leaked := range []string{rawEmail, upperMADID, sha("ann@example.com"), "crm-1"} {
		if bytes.Contains(r.raw, []byte(leaked)) || bytes.Contains(logJSON, []byte(leaked)) {
			t.Errorf("%q leaked: %s", leaked, r.raw)
		}
	}
	if m := sb.AudienceMembers(id); len(m) != 2 || m["crm-1"].Key != "crm-1" || m[testMADID].Row["FN"] != sha("mary") {
		t.Errorf("members %v", m)
	}
	if l := sb.Requests()[1]; l.Rows != 11 || l.InvalidEntries != 9 {
		t.Errorf("log %+v", l)
	}

	// Samples are capped; the count is not.
	bad := make([][]string, 15)
	for i := range bad {
		bad[i] = []string{"not a hash"}
	}
	r = upload(t, sb, "POST", usersPath(id), []string{"EMAIL"}, bad, session(10, 1, true))
	mustOK(t, r)
	if r.body.NumInvalidEntries != 15 || len(r.body.InvalidEntrySamples) != MaxInvalidEntrySamples {
		t.Errorf("answer %s", r.raw)
	}
}

// TestUploadRequestRules covers what refuses a whole /users or /usersreplace request.
func TestUploadRequestRules(t *testing.T) {
	sb, _ := newAudienceSandbox(t, nil)
	id := createAudience(t, sb, "Rules", false)
	email := [][]string{{sha("a@example.com")}}
	tooMany := make([]string, MaxAudienceRowsPerRequest+1)
	for i := range tooMany {
		tooMany[i] = sha(strconv.Itoa(i))
	}
	payload := func(schema, data any) map[string]any { return map[string]any{"schema": schema, "data": data} }
	cases := []struct {
		name          string
		method, path  string
		fields        map[string]any
		code, subcode int
		msg           string
		rows          int
	}{
		{"unknown audience", "POST", usersPath("999"), map[string]any{"payload": payload([]string{"EMAIL"}, email), "session": session(1, 1, true)}, 100, 33, "Object with ID '999' does not exist", 0},
		{"unknown audience, DELETE", "DELETE", usersPath("999"), map[string]any{"payload": payload([]string{"EMAIL"}, email)}, 100, 33, "Unsupported delete request", 0},
		{"GET users", "GET", usersPath(id), nil, 100, 33, "Unsupported get request", 0},
		{"DELETE usersreplace", "DELETE", replacePath(id), map[string]any{"payload": payload([]string{"EMAIL"}, email), "session": session(1, 1, true)}, 100, 33, "Unsupported delete request", 0},
		{"payload missing", "POST", usersPath(id), map[string]any{"session": session(1, 1, true)}, 100, 0, "The parameter payload is required", 0},
		{"payload not an object", "POST", usersPath(id), map[string]any{"payload": "schema=EMAIL"}, 100, 0, "param payload must be a JSON object", 0},
		{"data missing", "POST", usersPath(id), map[string]any{"payload": map[string]any{"schema": "EMAIL_SHA256"}}, 100, 0, "payload.data is required", 0},
		{"data not an array", "POST", usersPath(id), map[string]any{"payload": payload("EMAIL_SHA256", "x")}, 100, 0, "payload.data must be an array", 0},
		{"schema missing", "POST", usersPath(id), map[string]any{"payload": map[string]any{"data": email}}, 100, 0, "payload.schema is required", 1},
		{"schema unknown", "POST", usersPath(id), map[string]any{"payload": payload("EMAIL_MD5", email)}, 100, 0, "payload.schema must be one of", 1},
		{"multi-key name alone", "POST", usersPath(id), map[string]any{"payload": payload("EMAIL", email)}, 100, 0, "goes in a list", 1},
		{"schema list with an unknown key", "POST", usersPath(id), map[string]any{"payload": payload([]string{"EMAIL", "EMAIL_SHA256"}, [][]string{{"", ""}})}, 100, 0, "payload.schema[1] is not a multi-key name", 1},
		{"schema key twice", "POST", usersPath(id), map[string]any{"payload": payload([]string{"EMAIL", "EMAIL"}, [][]string{{"", ""}})}, 100, 0, "lists EMAIL twice", 1},
		{"schema empty list", "POST", usersPath(id), map[string]any{"payload": payload([]string{}, email)}, 100, 0, "non-empty list", 1},
		{"data empty", "POST", usersPath(id), map[string]any{"payload": payload("EMAIL_SHA256", []string{})}, 100, 0, "at least one row", 0},
		{"10,001 rows", "POST", usersPath(id), map[string]any{"payload": payload("EMAIL_SHA256", tooMany), "session": session(1, 1, true)}, 100, 0, "at most 10000 rows", MaxAudienceRowsPerRequest + 1},
		{"row too short", "POST", usersPath(id), map[string]any{"payload": payload([]string{"EMAIL", "PHONE"}, [][]string{{"", ""}, {sha("a")}})}, 100, 0, "Row 1 has 1 cells; the schema has 2 keys", 2},
		{"row not an array", "POST", usersPath(id), map[string]any{"payload": payload([]string{"EMAIL", "PHONE"}, []string{sha("a")})}, 100, 0, "Row 0: with a multi-key schema", 1},
		{"session missing on replace", "POST", replacePath(id), map[string]any{"payload": payload("EMAIL_SHA256", []string{sha("a")})}, 100, 0, "The parameter session is required", 1},
		{"session not an object", "POST", usersPath(id), map[string]any{"payload": payload("EMAIL_SHA256", []string{sha("a")}), "session": "7"}, 100, 0, "param session must be a JSON object", 1},
		{"session_id 0", "POST", usersPath(id), map[string]any{"payload": payload("EMAIL_SHA256", []string{sha("a")}), "session": session(0, 1, true)}, 100, 0, "session_id must be a positive", 1},
		{"session_id negative", "POST", usersPath(id), map[string]any{"payload": payload("EMAIL_SHA256", []string{sha("a")}), "session": session(-4, 1, true)}, 100, 0, "session_id must be a positive", 1},
		{"session_id too big", "POST", usersPath(id), map[string]any{"payload": payload("EMAIL_SHA256", []string{sha("a")}), "session": map[string]any{"session_id": json.Number("9223372036854775808"), "batch_seq": 1}}, 100, 0, "64-bit", 1},
		{"batch_seq 0", "POST", usersPath(id), map[string]any{"payload": payload("EMAIL_SHA256", []string{sha("a")}), "session": session(5, 0, true)}, 100, 0, "batch_seq must be a positive", 1},
		{"last_batch_flag not a boolean", "POST", usersPath(id), map[string]any{"payload": payload("EMAIL_SHA256", []string{sha("a")}), "session": map[string]any{"session_id": 5, "batch_seq": 1, "last_batch_flag": "maybe"}}, 100, 0, "last_batch_flag must be a boolean", 1},
		{"estimated_num_total negative", "POST", usersPath(id), map[string]any{"payload": payload("EMAIL_SHA256", []string{sha("a")}), "session": map[string]any{"session_id": 5, "batch_seq": 1, "estimated_num_total": -1}}, 100, 0, "estimated_num_total", 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := len(sb.Requests())
			r := callJSON(t, sb, tc.method, tc.path, tc.fields)
			mustFail(t, r, tc.code, tc.subcode)
			if e := r.body.Error; !strings.Contains(e.Message+" "+e.UserMsg, tc.msg) {
				t.Errorf("message %q / %q lacks %q", e.Message, e.UserMsg, tc.msg)
			}
			reqs := sb.Requests()
			if len(reqs) != before+1 || reqs[before].Rows != tc.rows || reqs[before].ErrorCode != tc.code {
				t.Errorf("log %+v, want rows %d", reqs[before:], tc.rows)
			}
			if n := len(sb.AudienceMembers(id)); n != 0 {
				t.Errorf("a refused request changed the audience: %d members", n)
			}
		})
	}
	if s := sb.AudienceSessions(id); len(s) != 0 {
		t.Errorf("refused requests opened sessions: %+v", s)
	}
}

func TestSessionOfThreeBatches(t *testing.T) {
	sb, c := newAudienceSandbox(t, nil)
	id := createAudience(t, sb, "Three batches", false)
	batch := func(from int) []string {
		return []string{sha(fmt.Sprint("user", from)), sha(fmt.Sprint("user", from+1))}
	}
	for seq := 1; seq <= 3; seq++ {
		sess := session(77, seq, seq == 3)
		sess["estimated_num_total"] = 6
		r := upload(t, sb, "POST", usersPath(id), "EMAIL_SHA256", batch(2*seq), sess)
		mustOK(t, r)
		if r.body.NumReceived != 2*seq || r.body.SessionID != "77" {
			t.Errorf("batch %d: %s", seq, r.raw)
		}
		c.Advance(time.Minute)
	}
	if n := len(sb.AudienceMembers(id)); n != 6 {
		t.Errorf("%d members, want 6", n)
	}
	// The session started with its first batch, at testNow (the clock moves after each batch).
	want := []AudienceSession{{SessionID: 77, Operation: "add", StartedAt: testNow, LastBatchSeq: 3, Finished: true,
		NumReceived: 6, EstimatedNumTotal: 6}}
	if got := sb.AudienceSessions(id); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("sessions\n got %+v\nwant %+v", got, want)
	}

	// The session is finished: a fourth batch is refused.
	r := upload(t, sb, "POST", usersPath(id), "EMAIL_SHA256", batch(8), session(77, 4, true))
	mustFail(t, r, CodeAudienceUpdateFailed, SubcodeSessionFinished)
	if n := len(sb.AudienceMembers(id)); n != 6 {
		t.Errorf("%d members after a refused batch", n)
	}
}

func TestBatchSequence(t *testing.T) {
	sb, _ := newAudienceSandbox(t, nil)
	id := createAudience(t, sb, "Sequence", false)
	other := createAudience(t, sb, "Other", false)
	rows := func(names ...string) []string {
		out := make([]string, len(names))
		for i, n := range names {
			out[i] = sha(n)
		}
		return out
	}

	t.Run("first batch_seq must be 1", func(t *testing.T) {
		mustFail(t, upload(t, sb, "POST", usersPath(id), "EMAIL_SHA256", rows("a"), session(1, 2, false)), 2650, SubcodeBatchSeqInvalid)
		mustFail(t, upload(t, sb, "POST", replacePath(id), "EMAIL_SHA256", rows("a"), session(2, 2, false)), 2650, SubcodeBatchSeqInvalid)
		if s := sb.AudienceSessions(id); len(s) != 0 {
			t.Errorf("sessions %+v", s)
		}
	})

	t.Run("gap refused, replay accepted once", func(t *testing.T) {
		first := upload(t, sb, "POST", usersPath(id), "EMAIL_SHA256", []string{sha("a"), "bad"}, session(3, 1, false))
		mustOK(t, first)
		r := upload(t, sb, "POST", usersPath(id), "EMAIL_SHA256", rows("c"), session(3, 3, false))
		mustFail(t, r, 2650, SubcodeBatchSeqInvalid)
		if !strings.Contains(r.body.Error.UserMsg, "expects batch_seq 2") {
			t.Errorf("message %q", r.body.Error.UserMsg)
		}
		mustOK(t, upload(t, sb, "POST", usersPath(id), "EMAIL_SHA256", rows("b"), session(3, 2, false)))

		// Batch 1 again (its answer was lost): the first answer, nothing applied or counted twice.
		again := upload(t, sb, "POST", usersPath(id), "EMAIL_SHA256", []string{sha("a"), "bad"}, session(3, 1, false))
		mustOK(t, again)
		if !bytes.Equal(again.raw, first.raw) {
			t.Errorf("replay answered\n%s\nfirst answer was\n%s", again.raw, first.raw)
		}
		reqs := sb.Requests()
		if last := reqs[len(reqs)-1]; !last.Replayed || last.Status != 200 || last.BatchSeq != 1 || last.InvalidEntries != 1 {
			t.Errorf("log %+v", last)
		}
		r = upload(t, sb, "POST", usersPath(id), "EMAIL_SHA256", rows("c"), session(3, 3, true))
		mustOK(t, r)
		if r.body.NumReceived != 4 {
			t.Errorf("num_received %d, want 4 (2 + 1 + 1; the replay not counted): %s", r.body.NumReceived, r.raw)
		}
		// A replay after the last batch is still answered.
		again = upload(t, sb, "POST", usersPath(id), "EMAIL_SHA256", rows("c"), session(3, 3, true))
		mustOK(t, again)
		if again.body.NumReceived != 4 {
			t.Errorf("replayed last batch %s", again.raw)
		}
		if n := len(sb.AudienceMembers(id)); n != 3 {
			t.Errorf("%d members, want 3", n)
		}
	})

	t.Run("session ids are unique per ad account", func(t *testing.T) {
		r := upload(t, sb, "POST", usersPath(other), "EMAIL_SHA256", rows("x"), session(3, 4, true))
		mustFail(t, r, 100, 0)
		if !strings.Contains(r.body.Error.UserMsg, "unique per ad account") {
			t.Errorf("message %q", r.body.Error.UserMsg)
		}
		mustFail(t, upload(t, sb, "DELETE", usersPath(id), "EMAIL_SHA256", rows("a"), session(3, 4, true)), 100, 0)
	})
}

func TestSessionTimesOut(t *testing.T) {
	sb, c := newAudienceSandbox(t, nil)
	id := createAudience(t, sb, "Slow upload", false)
	mustOK(t, upload(t, sb, "POST", usersPath(id), "EMAIL_SHA256", []string{sha("a")}, session(5, 1, false)))
	c.Advance(89 * time.Minute)
	mustOK(t, upload(t, sb, "POST", usersPath(id), "EMAIL_SHA256", []string{sha("b")}, session(5, 2, false)))
	c.Advance(2 * time.Minute) // 91 minutes after the first batch

	r := upload(t, sb, "POST", usersPath(id), "EMAIL_SHA256", []string{sha("c")}, session(5, 3, true))
	mustFail(t, r, CodeAudienceUpdateFailed, SubcodeSessionTimedOut)
	if r.body.Error.IsTransient {
		t.Errorf("a timed-out session is not transient: %s", r.raw)
	}
	mustFail(t, upload(t, sb, "POST", usersPath(id), "EMAIL_SHA256", []string{sha("b")}, session(5, 2, false)), 2650, SubcodeSessionTimedOut)
	// What arrived in time stays; a new session goes on.
	if n := len(sb.AudienceMembers(id)); n != 2 {
		t.Errorf("%d members, want 2", n)
	}
	if s := sb.AudienceSessions(id); len(s) != 1 || !s[0].TimedOut || s[0].Finished || s[0].NumReceived != 2 {
		t.Errorf("sessions %+v", s)
	}
	mustOK(t, upload(t, sb, "POST", usersPath(id), "EMAIL_SHA256", []string{sha("c")}, session(6, 1, true)))
}

func TestReplaceSwapsMembershipAtLastBatch(t *testing.T) {
	sb, c := newAudienceSandbox(t, nil)
	id := createAudience(t, sb, "VIP", false)
	mustOK(t, upload(t, sb, "POST", usersPath(id), "EMAIL_SHA256", []string{sha("old1"), sha("old2")}, session(1, 1, true)))

	mustOK(t, upload(t, sb, "POST", replacePath(id), "EMAIL_SHA256", []string{sha("new1"), "bad"}, session(2, 1, false)))
	if m := sb.AudienceMembers(id); len(m) != 2 || m[sha("old1")].Key == "" {
		t.Fatalf("members changed before the last batch: %v", m)
	}
	if info := sb.Audiences()[0]; !info.ReplaceInProgress {
		t.Errorf("info %+v", info)
	}

	// No other upload while the replace is open.
	r := upload(t, sb, "POST", usersPath(id), "EMAIL_SHA256", []string{sha("x")}, session(3, 1, true))
	mustFail(t, r, CodeAudienceUpdateFailed, SubcodeReplaceInProgress)
	if !r.body.Error.IsTransient {
		t.Errorf("replace in progress should be transient: %s", r.raw)
	}
	mustFail(t, upload(t, sb, "POST", replacePath(id), "EMAIL_SHA256", []string{sha("x")}, session(4, 1, true)), 2650, SubcodeReplaceInProgress)
	mustFail(t, upload(t, sb, "DELETE", usersPath(id), "EMAIL_SHA256", []string{sha("old1")}, nil), 2650, SubcodeReplaceInProgress)

	r = upload(t, sb, "POST", replacePath(id), "EMAIL_SHA256", []string{sha("new2"), sha("new3")}, session(2, 2, true))
	mustOK(t, r)
	if r.body.NumReceived != 4 || r.body.NumInvalidEntries != 0 {
		t.Errorf("answer %s", r.raw)
	}
	m := sb.AudienceMembers(id)
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	want := []string{sha("new1"), sha("new2"), sha("new3")}
	slices.Sort(want)
	if !slices.Equal(keys, want) {
		t.Errorf("members %v, want %v", keys, want)
	}
	if info := sb.Audiences()[0]; info.ReplaceInProgress || info.Size != 3 {
		t.Errorf("info %+v", info)
	}
	mustOK(t, upload(t, sb, "POST", usersPath(id), "EMAIL_SHA256", []string{sha("x")}, session(3, 1, true)))

	t.Run("timed out replace is dropped", func(t *testing.T) {
		mustOK(t, upload(t, sb, "POST", replacePath(id), "EMAIL_SHA256", []string{sha("lost")}, session(10, 1, false)))
		c.Advance(AudienceSessionWindow)
		mustFail(t, upload(t, sb, "POST", replacePath(id), "EMAIL_SHA256", []string{sha("lost2")}, session(10, 2, true)), 2650, SubcodeSessionTimedOut)
		if m := sb.AudienceMembers(id); len(m) != 4 || m[sha("lost")].Key != "" {
			t.Errorf("members %v", m)
		}
		mustOK(t, upload(t, sb, "POST", usersPath(id), "EMAIL_SHA256", []string{sha("y")}, session(11, 1, true)))
	})

	t.Run("replace with no valid row is refused", func(t *testing.T) {
		r := upload(t, sb, "POST", replacePath(id), "EMAIL_SHA256", []string{"bad"}, session(20, 1, true))
		mustFail(t, r, CodeAudienceUpdateFailed, 0)
		if r.body.Error.UserTitle != "Audience Size Too Low" {
			t.Errorf("error %+v", r.body.Error)
		}
		if n := len(sb.AudienceMembers(id)); n != 5 {
			t.Errorf("%d members", n)
		}
	})
}

func TestRemovingTheLastMembersIsRefused(t *testing.T) {
	sb, _ := newAudienceSandbox(t, nil)
	id := createAudience(t, sb, "Tiny", false)
	mustOK(t, upload(t, sb, "POST", usersPath(id), "EMAIL_SHA256", []string{sha("a"), sha("b")}, nil))
	r := upload(t, sb, "DELETE", usersPath(id), "EMAIL_SHA256", []string{sha("a"), sha("b"), sha("c")}, session(1, 1, true))
	mustFail(t, r, CodeAudienceUpdateFailed, 0)
	if r.body.Error.UserTitle != "Audience Size Too Low" {
		t.Errorf("error %+v", r.body.Error)
	}
	mustOK(t, upload(t, sb, "DELETE", usersPath(id), "EMAIL_SHA256", []string{sha("a")}, session(2, 1, true)))
	if n := len(sb.AudienceMembers(id)); n != 1 {
		t.Errorf("%d members", n)
	}
}

func TestUsersWithoutSession(t *testing.T) {
	sb, _ := newAudienceSandbox(t, nil)
	id := createAudience(t, sb, "No session", false)
	r1 := upload(t, sb, "POST", usersPath(id), "EMAIL_SHA256", []string{sha("a"), sha("b")}, nil)
	r2 := upload(t, sb, "POST", usersPath(id), "EMAIL_SHA256", []string{sha("c")}, nil)
	mustOK(t, r1)
	mustOK(t, r2)
	if r1.body.NumReceived != 2 || r2.body.NumReceived != 1 || r1.body.SessionID == "" || r1.body.SessionID == r2.body.SessionID {
		t.Errorf("answers %s %s", r1.raw, r2.raw)
	}
	if n := len(sb.AudienceMembers(id)); n != 3 {
		t.Errorf("%d members", n)
	}
}

func TestAudienceFaults(t *testing.T) {
	t.Run("rate limit", func(t *testing.T) {
		sb, _ := newAudienceSandbox(t, nil)
		id := createAudience(t, sb, "Throttled", false)
		sb.SetFaults(Faults{AudienceRateLimitRate: 1, RegainAccessMinutes: 7})
		for _, r := range []audienceReply{
			upload(t, sb, "POST", usersPath(id), "EMAIL_SHA256", []string{sha("a")}, session(1, 1, true)),
			callJSON(t, sb, "POST", createPath(testAdAccount), map[string]any{"name": "n", "subtype": "CUSTOM", "customer_file_source": "USER_PROVIDED_ONLY"}),
		} {
			mustFail(t, r, CodeAudienceRateLimit, 0)
			if !r.body.Error.IsTransient {
				t.Errorf("80003 should be transient: %s", r.raw)
			}
			var buc map[string][]map[string]any
			if err := json.Unmarshal([]byte(r.header.Get("X-Business-Use-Case-Usage")), &buc); err != nil {
				t.Fatalf("X-Business-Use-Case-Usage %q: %v", r.header.Get("X-Business-Use-Case-Usage"), err)
			}
			if u := buc[testAdAccount]; len(u) != 1 || u[0]["type"] != "custom_audience" || u[0]["estimated_time_to_regain_access"] != 7.0 {
				t.Errorf("usage %v", buc)
			}
		}
		if n := len(sb.AudienceMembers(id)); n != 0 || len(sb.Audiences()) != 1 {
			t.Errorf("a throttled call changed state")
		}
		reqs := sb.Requests()
		if last := reqs[len(reqs)-1]; last.Fault != FaultAudienceRateLimit || last.ErrorCode != 80003 {
			t.Errorf("log %+v", last)
		}
		// Auth comes first.
		mustFail(t, callJSON(t, sb, "POST", usersPath(id), map[string]any{"access_token": "bad"}), CodeAccessToken, 0)
		// The events endpoint does not see the audience throttle, nor the audiences the events one.
		body := mustJSON(t, map[string]any{"data": []any{appEvent("e1")}, "access_token": testToken, "appsecret_proof": testProof})
		req := httptest.NewRequest("POST", "/v26.0/"+testDataset+"/events", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		if r := serve(t, sb, req); r.status != http.StatusOK {
			t.Errorf("events throttled by the audience fault: %s", r.raw)
		}
		sb.SetFaults(Faults{RateLimitRate: 1})
		mustOK(t, upload(t, sb, "POST", usersPath(id), "EMAIL_SHA256", []string{sha("a")}, session(1, 1, true)))
	})

	t.Run("token expired", func(t *testing.T) {
		sb, _ := newAudienceSandbox(t, nil)
		id := createAudience(t, sb, "Expired", false)
		sb.SetFaults(Faults{TokenExpired: true})
		for _, r := range []audienceReply{
			upload(t, sb, "POST", usersPath(id), "EMAIL_SHA256", []string{sha("a")}, session(1, 1, true)),
			upload(t, sb, "DELETE", usersPath(id), "EMAIL_SHA256", []string{sha("a")}, session(2, 1, true)),
			upload(t, sb, "POST", replacePath(id), "EMAIL_SHA256", []string{sha("a")}, session(3, 1, true)),
		} {
			mustFail(t, r, CodeAccessToken, SubcodeSessionExpired)
			if !strings.Contains(r.header.Get("WWW-Authenticate"), "invalid_token") {
				t.Errorf("190 without WWW-Authenticate: %v", r.header)
			}
		}
		if l := sb.Requests()[1]; l.Fault != FaultTokenExpired || l.AudienceID != id {
			t.Errorf("log %+v", l)
		}
		sb.SetFaults(Faults{})
		// The token and proof are checked as on /events: query string and Authorization header work too.
		payload := url.QueryEscape(string(mustJSON(t, map[string]any{"schema": "EMAIL_SHA256", "data": []string{sha("a")}})))
		req := httptest.NewRequest("POST", usersPath(id)+"?appsecret_proof="+testProof+"&payload="+payload, nil)
		req.Header.Set("Authorization", "Bearer "+testToken)
		mustOK(t, serve(t, sb, req))
	})

	t.Run("server errors", func(t *testing.T) {
		sb, _ := newAudienceSandbox(t, nil)
		id := createAudience(t, sb, "Flaky", false)
		sb.SetFaults(Faults{ServerErrorRate: 1, Seed: 1})
		seen := map[int]int{}
		for i := range 12 {
			r := upload(t, sb, "POST", usersPath(id), "EMAIL_SHA256", []string{sha("a")}, session(int64(i+1), 1, true))
			seen[r.status]++
			if r.status == 500 {
				if c, _ := r.code(); c != CodeServiceUnavailable || !r.body.Error.IsTransient {
					t.Errorf("500 %s", r.raw)
				}
			}
		}
		if seen[500] == 0 || seen[503] == 0 || seen[500]+seen[503] != 12 {
			t.Errorf("statuses %v", seen)
		}
		if len(sb.AudienceMembers(id)) != 0 || len(sb.AudienceSessions(id)) != 0 {
			t.Errorf("a failed call changed state")
		}
	})

	t.Run("terms not accepted", func(t *testing.T) {
		sb, _ := newAudienceSandbox(t, nil)
		id := createAudience(t, sb, "Terms", false)
		sb.SetFaults(Faults{TermsNotAccepted: true})
		mustFail(t, upload(t, sb, "POST", usersPath(id), "EMAIL_SHA256", []string{sha("a")}, session(1, 1, true)), CodePermission, SubcodeTermsNotAccepted)
	})

	t.Run("body ceiling", func(t *testing.T) {
		sb, _ := newAudienceSandbox(t, nil)
		id := createAudience(t, sb, "Big", false)
		sb.SetFaults(Faults{AudienceMaxBodyBytes: 60_000})
		rows := make([]string, 1000) // ~67 KB of hashes
		for i := range rows {
			rows[i] = sha(strconv.Itoa(i))
		}
		r := upload(t, sb, "POST", usersPath(id), "EMAIL_SHA256", rows, session(1, 1, true))
		if r.status != http.StatusRequestEntityTooLarge || strings.HasPrefix(r.header.Get("Content-Type"), "application/json") {
			t.Fatalf("status %d %s", r.status, r.raw)
		}
		if l := sb.Requests()[1]; l.Fault != FaultBodyTooLarge || l.Status != 413 {
			t.Errorf("log %+v", l)
		}
		mustOK(t, upload(t, sb, "POST", usersPath(id), "EMAIL_SHA256", rows[:800], session(1, 1, true)))
	})
}

func TestAudienceReset(t *testing.T) {
	sb, _ := newAudienceSandbox(t, nil)
	id := createAudience(t, sb, "Before reset", false)
	mustOK(t, upload(t, sb, "POST", usersPath(id), "EMAIL_SHA256", []string{sha("a")}, session(1, 1, false)))
	sb.Reset()
	if len(sb.Audiences()) != 0 || sb.AudienceMembers(id) != nil || sb.AudienceSessions(id) != nil || len(sb.Requests()) != 0 {
		t.Errorf("Reset left audience state")
	}
	mustFail(t, upload(t, sb, "POST", usersPath(id), "EMAIL_SHA256", []string{sha("a")}, session(1, 2, true)), 100, 33)
	if again := createAudience(t, sb, "After reset", false); again == id {
		t.Errorf("id %s handed out twice", id)
	}
	// Session ids are free again after a reset.
	mustOK(t, upload(t, sb, "POST", usersPath(sb.Audiences()[0].ID), "EMAIL_SHA256", []string{sha("a")}, session(1, 1, true)))
}

func TestAudienceAdminEndpoints(t *testing.T) {
	sb, _ := newAudienceSandbox(t, nil)
	get := func(path string) audienceReply { return serve(t, sb, httptest.NewRequest("GET", path, nil)) }
	if r := get("/_sandbox/audiences"); r.status != 200 || strings.TrimSpace(string(r.raw)) != "[]" {
		t.Errorf("empty list: %d %s", r.status, r.raw)
	}
	id := createAudience(t, sb, "Dumped", true)
	mustOK(t, upload(t, sb, "POST", usersPath(id), []string{"EXTERN_ID", "LOOKALIKE_VALUE"}, [][]any{{"crm-1", 9.5}}, session(3, 1, false)))

	var list []AudienceInfo
	if err := json.Unmarshal(get("/_sandbox/audiences").raw, &list); err != nil || len(list) != 1 || list[0].ID != id || list[0].Size != 1 || !list[0].ValueBased {
		t.Errorf("list %+v (%v)", list, err)
	}
	var detail struct {
		Audience AudienceInfo              `json:"audience"`
		Members  map[string]AudienceMember `json:"members"`
		Sessions []AudienceSession         `json:"sessions"`
	}
	r := get("/_sandbox/audiences/" + id)
	if err := json.Unmarshal(r.raw, &detail); err != nil || detail.Audience.Name != "Dumped" ||
		detail.Members["crm-1"].Row["LOOKALIKE_VALUE"] != "9.5" || len(detail.Sessions) != 1 || detail.Sessions[0].LastBatchSeq != 1 {
		t.Errorf("detail %s (%v)", r.raw, err)
	}
	if r := get("/_sandbox/audiences/999"); r.status != http.StatusNotFound {
		t.Errorf("unknown audience: %d", r.status)
	}
	if r := serve(t, sb, httptest.NewRequest("POST", "/_sandbox/audiences", nil)); r.status != http.StatusMethodNotAllowed {
		t.Errorf("POST list: %d", r.status)
	}

	// The new faults go through /_sandbox/faults.
	req := httptest.NewRequest("POST", "/_sandbox/faults", strings.NewReader(`{"audience_rate_limit_rate":0.5,"terms_not_accepted":true,"audience_max_body_bytes":60000}`))
	if r := serve(t, sb, req); r.status != 200 {
		t.Fatalf("faults: %d %s", r.status, r.raw)
	}
	if f := sb.Faults(); f.AudienceRateLimitRate != 0.5 || !f.TermsNotAccepted || f.AudienceMaxBodyBytes != 60000 {
		t.Errorf("faults %+v", f)
	}
	for _, bad := range []string{`{"audience_rate_limit_rate": 2}`, `{"audience_max_body_bytes": -1}`} {
		if r := serve(t, sb, httptest.NewRequest("POST", "/_sandbox/faults", strings.NewReader(bad))); r.status != http.StatusBadRequest {
			t.Errorf("faults %s: %d", bad, r.status)
		}
	}
	if r := serve(t, sb, httptest.NewRequest("POST", "/_sandbox/reset", nil)); r.status != http.StatusNoContent || len(sb.Audiences()) != 0 {
		t.Errorf("reset: %d, %d audiences", r.status, len(sb.Audiences()))
	}
}

func TestAdAccountConfig(t *testing.T) {
	for _, bad := range [][]string{{""}, {"act_"}, {"act_12x"}, {"12-3"}} {
		if _, err := New(Config{AccessToken: testToken, AdAccounts: bad}); err == nil {
			t.Errorf("New accepted ad accounts %q", bad)
		}
	}
	// Audiences only, no dataset.
	sb, err := New(Config{AccessToken: testToken, AdAccounts: []string{"42"}})
	if err != nil {
		t.Fatal(err)
	}
	r := callJSON(t, sb, "POST", createPath("42"), map[string]any{"name": "n", "subtype": "CUSTOM",
		"customer_file_source": "USER_PROVIDED_ONLY", "appsecret_proof": nil})
	mustOK(t, r)
}

// TestReplaceFollowsItsDocumentedKeys: usersreplace's documented schema keys do not include
// LOOKALIKE_VALUE, so the sandbox refuses it there (and, since a value-based audience requires
// the column, every replace of one), while /users takes the same rows.
func TestReplaceFollowsItsDocumentedKeys(t *testing.T) {
	sb, _ := newAudienceSandbox(t, nil)
	valueID := createAudience(t, sb, "Customers by value", true)
	rows := [][]any{{"crm-1", sha("a@example.com"), 12.5}}

	r := upload(t, sb, "POST", replacePath(valueID), []string{"EXTERN_ID", "EMAIL", "LOOKALIKE_VALUE"}, rows, session(1, 1, true))
	mustFail(t, r, 100, 0)
	if e := r.body.Error; e.UserTitle != "Invalid Schema" || !strings.Contains(e.UserMsg, "payload.schema[2] is not a key of usersreplace") ||
		strings.Contains(e.UserMsg, "LOOKALIKE_VALUE") {
		t.Errorf("error %s", r.raw)
	}
	mustFail(t, upload(t, sb, "POST", replacePath(valueID), []string{"EXTERN_ID", "EMAIL"}, [][]any{{"crm-1", sha("a@example.com")}}, session(2, 1, true)), 100, 0)
	if m := sb.AudienceMembers(valueID); len(m) != 0 {
		t.Fatalf("a refused replace changed the members: %v", m)
	}

	mustOK(t, upload(t, sb, "POST", usersPath(valueID), []string{"EXTERN_ID", "EMAIL", "LOOKALIKE_VALUE"}, rows, session(3, 1, true)))
	if m := sb.AudienceMembers(valueID); len(m) != 1 || m["crm-1"].Row["LOOKALIKE_VALUE"] != "12.5" {
		t.Errorf("members %v", m)
	}
}
