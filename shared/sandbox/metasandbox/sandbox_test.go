package metasandbox

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/url"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

const (
	testToken   = "access-token-234"
	testSecret  = "appsecret-123"
	testDataset = "1202835294532393"
	// testProof is the reference vector: HMAC-SHA256(key=testSecret, msg=testToken).
	testProof = "cdfcbc87edc90f8123cd3797a0d6f6f7eedf63d97038a15d1693d297f653d7f2"
)

// Hashes from Meta's documentation examples (reference section 3).
const (
	hashEm      = "62a14e44f765419d10fea99367361a727c12365e2520f32218d505ed9aa0f62f" // john_smith@gmail.com
	hashPh      = "e323ec626319ca94ee8bff2e4c87cf613be6ea19919ed1364124e16807ab3176" // 16505551212
	hashFn      = "6915771be1c5aa0c886870b6951b03d7eafc121fea0e80a5ea83beb7c449f4ec" // mary
	hashLn      = "08e1996b5dd49e62a4b4c010d44e4345592a863bb9f8e3976219bac29417149c" // valéry
	hashDb      = "01acdbf6ec7b4f478a225f1a246e5d6767eeab1a7ffa17f025265b5b94f40f0c" // 19970216
	hashGe      = "252f10c83610ebca1a059c0bae8255eba2f95be4d1d7bcfa89d7248a82d9f111" // f
	hashCountry = "79adb2a2fce5c6ba215fe5f27f532d4e7edbac4b6a5e09e1ef3a08084a904621" // us
)

var testNow = time.Date(2026, time.November, 2, 12, 0, 0, 0, time.UTC)

// TestReferenceHashes checks the fixture hashes against the normalised inputs, so the fixtures
// cannot drift from Meta's examples.
func TestReferenceHashes(t *testing.T) {
	for input, want := range map[string]string{
		"john_smith@gmail.com": hashEm, "16505551212": hashPh, "mary": hashFn, "valéry": hashLn,
		"19970216": hashDb, "f": hashGe, "us": hashCountry,
	} {
		sum := sha256.Sum256([]byte(input))
		if got := hex.EncodeToString(sum[:]); got != want {
			t.Errorf("sha256(%q) = %s, want %s", input, got, want)
		}
	}
	if got := appSecretProof(testSecret, testToken); got != testProof {
		t.Errorf("appsecret_proof = %s, want the reference vector %s", got, testProof)
	}
}

func newSandbox(t *testing.T, edit func(*Config)) (*Sandbox, string) {
	t.Helper()
	cfg := Config{
		AccessToken: testToken,
		AppSecret:   testSecret,
		Datasets:    []string{testDataset},
		Now:         func() time.Time { return testNow },
	}
	if edit != nil {
		edit(&cfg)
	}
	sb, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	srv := httptest.NewServer(sb) // 127.0.0.1
	t.Cleanup(srv.Close)
	t.Cleanup(func() { sb.Close() }) // runs first: releases held requests
	return sb, srv.URL
}

// appEvent is a valid app Purchase with the reference hashes.
func appEvent(id string) map[string]any {
	return map[string]any{
		"event_name":    "Purchase",
		"event_time":    testNow.Add(-time.Hour).Unix(),
		"event_id":      id,
		"action_source": "app",
		"user_data": map[string]any{
			"em":                []string{hashEm},
			"ph":                []string{hashPh},
			"fn":                hashFn,
			"ln":                []string{hashLn},
			"db":                []string{hashDb},
			"ge":                []string{hashGe},
			"country":           []string{hashCountry},
			"madid":             "38400000-8cf0-11bd-b23e-10b96e40000d",
			"client_ip_address": "203.0.113.7",
			"client_user_agent": "com.example.shop/7.7.1 (iPhone; iOS 17.4.1)",
		},
		"app_data": map[string]any{
			"advertiser_tracking_enabled":  1,
			"application_tracking_enabled": 1,
			"extinfo": []string{"i2", "com.example.shop", "771", "7.7.1", "17.4.1", "iPhone15,2", "en_US", "PDT",
				"T-Mobile", "1179", "2556", "3.00", "6", "128", "40", "America/Los_Angeles"},
		},
		"custom_data": map[string]any{"value": 9.99, "currency": "USD", "content_ids": []string{"sku-1"}},
	}
}

// graphReply is a decoded Graph answer.
type graphReply struct {
	status int
	header http.Header
	body   struct {
		EventsReceived int      `json:"events_received"`
		Messages       []string `json:"messages"`
		FBTraceID      string   `json:"fbtrace_id"`
		Error          *struct {
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
	raw []byte
}

func do(t *testing.T, client *http.Client, req *http.Request) graphReply {
	t.Helper()
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL.Path, err)
	}
	defer resp.Body.Close()
	var r graphReply
	r.status, r.header = resp.StatusCode, resp.Header
	r.raw, _ = io.ReadAll(resp.Body)
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") && bytes.HasPrefix(r.raw, []byte("{")) {
		// The /_sandbox/ answers have their own shapes; the tests read their raw bytes.
		if err := json.Unmarshal(r.raw, &r.body); err != nil && !strings.HasPrefix(req.URL.Path, "/_sandbox/") {
			t.Fatalf("answer is not JSON: %v\n%s", err, r.raw)
		}
	}
	return r
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// postJSON sends {"data": events, ...extra} with the token and proof in the body.
func postJSON(t *testing.T, base string, events any, extra map[string]any) graphReply {
	t.Helper()
	body := map[string]any{"data": events, "access_token": testToken, "appsecret_proof": testProof}
	for k, v := range extra {
		if v == nil {
			delete(body, k)
		} else {
			body[k] = v
		}
	}
	req, _ := http.NewRequest(http.MethodPost, base+"/v26.0/"+testDataset+"/events", bytes.NewReader(mustJSON(t, body)))
	req.Header.Set("Content-Type", "application/json")
	return do(t, nil, req)
}

func TestAcceptsValidAppEvent(t *testing.T) {
	sb, base := newSandbox(t, nil)
	r := postJSON(t, base, []any{appEvent("evt-1")}, map[string]any{"test_event_code": "TEST123", "partner_agent": "retarget-0.1"})
	if r.status != http.StatusOK || r.body.EventsReceived != 1 || r.body.Error != nil {
		t.Fatalf("status %d, body %s", r.status, r.raw)
	}
	if r.body.FBTraceID == "" || r.body.Messages == nil || len(r.body.Messages) != 0 {
		t.Errorf("want a trace id and messages: [], got %s", r.raw)
	}
	if !bytes.Contains(r.raw, []byte(`"messages":[]`)) {
		t.Errorf("messages must be an empty array, got %s", r.raw)
	}
	if r.header.Get("X-Fb-Trace-Id") != r.body.FBTraceID {
		t.Errorf("x-fb-trace-id header %q, body %q", r.header.Get("X-Fb-Trace-Id"), r.body.FBTraceID)
	}

	got := sb.Accepted()
	if len(got) != 1 {
		t.Fatalf("accepted %d events, want 1", len(got))
	}
	a := got[0]
	if a.Dataset != testDataset || a.TestEventCode != "TEST123" || a.PartnerAgent != "retarget-0.1" ||
		a.EventID != "evt-1" || a.EventName != "Purchase" || a.FBTraceID != r.body.FBTraceID || !a.ReceivedAt.Equal(testNow) {
		t.Errorf("accepted event %+v", a)
	}
	if ud := a.Event["user_data"].(map[string]any); ud["em"].([]any)[0] != hashEm {
		t.Errorf("user_data.em not kept as sent: %v", ud["em"])
	}
	if a.Event["event_time"] != json.Number(fmt.Sprint(testNow.Add(-time.Hour).Unix())) {
		t.Errorf("event_time %#v, want the exact json.Number", a.Event["event_time"])
	}
	if !json.Valid(a.Raw) || !bytes.Contains(a.Raw, []byte(hashEm)) {
		t.Errorf("Raw is not the event's JSON: %s", a.Raw)
	}

	reqs := sb.Requests()
	if len(reqs) != 1 {
		t.Fatalf("%d requests logged", len(reqs))
	}
	want := RequestLog{At: testNow, Method: "POST", Path: "/v26.0/" + testDataset + "/events", Version: "v26.0",
		Dataset: testDataset, Events: 1, Status: 200, FBTraceID: r.body.FBTraceID, TestEventCode: "TEST123"}
	if fmt.Sprint(reqs[0]) != fmt.Sprint(want) {
		t.Errorf("request log\n got %+v\nwant %+v", reqs[0], want)
	}
}

// TestBodyShapes sends the same event every way Meta accepts parameters.
func TestBodyShapes(t *testing.T) {
	data := func(t *testing.T) string { return string(mustJSON(t, []any{appEvent("evt-shape")})) }
	path := "/v26.0/" + testDataset + "/events"
	cases := []struct {
		name  string
		build func(t *testing.T, base string) *http.Request
	}{
		{"JSON, token and proof in the body", func(t *testing.T, base string) *http.Request {
			body := fmt.Sprintf(`{"data":%s,"access_token":%q,"appsecret_proof":%q}`, data(t), testToken, testProof)
			req, _ := http.NewRequest("POST", base+path, strings.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			return req
		}},
		{"JSON, token and proof in the query", func(t *testing.T, base string) *http.Request {
			q := url.Values{"access_token": {testToken}, "appsecret_proof": {testProof}}
			req, _ := http.NewRequest("POST", base+path+"?"+q.Encode(), strings.NewReader(`{"data":`+data(t)+`}`))
			req.Header.Set("Content-Type", "application/json")
			return req
		}},
		{"JSON, data as a JSON string", func(t *testing.T, base string) *http.Request {
			body := mustJSON(t, map[string]string{"data": data(t), "access_token": testToken, "appsecret_proof": testProof})
			req, _ := http.NewRequest("POST", base+path, bytes.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			return req
		}},
		{"JSON without a Content-Type, bearer token", func(t *testing.T, base string) *http.Request {
			req, _ := http.NewRequest("POST", base+path+"?appsecret_proof="+testProof, strings.NewReader(`{"data":`+data(t)+`}`))
			req.Header.Set("Authorization", "Bearer "+testToken)
			return req
		}},
		{"form-encoded", func(t *testing.T, base string) *http.Request {
			form := url.Values{"data": {data(t)}, "access_token": {testToken}, "appsecret_proof": {testProof}, "test_event_code": {"TEST9"}}
			req, _ := http.NewRequest("POST", base+path, strings.NewReader(form.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			return req
		}},
		{"multipart form", func(t *testing.T, base string) *http.Request {
			var buf bytes.Buffer
			mw := multipart.NewWriter(&buf)
			mw.WriteField("data", data(t))
			mw.WriteField("access_token", testToken)
			mw.WriteField("appsecret_proof", testProof)
			mw.Close()
			req, _ := http.NewRequest("POST", base+path, &buf)
			req.Header.Set("Content-Type", mw.FormDataContentType())
			return req
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			sb, base := newSandbox(t, nil)
			r := do(t, nil, tc.build(t, base))
			if r.status != http.StatusOK || r.body.EventsReceived != 1 {
				t.Fatalf("status %d: %s", r.status, r.raw)
			}
			if got := sb.Accepted(); len(got) != 1 || got[0].EventID != "evt-shape" {
				t.Fatalf("accepted %+v", got)
			}
		})
	}
}

// TestEventRules puts one bad event at index 1 behind a good one: the whole request fails,
// the error names event 1, and nothing is recorded.
func TestEventRules(t *testing.T) {
	const tooOld = 8 * 24 * time.Hour
	type edit func(ev map[string]any)
	ud := func(f func(map[string]any)) edit {
		return func(ev map[string]any) { f(ev["user_data"].(map[string]any)) }
	}
	ad := func(f func(map[string]any)) edit {
		return func(ev map[string]any) { f(ev["app_data"].(map[string]any)) }
	}
	cd := func(f func(map[string]any)) edit {
		return func(ev map[string]any) { f(ev["custom_data"].(map[string]any)) }
	}
	extinfo := func(f func([]any) []any) edit {
		return ad(func(a map[string]any) {
			slots := []any{}
			for _, s := range a["extinfo"].([]string) {
				slots = append(slots, s)
			}
			a["extinfo"] = f(slots)
		})
	}
	cases := []struct {
		name    string
		edit    edit
		subcode int
		msg     string // part of error_user_msg
	}{
		{"event_name missing", func(ev map[string]any) { delete(ev, "event_name") }, SubcodeInvalidValue, "event_name is required"},
		{"event_name with a bad character", func(ev map[string]any) { ev["event_name"] = "Purchase!" }, SubcodeInvalidValue, "event_name"},
		{"event_name of 41 characters", func(ev map[string]any) { ev["event_name"] = strings.Repeat("a", 41) }, SubcodeInvalidValue, "event_name"},
		{"event_name starting with a space", func(ev map[string]any) { ev["event_name"] = " Purchase" }, SubcodeInvalidValue, "event_name"},
		{"event_time missing", func(ev map[string]any) { delete(ev, "event_time") }, SubcodeInvalidValue, "event_time is required"},
		{"event_time as a string", func(ev map[string]any) { ev["event_time"] = fmt.Sprint(testNow.Unix()) }, SubcodeInvalidValue, "integer"},
		{"event_time with a fraction", func(ev map[string]any) { ev["event_time"] = float64(testNow.Unix()) + 0.5 }, SubcodeInvalidValue, "integer"},
		{"event_time 8 days old", func(ev map[string]any) { ev["event_time"] = testNow.Add(-tooOld).Unix() }, SubcodeEventTooOld, "too far in the past"},
		{"event_time in milliseconds", func(ev map[string]any) { ev["event_time"] = testNow.UnixMilli() }, SubcodeEventInFuture, "milliseconds"},
		{"event_time 2 minutes ahead", func(ev map[string]any) { ev["event_time"] = testNow.Add(2 * time.Minute).Unix() }, SubcodeEventInFuture, "future"},
		{"event_id a number", func(ev map[string]any) { ev["event_id"] = 42 }, SubcodeInvalidValue, "event_id"},
		{"action_source missing", func(ev map[string]any) { delete(ev, "action_source") }, SubcodeInvalidValue, "action_source is required"},
		{"action_source unknown", func(ev map[string]any) { ev["action_source"] = "mobile" }, SubcodeInvalidValue, "action_source must be"},
		{"advertiser_tracking_enabled at top level", func(ev map[string]any) { ev["advertiser_tracking_enabled"] = 1 }, SubcodeInvalidValue, "app_data"},
		{"opt_out not a boolean", func(ev map[string]any) { ev["opt_out"] = 1 }, SubcodeInvalidValue, "opt_out"},
		{"user_data missing", func(ev map[string]any) { delete(ev, "user_data") }, SubcodeInvalidValue, "user_data is required"},
		{"user_data not an object", func(ev map[string]any) { ev["user_data"] = []string{hashEm} }, SubcodeInvalidValue, "user_data must be an object"},
		{"em unhashed", ud(func(u map[string]any) { u["em"] = []string{"john_smith@gmail.com"} }), SubcodeNotHashed, "user_data.em[0] is not a SHA-256 hash"},
		{"ph digits only", ud(func(u map[string]any) { u["ph"] = "16505551212" }), SubcodeNotHashed, "user_data.ph[0]"},
		{"fn in uppercase hex", ud(func(u map[string]any) { u["fn"] = strings.ToUpper(hashFn) }), SubcodeNotHashed, "uppercase"},
		{"second ln value unhashed", ud(func(u map[string]any) { u["ln"] = []string{hashLn, "Valéry"} }), SubcodeNotHashed, "user_data.ln[1]"},
		{"external_id of 63 hex", ud(func(u map[string]any) { u["external_id"] = hashEm[:63] }), SubcodeNotHashed, "user_data.external_id[0]"},
		{"zp empty string", ud(func(u map[string]any) { u["zp"] = "" }), SubcodeNotHashed, "user_data.zp[0]"},
		{"em a number", ud(func(u map[string]any) { u["em"] = 12 }), SubcodeInvalidValue, "user_data.em must be a string or an array"},
		{"country a list of lists", ud(func(u map[string]any) { u["country"] = [][]string{{hashCountry}} }), SubcodeInvalidValue, "user_data.country"},
		{"madid a list", ud(func(u map[string]any) { u["madid"] = []string{"38400000-8cf0-11bd-b23e-10b96e40000d"} }), SubcodeInvalidValue, "user_data.madid must be a string"},
		{"client_ip_address not an address", ud(func(u map[string]any) { u["client_ip_address"] = "203.0.113" }), SubcodeInvalidValue, "client_ip_address"},
		{"client_user_agent a number", ud(func(u map[string]any) { u["client_user_agent"] = 5 }), SubcodeInvalidValue, "client_user_agent"},
		{"user_data empty", func(ev map[string]any) { ev["user_data"] = map[string]any{} }, SubcodeInsufficientCustomerInfo, "no customer information"},
		{"app_data missing", func(ev map[string]any) { delete(ev, "app_data") }, SubcodeInvalidValue, "app_data is required"},
		{"app_data not an object", func(ev map[string]any) { ev["app_data"] = "i2" }, SubcodeInvalidValue, "app_data must be an object"},
		{"advertiser_tracking_enabled boolean", ad(func(a map[string]any) { a["advertiser_tracking_enabled"] = true }), SubcodeInvalidValue, "value true is out of range"},
		{"advertiser_tracking_enabled 2", ad(func(a map[string]any) { a["advertiser_tracking_enabled"] = 2 }), SubcodeInvalidValue, "out of range"},
		{"advertiser_tracking_enabled missing", ad(func(a map[string]any) { delete(a, "advertiser_tracking_enabled") }), SubcodeInvalidValue, "advertiser_tracking_enabled is required"},
		{"application_tracking_enabled false", ad(func(a map[string]any) { a["application_tracking_enabled"] = false }), SubcodeInvalidValue, "application_tracking_enabled: value false is out of range"},
		{"application_tracking_enabled missing", ad(func(a map[string]any) { delete(a, "application_tracking_enabled") }), SubcodeInvalidValue, "application_tracking_enabled is required"},
		{"extinfo missing", ad(func(a map[string]any) { delete(a, "extinfo") }), SubcodeInvalidValue, "extinfo is required"},
		{"extinfo of 15 slots", extinfo(func(s []any) []any { return s[:15] }), SubcodeInvalidValue, "exactly 16"},
		{"extinfo of 17 slots", extinfo(func(s []any) []any { return append(s, "") }), SubcodeInvalidValue, "exactly 16"},
		{"extinfo slot a number", extinfo(func(s []any) []any { s[9] = 1179; return s }), SubcodeInvalidValue, "extinfo[9]"},
		{"extinfo version a1", extinfo(func(s []any) []any { s[0] = "a1"; return s }), SubcodeInvalidValue, "extinfo[0]"},
		{"extinfo without OS version", extinfo(func(s []any) []any { s[4] = ""; return s }), SubcodeInvalidValue, "extinfo[4]"},
		{"custom_data not an object", func(ev map[string]any) { ev["custom_data"] = "9.99 USD" }, SubcodeInvalidValue, "custom_data must be an object"},
		{"value a string", cd(func(c map[string]any) { c["value"] = "9.99" }), SubcodeInvalidValue, "value must be a number"},
		{"currency of 2 letters", cd(func(c map[string]any) { c["currency"] = "US" }), SubcodeInvalidValue, "ISO 4217"},
		{"currency a symbol", cd(func(c map[string]any) { c["currency"] = "$$$" }), SubcodeInvalidValue, "ISO 4217"},
		{"value without currency", func(ev map[string]any) {
			ev["event_name"] = "AddToCart"
			delete(ev["custom_data"].(map[string]any), "currency")
		}, SubcodeInvalidValue, "currency is required when value is set"},
		{"Purchase without custom_data", func(ev map[string]any) { delete(ev, "custom_data") }, SubcodeInvalidValue, "Purchase events require"},
		{"Purchase without value", cd(func(c map[string]any) { delete(c, "value") }), SubcodeInvalidValue, "Purchase events require"},
		{"data_processing_options not an array", func(ev map[string]any) { ev["data_processing_options"] = "LDU" }, SubcodeInvalidValue, "must be an array"},
		{"data_processing_options unknown option", func(ev map[string]any) { ev["data_processing_options"] = []string{"GDPR"} }, SubcodeInvalidValue, "only contain"},
		{"country without state", func(ev map[string]any) {
			ev["data_processing_options"] = []string{"LDU"}
			ev["data_processing_options_country"] = 1
		}, SubcodeInvalidValue, "go together"},
		{"state without country", func(ev map[string]any) { ev["data_processing_options_state"] = 1000 }, SubcodeInvalidValue, "go together"},
		{"country a string", func(ev map[string]any) {
			ev["data_processing_options_country"] = "US"
			ev["data_processing_options_state"] = 1000
		}, SubcodeInvalidValue, "data_processing_options_country must be an integer"},
	}
	sb, base := newSandbox(t, nil)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			sb.Reset()
			bad := appEvent("evt-bad")
			tc.edit(bad)
			r := postJSON(t, base, []any{appEvent("evt-good"), bad}, nil)
			e := r.body.Error
			if r.status != http.StatusBadRequest || e == nil {
				t.Fatalf("status %d: %s", r.status, r.raw)
			}
			if e.Code != CodeInvalidParameter || e.Subcode != tc.subcode || e.Type != "OAuthException" ||
				e.Message != "Invalid parameter" || e.IsTransient || e.FBTraceID == "" || e.UserTitle == "" {
				t.Errorf("error %+v, want code 100 subcode %d", e, tc.subcode)
			}
			if !strings.HasPrefix(e.UserMsg, "Event 1: ") || !strings.Contains(e.UserMsg, tc.msg) {
				t.Errorf("error_user_msg %q, want \"Event 1: ...%s...\"", e.UserMsg, tc.msg)
			}
			if strings.Contains(string(r.raw), "john_smith") || strings.Contains(string(r.raw), "Valéry") {
				t.Errorf("the error quotes an unhashed value: %s", r.raw)
			}
			if got := sb.Accepted(); len(got) != 0 {
				t.Errorf("recorded %d events of a rejected request", len(got))
			}
			reqs := sb.Requests()
			if len(reqs) != 1 || reqs[0].Status != 400 || reqs[0].ErrorCode != 100 || reqs[0].ErrorSubcode != tc.subcode || reqs[0].Events != 2 {
				t.Errorf("request log %+v", reqs)
			}
		})
	}
}

// TestAcceptedEdges are events Meta takes that a too strict reading of the rules would refuse.
func TestAcceptedEdges(t *testing.T) {
	cases := []struct {
		name string
		edit func(ev map[string]any)
	}{
		{"Android extinfo, tracking off", func(ev map[string]any) {
			a := ev["app_data"].(map[string]any)
			a["advertiser_tracking_enabled"], a["application_tracking_enabled"] = 0, 0
			slots := a["extinfo"].([]string)
			slots[0], slots[1] = "a2", ""
		}},
		{"event_time 6 days old", func(ev map[string]any) { ev["event_time"] = testNow.Add(-6 * 24 * time.Hour).Unix() }},
		{"event_time 30 s ahead (clock skew)", func(ev map[string]any) { ev["event_time"] = testNow.Add(30 * time.Second).Unix() }},
		{"event name with spaces, dash and digits", func(ev map[string]any) {
			ev["event_name"] = "level_2 done-x"
			delete(ev, "custom_data")
		}},
		{"madid only", func(ev map[string]any) {
			ev["user_data"] = map[string]any{"madid": "38400000-8cf0-11bd-b23e-10b96e40000d"}
		}},
		{"hashes as single strings", func(ev map[string]any) { ev["user_data"] = map[string]any{"em": hashEm, "external_id": hashFn} }},
		{"IPv6 address", func(ev map[string]any) { ev["user_data"].(map[string]any)["client_ip_address"] = "2001:db8::1" }},
		{"LDU with country and state", func(ev map[string]any) {
			ev["data_processing_options"] = []string{"LDU"}
			ev["data_processing_options_country"], ev["data_processing_options_state"] = 1, 1000
		}},
		{"no data processing options", func(ev map[string]any) { ev["data_processing_options"] = []string{} }},
		{"lowercase currency, integer value", func(ev map[string]any) { ev["custom_data"] = map[string]any{"value": 10, "currency": "chf"} }},
		{"currency without value", func(ev map[string]any) {
			ev["event_name"] = "ViewContent"
			ev["custom_data"] = map[string]any{"currency": "EUR"}
		}},
		{"website event without app_data", func(ev map[string]any) {
			ev["action_source"] = "website"
			delete(ev, "app_data")
		}},
		{"opt_out true", func(ev map[string]any) { ev["opt_out"] = true }},
	}
	sb, base := newSandbox(t, nil)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			sb.Reset()
			ev := appEvent("evt-edge")
			tc.edit(ev)
			r := postJSON(t, base, []any{ev}, nil)
			if r.status != http.StatusOK || r.body.EventsReceived != 1 {
				t.Fatalf("status %d: %s", r.status, r.raw)
			}
			if len(sb.Accepted()) != 1 {
				t.Fatalf("not recorded")
			}
		})
	}
}

func TestWarnings(t *testing.T) {
	_, base := newSandbox(t, nil)
	ev := appEvent("evt-warn")
	ud := ev["user_data"].(map[string]any)
	ud["zp"] = emptySHA256
	ud["madid"] = hashEm
	r := postJSON(t, base, []any{ev}, nil)
	if r.status != http.StatusOK {
		t.Fatalf("status %d: %s", r.status, r.raw)
	}
	joined := strings.Join(r.body.Messages, "\n")
	if len(r.body.Messages) != 2 || !strings.Contains(joined, "user_data.zp[0] is the SHA-256 of an empty string") ||
		!strings.Contains(joined, "madid looks hashed") {
		t.Errorf("messages %q", r.body.Messages)
	}
}

// TestRequestRules covers what fails before the events are read.
func TestRequestRules(t *testing.T) {
	good := func(t *testing.T) []byte { return mustJSON(t, []any{appEvent("evt-1")}) }
	type request struct {
		method, path, query, contentType, body string
	}
	jsonBody := func(t *testing.T, fields map[string]any) string { return string(mustJSON(t, fields)) }
	events := "/v26.0/" + testDataset + "/events"
	cases := []struct {
		name    string
		req     func(t *testing.T) request
		code    int
		subcode int
		typ     string
		msg     string // part of message or error_user_msg
	}{
		{"access_token missing", func(t *testing.T) request {
			return request{"POST", events, "", "application/json", jsonBody(t, map[string]any{"data": json.RawMessage(good(t)), "appsecret_proof": testProof})}
		}, CodeAccessToken, 0, "OAuthException", "An access token is required"},
		{"access_token wrong", func(t *testing.T) request {
			return request{"POST", events, "", "application/json", jsonBody(t, map[string]any{"data": json.RawMessage(good(t)), "access_token": "EAAB-other", "appsecret_proof": testProof})}
		}, CodeAccessToken, 0, "OAuthException", "Invalid OAuth access token"},
		{"appsecret_proof missing", func(t *testing.T) request {
			return request{"POST", events, "", "application/json", jsonBody(t, map[string]any{"data": json.RawMessage(good(t)), "access_token": testToken})}
		}, CodeInvalidParameter, 0, "OAuthException", "require an appsecret_proof"},
		{"appsecret_proof wrong", func(t *testing.T) request {
			return request{"POST", events, "access_token=" + testToken + "&appsecret_proof=" + appSecretProof("other-secret", testToken), "application/json", `{"data":` + string(good(t)) + `}`}
		}, CodeInvalidParameter, 0, "OAuthException", "Invalid appsecret_proof provided in the API argument"},
		{"appsecret_proof in uppercase", func(t *testing.T) request {
			return request{"POST", events, "access_token=" + testToken + "&appsecret_proof=" + strings.ToUpper(testProof), "application/json", `{"data":` + string(good(t)) + `}`}
		}, CodeInvalidParameter, 0, "OAuthException", "Invalid appsecret_proof"},
		{"unknown dataset", func(t *testing.T) request {
			return request{"POST", "/v26.0/999/events", "access_token=" + testToken + "&appsecret_proof=" + testProof, "application/json", `{"data":` + string(good(t)) + `}`}
		}, CodeInvalidParameter, SubcodeObjectNotFound, "GraphMethodException", "Unsupported post request. Object with ID '999' does not exist"},
		{"old version", func(t *testing.T) request {
			return request{"POST", "/v25.0/" + testDataset + "/events", "access_token=" + testToken + "&appsecret_proof=" + testProof, "application/json", `{"data":` + string(good(t)) + `}`}
		}, CodeDeprecatedVersion, 0, "OAuthException", "deprecated version"},
		{"unknown path", func(t *testing.T) request {
			return request{"POST", "/v26.0/" + testDataset + "/eventz", "access_token=" + testToken, "application/json", `{}`}
		}, CodeUnknownPath, 0, "OAuthException", "Unknown path components"},
		{"GET", func(t *testing.T) request {
			return request{"GET", events, "access_token=" + testToken + "&appsecret_proof=" + testProof, "", ""}
		}, CodeInvalidParameter, SubcodeObjectNotFound, "GraphMethodException", "Unsupported get request"},
		{"data missing", func(t *testing.T) request {
			return request{"POST", events, "", "application/json", jsonBody(t, map[string]any{"access_token": testToken, "appsecret_proof": testProof})}
		}, CodeInvalidParameter, 0, "OAuthException", "The parameter data is required"},
		{"data an object", func(t *testing.T) request {
			return request{"POST", events, "", "application/json", jsonBody(t, map[string]any{"data": appEvent("x"), "access_token": testToken, "appsecret_proof": testProof})}
		}, CodeInvalidParameter, 0, "OAuthException", "param data must be an array"},
		{"data empty", func(t *testing.T) request {
			return request{"POST", events, "", "application/json", jsonBody(t, map[string]any{"data": []any{}, "access_token": testToken, "appsecret_proof": testProof})}
		}, CodeInvalidParameter, 0, "OAuthException", "at least one event"},
		{"1,001 events", func(t *testing.T) request {
			evs := make([]any, MaxEventsPerRequest+1)
			for i := range evs {
				evs[i] = appEvent(fmt.Sprint("evt-", i))
			}
			return request{"POST", events, "", "application/json", jsonBody(t, map[string]any{"data": evs, "access_token": testToken, "appsecret_proof": testProof})}
		}, CodeInvalidParameter, 0, "OAuthException", "at most 1000 events"},
		{"an event that is not an object", func(t *testing.T) request {
			return request{"POST", events, "", "application/json", jsonBody(t, map[string]any{"data": []any{appEvent("a"), "b"}, "access_token": testToken, "appsecret_proof": testProof})}
		}, CodeInvalidParameter, SubcodeInvalidValue, "OAuthException", "Event 1: each element of data must be a JSON object"},
		{"malformed JSON", func(t *testing.T) request {
			return request{"POST", events, "access_token=" + testToken, "application/json", `{"data": [`}
		}, CodeInvalidParameter, 0, "OAuthException", "could not be parsed"},
		{"form data not JSON", func(t *testing.T) request {
			form := url.Values{"data": {"not json"}, "access_token": {testToken}, "appsecret_proof": {testProof}}
			return request{"POST", events, "", "application/x-www-form-urlencoded", form.Encode()}
		}, CodeInvalidParameter, 0, "OAuthException", "param data must be an array"},
	}
	sb, base := newSandbox(t, nil)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			sb.Reset()
			rq := tc.req(t)
			u := base + rq.path
			if rq.query != "" {
				u += "?" + rq.query
			}
			req, _ := http.NewRequest(rq.method, u, strings.NewReader(rq.body))
			if rq.contentType != "" {
				req.Header.Set("Content-Type", rq.contentType)
			}
			r := do(t, nil, req)
			e := r.body.Error
			if r.status != http.StatusBadRequest || e == nil {
				t.Fatalf("status %d: %s", r.status, r.raw)
			}
			if e.Code != tc.code || e.Subcode != tc.subcode || e.Type != tc.typ || e.FBTraceID == "" || e.IsTransient {
				t.Errorf("error %+v, want code %d subcode %d type %s", e, tc.code, tc.subcode, tc.typ)
			}
			if !strings.Contains(e.Message+" "+e.UserMsg, tc.msg) {
				t.Errorf("message %q / %q lacks %q", e.Message, e.UserMsg, tc.msg)
			}
			if tc.code == CodeAccessToken && !strings.Contains(r.header.Get("WWW-Authenticate"), "invalid_token") {
				t.Errorf("190 without WWW-Authenticate: %v", r.header)
			}
			if len(sb.Accepted()) != 0 {
				t.Errorf("recorded events of a rejected request")
			}
			if reqs := sb.Requests(); len(reqs) != 1 || reqs[0].Status != 400 || reqs[0].ErrorCode != tc.code {
				t.Errorf("request log %+v", reqs)
			}
		})
	}
}

func TestNoAppSecretNoProof(t *testing.T) {
	_, base := newSandbox(t, func(c *Config) { c.AppSecret = "" })
	if r := postJSON(t, base, []any{appEvent("e")}, map[string]any{"appsecret_proof": nil}); r.status != http.StatusOK {
		t.Fatalf("without an app secret the proof is optional; got %d: %s", r.status, r.raw)
	}
}

func TestServerErrors(t *testing.T) {
	sb, base := newSandbox(t, func(c *Config) { c.Faults = Faults{ServerErrorRate: 1, Seed: 1} })
	seen := map[int]int{}
	for i := range 20 {
		r := postJSON(t, base, []any{appEvent(fmt.Sprint("e", i))}, nil)
		seen[r.status]++
		switch r.status {
		case http.StatusInternalServerError:
			if e := r.body.Error; e == nil || e.Code != CodeServiceUnavailable || !e.IsTransient {
				t.Errorf("500 without code 2 and is_transient: %s", r.raw)
			}
		case http.StatusServiceUnavailable:
			if strings.HasPrefix(r.header.Get("Content-Type"), "application/json") {
				t.Errorf("the 503 should be bare: %s", r.raw)
			}
		default:
			t.Fatalf("status %d, want 5xx: %s", r.status, r.raw)
		}
	}
	if seen[500] == 0 || seen[503] == 0 {
		t.Errorf("want both kinds of 5xx, got %v", seen)
	}
	if len(sb.Accepted()) != 0 {
		t.Errorf("events recorded from failed requests")
	}
	for _, l := range sb.Requests() {
		if (l.Fault != FaultServerError && l.Fault != FaultUnavailable) || l.Events != 1 {
			t.Errorf("log %+v", l)
		}
	}
	sb.SetFaults(Faults{})
	if r := postJSON(t, base, []any{appEvent("after")}, nil); r.status != http.StatusOK {
		t.Errorf("faults off: status %d", r.status)
	}
}

func TestTimeouts(t *testing.T) {
	sb, base := newSandbox(t, func(c *Config) { c.Faults = Faults{TimeoutRate: 1, TimeoutDelay: time.Minute} })
	client := &http.Client{Timeout: 200 * time.Millisecond}
	body := mustJSON(t, map[string]any{"data": []any{appEvent("slow")}, "access_token": testToken, "appsecret_proof": testProof})
	req, _ := http.NewRequest("POST", base+"/v26.0/"+testDataset+"/events", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	start := time.Now()
	_, err := client.Do(req)
	var netErr interface{ Timeout() bool }
	if err == nil || !errors.As(err, &netErr) || !netErr.Timeout() {
		t.Fatalf("want a client timeout, got %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("took %v", d)
	}

	// A held request is still answered, and its events taken, once the delay is over.
	sb.SetFaults(Faults{TimeoutRate: 1, TimeoutDelay: 20 * time.Millisecond})
	r := postJSON(t, base, []any{appEvent("late")}, nil)
	if r.status != http.StatusOK {
		t.Fatalf("status %d: %s", r.status, r.raw)
	}
	reqs := sb.Requests()
	if last := reqs[len(reqs)-1]; !last.Held || last.Status != 200 {
		t.Errorf("log %+v", last)
	}
	if got := sb.Accepted(); len(got) != 1 || got[0].EventID != "late" {
		t.Errorf("accepted %+v", got)
	}
}

func TestRateLimits(t *testing.T) {
	sb, base := newSandbox(t, func(c *Config) { c.Faults = Faults{RateLimitRate: 1, RegainAccessMinutes: 3, Seed: 5} })
	codes := map[int]bool{}
	for i := range 25 {
		r := postJSON(t, base, []any{appEvent(fmt.Sprint("e", i))}, nil)
		e := r.body.Error
		if r.status != http.StatusBadRequest || e == nil || !slices.Contains(DefaultRateLimitCodes, e.Code) || !e.IsTransient {
			t.Fatalf("status %d: %s", r.status, r.raw)
		}
		codes[e.Code] = true
		var buc map[string][]map[string]any
		if err := json.Unmarshal([]byte(r.header.Get("X-Business-Use-Case-Usage")), &buc); err != nil {
			t.Fatalf("X-Business-Use-Case-Usage %q: %v", r.header.Get("X-Business-Use-Case-Usage"), err)
		}
		if u := buc[testDataset]; len(u) != 1 || u[0]["call_count"] != 100.0 || u[0]["estimated_time_to_regain_access"] != 3.0 {
			t.Errorf("usage %v", buc)
		}
		var app map[string]int
		if err := json.Unmarshal([]byte(r.header.Get("X-App-Usage")), &app); err != nil || app["call_count"] != 100 {
			t.Errorf("X-App-Usage %q: %v", r.header.Get("X-App-Usage"), err)
		}
	}
	if len(codes) < 3 {
		t.Errorf("codes drawn %v, want a mix", codes)
	}
	if len(sb.Accepted()) != 0 {
		t.Errorf("events recorded from throttled requests")
	}

	sb.SetFaults(Faults{RateLimitRate: 1, RateLimitCodes: []int{80004}})
	if r := postJSON(t, base, []any{appEvent("x")}, nil); r.body.Error == nil || r.body.Error.Code != 80004 {
		t.Errorf("want 80004: %s", r.raw)
	}
	// Auth comes first: a bad token is not throttled, it is refused.
	if r := postJSON(t, base, []any{appEvent("x")}, map[string]any{"access_token": "bad"}); r.body.Error == nil || r.body.Error.Code != CodeAccessToken {
		t.Errorf("want 190 before the rate limit: %s", r.raw)
	}
}

func TestTokenExpired(t *testing.T) {
	sb, base := newSandbox(t, func(c *Config) { c.Faults = Faults{TokenExpired: true} })
	r := postJSON(t, base, []any{appEvent("e")}, nil)
	e := r.body.Error
	if r.status != http.StatusBadRequest || e == nil || e.Code != CodeAccessToken || e.Subcode != SubcodeSessionExpired ||
		e.Type != "OAuthException" || !strings.HasPrefix(e.Message, "Error validating access token: Session has expired") {
		t.Fatalf("status %d: %s", r.status, r.raw)
	}
	if l := sb.Requests()[0]; l.Fault != FaultTokenExpired || l.ErrorSubcode != SubcodeSessionExpired {
		t.Errorf("log %+v", l)
	}
}

// TestDeterministicFaults: with a fixed seed, a rate of 0.3 fails the same requests every run.
func TestDeterministicFaults(t *testing.T) {
	faults := Faults{ServerErrorRate: 0.3, RateLimitRate: 0.3, Seed: 42}
	pattern := func(sb *Sandbox, base string) string {
		var b strings.Builder
		for i := range 40 {
			r := postJSON(t, base, []any{appEvent(fmt.Sprint("e", i))}, nil)
			code := 0
			if r.body.Error != nil {
				code = r.body.Error.Code
			}
			fmt.Fprintf(&b, "%d/%d ", r.status, code)
		}
		return b.String()
	}
	sb1, base1 := newSandbox(t, func(c *Config) { c.Faults = faults })
	sb2, base2 := newSandbox(t, func(c *Config) { c.Faults = faults })
	first := pattern(sb1, base1)
	if second := pattern(sb2, base2); first != second {
		t.Fatalf("same seed, different patterns:\n%s\n%s", first, second)
	}
	ok := strings.Count(first, "200/0")
	if ok == 0 || ok == 40 {
		t.Errorf("rates 0.3 should fail some and pass some: %s", first)
	}
	sb1.SetFaults(faults)
	if again := pattern(sb1, base1); again != first {
		t.Errorf("SetFaults should restart the draws:\n%s\n%s", first, again)
	}
	sb1.Reset()
	if again := pattern(sb1, base1); again != first {
		t.Errorf("Reset should restart the draws:\n%s\n%s", first, again)
	}
	sb2.SetFaults(Faults{ServerErrorRate: 0.3, RateLimitRate: 0.3, Seed: 43})
	if other := pattern(sb2, base2); other == first {
		t.Errorf("another seed gave the same pattern")
	}
	if n := len(sb1.Accepted()); n != ok {
		t.Errorf("accepted %d events, want %d (one per 200)", n, ok)
	}
}

func TestReset(t *testing.T) {
	sb, base := newSandbox(t, nil)
	postJSON(t, base, []any{appEvent("a"), appEvent("b")}, nil)
	postJSON(t, base, []any{appEvent("c")}, map[string]any{"access_token": "bad"})
	if len(sb.Accepted()) != 2 || len(sb.Requests()) != 2 {
		t.Fatalf("accepted %d, requests %d", len(sb.Accepted()), len(sb.Requests()))
	}
	sb.Reset()
	if len(sb.Accepted()) != 0 || len(sb.Requests()) != 0 {
		t.Errorf("Reset left accepted %d, requests %d", len(sb.Accepted()), len(sb.Requests()))
	}
}

func TestAdminEndpoints(t *testing.T) {
	sb, base := newSandbox(t, nil)
	get := func(path string) graphReply {
		req, _ := http.NewRequest("GET", base+path, nil)
		return do(t, nil, req)
	}
	post := func(path, body string) graphReply {
		req, _ := http.NewRequest("POST", base+path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		return do(t, nil, req)
	}
	if r := get("/health"); r.status != http.StatusOK {
		t.Errorf("health: %d", r.status)
	}
	if r := get("/_sandbox/events"); r.status != http.StatusOK || strings.TrimSpace(string(r.raw)) != "[]" {
		t.Errorf("empty events: %d %s", r.status, r.raw)
	}

	postJSON(t, base, []any{appEvent("dump-me")}, map[string]any{"test_event_code": "TEST1"})
	var dumped []map[string]any
	if err := json.Unmarshal(get("/_sandbox/events").raw, &dumped); err != nil || len(dumped) != 1 ||
		dumped[0]["event_id"] != "dump-me" || dumped[0]["test_event_code"] != "TEST1" || dumped[0]["event"] == nil {
		t.Errorf("events dump %v (%v)", dumped, err)
	}
	var logs []RequestLog
	if err := json.Unmarshal(get("/_sandbox/requests").raw, &logs); err != nil || len(logs) != 1 || logs[0].Status != 200 {
		t.Errorf("requests dump %+v (%v)", logs, err)
	}

	if r := post("/_sandbox/faults", `{"token_expired": true, "timeout_delay": "1.5s", "seed": 9}`); r.status != http.StatusOK {
		t.Fatalf("set faults: %d %s", r.status, r.raw)
	}
	if f := sb.Faults(); !f.TokenExpired || f.TimeoutDelay != 1500*time.Millisecond || f.Seed != 9 || len(f.RateLimitCodes) == 0 {
		t.Errorf("faults %+v", f)
	}
	if r := postJSON(t, base, []any{appEvent("x")}, nil); r.body.Error == nil || r.body.Error.Subcode != SubcodeSessionExpired {
		t.Errorf("faults not applied: %s", r.raw)
	}
	var shown map[string]any
	if err := json.Unmarshal(get("/_sandbox/faults").raw, &shown); err != nil || shown["timeout_delay"] != "1.5s" || shown["token_expired"] != true {
		t.Errorf("GET faults %v (%v)", shown, err)
	}
	for _, bad := range []string{`{"server_eror_rate": 1}`, `{"timeout_rate": 2}`, `{"timeout_delay": "soon"}`, `nope`} {
		if r := post("/_sandbox/faults", bad); r.status != http.StatusBadRequest {
			t.Errorf("faults %s: status %d", bad, r.status)
		}
	}
	if f := sb.Faults(); !f.TokenExpired {
		t.Errorf("a refused update changed the faults: %+v", f)
	}

	if r := post("/_sandbox/reset", ""); r.status != http.StatusNoContent {
		t.Errorf("reset: %d", r.status)
	}
	if len(sb.Accepted()) != 0 || len(sb.Requests()) != 0 {
		t.Errorf("reset left state")
	}
	if r := post("/_sandbox/events", "{}"); r.status != http.StatusMethodNotAllowed {
		t.Errorf("POST events: %d", r.status)
	}
	if r := get("/_sandbox/nope"); r.status != http.StatusNotFound {
		t.Errorf("unknown admin path: %d", r.status)
	}
}

func TestStartListensOnLoopback(t *testing.T) {
	sb, base, err := Start(Config{AccessToken: testToken, Datasets: []string{testDataset}})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(base, "http://127.0.0.1:") || sb.URL() != base {
		t.Errorf("base URL %q", base)
	}
	ev := appEvent("live")
	ev["event_time"] = time.Now().Add(-time.Minute).Unix()
	body := mustJSON(t, map[string]any{"data": []any{ev}})
	req, _ := http.NewRequest("POST", base+"/"+DefaultVersion+"/"+testDataset+"/events?access_token="+testToken, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if r := do(t, nil, req); r.status != http.StatusOK {
		t.Fatalf("status %d: %s", r.status, r.raw)
	}
	if err := sb.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := sb.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	req, _ = http.NewRequestWithContext(ctx, "GET", base+"/health", nil)
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
		t.Errorf("still serving after Close")
	}
}

// TestCloseReleasesHeldRequests: a request held for a long TimeoutDelay does not keep Close waiting.
func TestCloseReleasesHeldRequests(t *testing.T) {
	sb, base, err := Start(Config{AccessToken: testToken, Datasets: []string{testDataset},
		Faults: Faults{TimeoutRate: 1, TimeoutDelay: time.Hour}})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		resp, err := http.Post(base+"/v26.0/"+testDataset+"/events", "application/json", strings.NewReader(`{}`))
		if err == nil {
			resp.Body.Close()
		}
		done <- err
	}()
	deadline := time.Now().Add(time.Second)
	for time.Now().Before(deadline) && sb.holding.Load() == 0 {
		time.Sleep(5 * time.Millisecond)
	}
	start := time.Now()
	if err := sb.Close(); err != nil {
		t.Fatal(err)
	}
	<-done
	if d := time.Since(start); d > time.Second {
		t.Errorf("Close took %v", d)
	}
}

func TestNewValidatesConfig(t *testing.T) {
	base := Config{AccessToken: testToken, Datasets: []string{testDataset}}
	cases := map[string]func(*Config){
		"no token":        func(c *Config) { c.AccessToken = "" },
		"no dataset":      func(c *Config) { c.Datasets = nil },
		"empty dataset":   func(c *Config) { c.Datasets = []string{""} },
		"bad version":     func(c *Config) { c.Version = "26" },
		"rate above 1":    func(c *Config) { c.Faults.ServerErrorRate = 1.5 },
		"negative rate":   func(c *Config) { c.Faults.RateLimitRate = -0.1 },
		"negative delay":  func(c *Config) { c.Faults.TimeoutDelay = -time.Second },
		"slash in a dsid": func(c *Config) { c.Datasets = []string{"1/2"} },
	}
	for name, edit := range cases {
		t.Run(name, func(t *testing.T) {
			cfg := base
			edit(&cfg)
			if _, err := New(cfg); err == nil {
				t.Errorf("New accepted %+v", cfg)
			}
		})
	}
	sb, err := New(base)
	if err != nil {
		t.Fatal(err)
	}
	if f := sb.Faults(); f.TimeoutDelay != DefaultTimeoutDelay || !slices.Equal(f.RateLimitCodes, DefaultRateLimitCodes) {
		t.Errorf("defaults %+v", f)
	}
}

func TestConcurrentRequests(t *testing.T) {
	sb, base := newSandbox(t, func(c *Config) { c.Faults = Faults{ServerErrorRate: 0.2, Seed: 3} })
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Go(func() {
			postJSON(t, base, []any{appEvent(fmt.Sprint("c", i)), appEvent(fmt.Sprint("d", i))}, nil)
		})
	}
	wg.Wait()
	reqs := sb.Requests()
	ok := 0
	for _, l := range reqs {
		if l.Status == 200 {
			ok++
		}
	}
	if len(reqs) != 16 || len(sb.Accepted()) != 2*ok {
		t.Errorf("requests %d, ok %d, accepted %d", len(reqs), ok, len(sb.Accepted()))
	}
}

// TestAcceptedKeepsTheLatest: past MaxAccepted the oldest events are forgotten and counted;
// the events kept still decode as sent, and /_sandbox/events says how many were dropped.
func TestAcceptedKeepsTheLatest(t *testing.T) {
	sb, base := newSandbox(t, func(c *Config) { c.MaxAccepted = 5 })
	for i := range 4 {
		r := postJSON(t, base, []any{appEvent(fmt.Sprintf("evt-%d-a", i)), appEvent(fmt.Sprintf("evt-%d-b", i))}, nil)
		if r.status != http.StatusOK {
			t.Fatalf("request %d: status %d %s", i, r.status, r.raw)
		}
	}
	got := sb.Accepted()
	var ids []string
	for _, a := range got {
		ids = append(ids, a.EventID)
		if a.Event["event_id"] != a.EventID || a.Event["user_data"] == nil {
			t.Errorf("kept event %s decodes as %v", a.EventID, a.Event)
		}
	}
	if want := []string{"evt-1-b", "evt-2-a", "evt-2-b", "evt-3-a", "evt-3-b"}; !slices.Equal(ids, want) {
		t.Errorf("kept %v, want the latest 5 %v", ids, want)
	}
	if d := sb.AcceptedDropped(); d != 3 {
		t.Errorf("dropped %d, want 3", d)
	}
	if n := len(sb.Requests()); n != 4 {
		t.Errorf("request log has %d entries, want all 4", n)
	}
	resp, err := http.Get(base + "/_sandbox/events")
	if err != nil {
		t.Fatal(err)
	}
	var served []AcceptedEvent
	err = json.NewDecoder(resp.Body).Decode(&served)
	resp.Body.Close()
	if err != nil || len(served) != 5 {
		t.Fatalf("/_sandbox/events: %d events, %v", len(served), err)
	}
	for i, a := range served {
		if a.EventID != ids[i] || a.Event["event_id"] != ids[i] || a.Dataset != testDataset || a.FBTraceID == "" {
			t.Errorf("/_sandbox/events[%d] = %+v, want %s as accepted", i, a, ids[i])
		}
	}
	if h := resp.Header.Get("X-Sandbox-Events-Dropped"); h != "3" {
		t.Errorf("X-Sandbox-Events-Dropped = %q, want 3", h)
	}
	sb.Reset()
	if len(sb.Accepted()) != 0 || sb.AcceptedDropped() != 0 {
		t.Error("Reset kept accepted events or the dropped count")
	}
}

// BenchmarkAcceptedMemory reports the heap one accepted event costs the sandbox (bytes/event).
func BenchmarkAcceptedMemory(b *testing.B) {
	sb, err := New(Config{AccessToken: testToken, Datasets: []string{testDataset}, Now: func() time.Time { return testNow }, MaxAccepted: -1})
	if err != nil {
		b.Fatal(err)
	}
	batch := make([]any, 100)
	for i := range batch {
		batch[i] = appEvent(fmt.Sprintf("evt-mem-%d", i))
	}
	body, _ := json.Marshal(map[string]any{"data": batch, "access_token": testToken})
	const requests = 200
	var before, after runtime.MemStats
	b.ResetTimer()
	for range b.N {
		sb.Reset()
		runtime.GC()
		runtime.ReadMemStats(&before)
		for range requests {
			req := httptest.NewRequest(http.MethodPost, "/"+DefaultVersion+"/"+testDataset+"/events", bytes.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			sb.ServeHTTP(httptest.NewRecorder(), req)
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
	}
	if n := len(sb.Accepted()); n != requests*len(batch) {
		b.Fatalf("accepted %d events, want %d", n, requests*len(batch))
	}
	b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/float64(requests*len(batch)), "heap-B/event")
}
