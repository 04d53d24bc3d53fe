package metagraph

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/retarget-dev/retarget/shared/ports"
)

const (
	hashA = "9b431636bd164765d63c573c346708846af4f68fe3701a77a3bdd7e7e5166254"
	hashB = "8cc62c145cd0c6dc444168eaeb1b61b351f9b1809a579cc9b4c9e9d7213a39ee"
)

func ackJSON(w http.ResponseWriter, _ *http.Request) {
	fmt.Fprint(w, `{"audience_id":"23850000000000001","session_id":"9778993","num_received":2,"num_invalid_entries":0,"invalid_entry_samples":{}}`)
}

func multiKeyUpload(op ports.AudienceOp) ports.AudienceUpload {
	return ports.AudienceUpload{
		AudienceID: "23850000000000001",
		Op:         op,
		Schema:     []string{"EXTERN_ID", "EMAIL", "MADID"},
		Rows: [][]string{
			{"u-1", hashA, ""},
			{"u-2", "", "6d92078a-8246-4ba4-ae5b-76104861e7dc"},
		},
		Session: ports.AudienceSession{ID: 9778993, BatchSeq: 1, Last: true, EstimatedTotal: 2},
	}
}

// uploadBody is a JSON upload body as Meta reads it.
type uploadBody struct {
	Payload struct {
		Schema json.RawMessage `json:"schema"`
		IsRaw  *bool           `json:"is_raw"`
		Data   json.RawMessage `json:"data"`
	} `json:"payload"`
	Session *struct {
		SessionID      *int64 `json:"session_id"`
		BatchSeq       *int   `json:"batch_seq"`
		LastBatchFlag  *bool  `json:"last_batch_flag"`
		EstimatedTotal *int   `json:"estimated_num_total"`
	} `json:"session"`
	AccessToken string `json:"access_token"`
	Proof       string `json:"appsecret_proof"`
}

func TestUploadRequestShape(t *testing.T) {
	cases := []struct {
		op     ports.AudienceOp
		method string
		edge   string
	}{
		{ports.AudienceAdd, http.MethodPost, "users"},
		{ports.AudienceRemove, http.MethodDelete, "users"},
		{ports.AudienceReplace, http.MethodPost, "usersreplace"},
	}
	for _, c := range cases {
		t.Run(c.op.String(), func(t *testing.T) {
			g := newGraph(t, ackJSON)
			if _, err := newClient(t, g, nil).Upload(context.Background(), multiKeyUpload(c.op)); err != nil {
				t.Fatal(err)
			}
			req := g.last(t)
			if req.method != c.method || req.path != "/"+DefaultVersion+"/23850000000000001/"+c.edge || req.rawQuery != "" {
				t.Fatalf("request %s %s?%s", req.method, req.path, req.rawQuery)
			}
			if req.contentType != "application/json" {
				t.Fatalf("content type %q", req.contentType)
			}
			var body uploadBody
			if err := json.Unmarshal(req.body, &body); err != nil {
				t.Fatalf("body %s: %v", req.body, err)
			}
			if body.AccessToken != testToken || body.Proof != testProof {
				t.Fatalf("credentials: token %q proof %q", body.AccessToken, body.Proof)
			}
			var schema []string
			var data [][]string
			if json.Unmarshal(body.Payload.Schema, &schema) != nil || json.Unmarshal(body.Payload.Data, &data) != nil {
				t.Fatalf("payload %s", req.body)
			}
			want := multiKeyUpload(c.op)
			if !reflect.DeepEqual(schema, want.Schema) || !reflect.DeepEqual(data, want.Rows) {
				t.Fatalf("schema %v data %v", schema, data)
			}
			if body.Payload.IsRaw == nil || !*body.Payload.IsRaw {
				t.Fatalf("multi-key payload without is_raw=true: %s", req.body)
			}
			s := body.Session
			if s == nil || s.SessionID == nil || *s.SessionID != 9778993 || s.BatchSeq == nil || *s.BatchSeq != 1 ||
				s.LastBatchFlag == nil || !*s.LastBatchFlag || s.EstimatedTotal == nil || *s.EstimatedTotal != 2 {
				t.Fatalf("session %s", req.body)
			}
		})
	}
}

func TestUploadFormEncoded(t *testing.T) {
	g := newGraph(t, ackJSON)
	c := newClient(t, g, func(c *Config) { c.FormEncoded = true })
	for _, op := range []ports.AudienceOp{ports.AudienceAdd, ports.AudienceRemove, ports.AudienceReplace} {
		u := multiKeyUpload(op)
		u.Session = ports.AudienceSession{ID: 42, BatchSeq: 3}
		if _, err := c.Upload(context.Background(), u); err != nil {
			t.Fatal(err)
		}
		req := g.last(t)
		if req.contentType != "application/x-www-form-urlencoded" {
			t.Fatalf("content type %q", req.contentType)
		}
		v, err := url.ParseQuery(string(req.body))
		if err != nil {
			t.Fatal(err)
		}
		if v.Get("access_token") != testToken || v.Get("appsecret_proof") != testProof {
			t.Fatalf("form %v", v)
		}
		wantPayload := `{"schema":["EXTERN_ID","EMAIL","MADID"],"is_raw":true,"data":[["u-1","` + hashA +
			`",""],["u-2","","6d92078a-8246-4ba4-ae5b-76104861e7dc"]]}`
		if v.Get("payload") != wantPayload {
			t.Fatalf("payload = %s\nwant      %s", v.Get("payload"), wantPayload)
		}
		if want := `{"session_id":42,"batch_seq":3,"last_batch_flag":false}`; v.Get("session") != want {
			t.Fatalf("session = %s, want %s", v.Get("session"), want)
		}
	}
}

func TestUploadSingleKeyAndValues(t *testing.T) {
	g := newGraph(t, ackJSON)
	c := newClient(t, g, nil)

	// One single-key column: Meta's single-key form, a schema string and flat data.
	u := ports.AudienceUpload{AudienceID: "1", Schema: []string{"EMAIL_SHA256"}, Rows: [][]string{{hashA}, {hashB}}}
	if _, err := c.Upload(context.Background(), u); err != nil {
		t.Fatal(err)
	}
	body := string(g.last(t).body)
	if want := `"payload":{"schema":"EMAIL_SHA256","data":["` + hashA + `","` + hashB + `"]}`; !strings.Contains(body, want) {
		t.Fatalf("body %s lacks %s", body, want)
	}
	if strings.Contains(body, `"session"`) {
		t.Fatalf("session sent without one: %s", body)
	}

	// A one-column multi-key schema stays a list.
	u = ports.AudienceUpload{AudienceID: "1", Schema: []string{"EMAIL"}, Rows: [][]string{{hashA}}}
	if _, err := c.Upload(context.Background(), u); err != nil {
		t.Fatal(err)
	}
	if body, want := string(g.last(t).body), `"payload":{"schema":["EMAIL"],"is_raw":true,"data":[["`+hashA+`"]]}`; !strings.Contains(body, want) {
		t.Fatalf("body %s lacks %s", body, want)
	}

	// LOOKALIKE_VALUE cells are numbers; other cells are escaped strings.
	u = ports.AudienceUpload{AudienceID: "1", Schema: []string{"EXTERN_ID", "LOOKALIKE_VALUE"},
		Rows: [][]string{{`a"b\c`, "44.5"}, {"é<", "0"}, {"x", "1e3"}}}
	if _, err := c.Upload(context.Background(), u); err != nil {
		t.Fatal(err)
	}
	var got uploadBody
	if err := json.Unmarshal(g.last(t).body, &got); err != nil {
		t.Fatal(err)
	}
	var data [][]any
	if err := json.Unmarshal(got.Payload.Data, &data); err != nil {
		t.Fatal(err)
	}
	want := [][]any{{`a"b\c`, 44.5}, {"é<", 0.0}, {"x", 1000.0}}
	if !reflect.DeepEqual(data, want) {
		t.Fatalf("data %v, want %v", data, want)
	}
}

func TestUploadRejectedLocally(t *testing.T) {
	g := newGraph(t, func(w http.ResponseWriter, r *http.Request) { t.Error("request sent") })
	c := newClient(t, g, nil)
	ok := multiKeyUpload(ports.AudienceAdd)
	tooMany := make([][]string, ports.MaxAudienceRows+1)
	for i := range tooMany {
		tooMany[i] = []string{hashA}
	}
	cases := map[string]func(u *ports.AudienceUpload){
		"empty audience id":       func(u *ports.AudienceUpload) { u.AudienceID = "" },
		"path in audience id":     func(u *ports.AudienceUpload) { u.AudienceID = "1/../2" },
		"bad op":                  func(u *ports.AudienceUpload) { u.Op = 7 },
		"no schema":               func(u *ports.AudienceUpload) { u.Schema = nil },
		"unnamed column":          func(u *ports.AudienceUpload) { u.Schema[1] = "" },
		"no rows":                 func(u *ports.AudienceUpload) { u.Rows = nil },
		"too many rows":           func(u *ports.AudienceUpload) { u.Schema = []string{"EMAIL_SHA256"}; u.Rows = tooMany },
		"short row":               func(u *ports.AudienceUpload) { u.Rows[1] = u.Rows[1][:2] },
		"replace without session": func(u *ports.AudienceUpload) { u.Op = ports.AudienceReplace; u.Session = ports.AudienceSession{} },
		"batch_seq 0":             func(u *ports.AudienceUpload) { u.Session.BatchSeq = 0 },
		"negative session id":     func(u *ports.AudienceUpload) { u.Session.ID = -1 },
		"fields without id":       func(u *ports.AudienceUpload) { u.Session.ID = 0 },
		"negative total":          func(u *ports.AudienceUpload) { u.Session.EstimatedTotal = -1 },
		"value not a number": func(u *ports.AudienceUpload) {
			u.Schema = []string{"EMAIL", "LOOKALIKE_VALUE"}
			u.Rows = [][]string{{hashA, "1"}, {hashB, "secret-value"}}
		},
		"value empty": func(u *ports.AudienceUpload) {
			u.Schema = []string{"EMAIL", "LOOKALIKE_VALUE"}
			u.Rows = [][]string{{hashA, ""}}
		},
		"value NaN": func(u *ports.AudienceUpload) {
			u.Schema = []string{"EMAIL", "LOOKALIKE_VALUE"}
			u.Rows = [][]string{{hashA, "NaN"}}
		},
	}
	for name, mod := range cases {
		t.Run(name, func(t *testing.T) {
			u := ok
			u.Schema = append([]string(nil), ok.Schema...)
			u.Rows = [][]string{append([]string(nil), ok.Rows[0]...), append([]string(nil), ok.Rows[1]...)}
			mod(&u)
			_, err := c.Upload(context.Background(), u)
			var ce *ports.CAPIError
			if !errors.As(err, &ce) || ce.Class != ports.CAPIInvalidParameter || ce.HTTPStatus != 0 {
				t.Fatalf("err = %v", err)
			}
			if strings.Contains(err.Error(), "secret-value") || strings.Contains(err.Error(), hashB) {
				t.Fatalf("error text carries a cell value: %v", err)
			}
		})
	}
}

func TestCreateAudience(t *testing.T) {
	for _, form := range []bool{false, true} {
		t.Run(fmt.Sprintf("form=%v", form), func(t *testing.T) {
			g := newGraph(t, func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, `{"id":"23850000000000042"}`) })
			c := newClient(t, g, func(c *Config) { c.FormEncoded = form })
			id, err := c.CreateAudience(context.Background(), ports.NewAudience{
				AdAccountID: "act_1234", Name: "Top spenders", Description: "From retarget", ValueBased: true})
			if err != nil {
				t.Fatal(err)
			}
			if id != "23850000000000042" {
				t.Fatalf("id %q", id)
			}
			req := g.last(t)
			if req.method != http.MethodPost || req.path != "/"+DefaultVersion+"/act_1234/customaudiences" || req.rawQuery != "" {
				t.Fatalf("request %s %s?%s", req.method, req.path, req.rawQuery)
			}
			got := map[string]string{}
			if form {
				v, err := url.ParseQuery(string(req.body))
				if err != nil {
					t.Fatal(err)
				}
				for k := range v {
					got[k] = v.Get(k)
				}
			} else {
				var m map[string]any
				if err := json.Unmarshal(req.body, &m); err != nil {
					t.Fatal(err)
				}
				for k, v := range m {
					got[k] = fmt.Sprint(v)
				}
			}
			want := map[string]string{"name": "Top spenders", "subtype": "CUSTOM", "customer_file_source": "USER_PROVIDED_ONLY",
				"description": "From retarget", "is_value_based": "true", "access_token": testToken, "appsecret_proof": testProof}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("fields %v\nwant   %v", got, want)
			}
		})
	}

	t.Run("optional fields omitted, numeric id", func(t *testing.T) {
		g := newGraph(t, func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, `{"id":23850000000000043}`) })
		id, err := newClient(t, g, nil).CreateAudience(context.Background(), ports.NewAudience{
			AdAccountID: "act_1", Name: "Cart abandoners", Source: ports.AudienceSourceUserPartner})
		if err != nil || id != "23850000000000043" {
			t.Fatalf("id %q err %v", id, err)
		}
		body := string(g.last(t).body)
		if strings.Contains(body, "description") || strings.Contains(body, "is_value_based") ||
			!strings.Contains(body, `"customer_file_source":"BOTH_USER_AND_PARTNER_PROVIDED"`) {
			t.Fatalf("body %s", body)
		}
	})

	t.Run("200 without id", func(t *testing.T) {
		g := newGraph(t, func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, `{}`) })
		_, err := newClient(t, g, nil).CreateAudience(context.Background(), ports.NewAudience{AdAccountID: "act_1", Name: "x"})
		var ce *ports.CAPIError
		if !errors.As(err, &ce) || ce.Class != ports.CAPIUnknown {
			t.Fatalf("err = %v", err)
		}
	})

	t.Run("rejected locally", func(t *testing.T) {
		g := newGraph(t, func(w http.ResponseWriter, r *http.Request) { t.Error("request sent") })
		c := newClient(t, g, nil)
		for _, a := range []ports.NewAudience{
			{AdAccountID: "1234", Name: "x"},
			{AdAccountID: "act_", Name: "x"},
			{AdAccountID: "act_1/users", Name: "x"},
			{AdAccountID: "act_1", Name: " "},
			{AdAccountID: "act_1", Name: "x", Source: "SOMETHING"},
		} {
			_, err := c.CreateAudience(context.Background(), a)
			var ce *ports.CAPIError
			if !errors.As(err, &ce) || ce.Class != ports.CAPIInvalidParameter {
				t.Fatalf("%+v: err = %v", a, err)
			}
		}
	})
}

func TestUploadAck(t *testing.T) {
	cases := []struct {
		name   string
		answer string
		want   ports.AudienceAck
	}{
		{"numeric strings, samples object",
			`{"audience_id":"23850000000000001","session_id":"9778993","num_received":10000,"num_invalid_entries":3,
			  "invalid_entry_samples":{"zz-key":"value-zz","aa-key":"value-aa","mm-key":"value-mm"}}`,
			ports.AudienceAck{AudienceID: "23850000000000001", SessionID: 9778993, NumReceived: 10000, NumInvalid: 3,
				InvalidSamples: []string{"aa-key", "mm-key", "zz-key"}}},
		{"numbers, samples list",
			`{"audience_id":23850000000000001,"session_id":9223372036854775807,"num_received":"25","num_invalid_entries":2,
			  "invalid_entry_samples":["value-0","value-1"]}`,
			ports.AudienceAck{AudienceID: "23850000000000001", SessionID: 9223372036854775807, NumReceived: 25, NumInvalid: 2,
				InvalidSamples: []string{"0", "1"}}},
		{"empty samples", `{"audience_id":"1","session_id":"2","num_received":1,"num_invalid_entries":0,"invalid_entry_samples":{}}`,
			ports.AudienceAck{AudienceID: "1", SessionID: 2, NumReceived: 1}},
		{"no session, no samples", `{"audience_id":"1","num_received":1,"num_invalid_entries":0}`,
			ports.AudienceAck{AudienceID: "1", NumReceived: 1}},
		{"samples null", `{"audience_id":"1","num_received":1,"invalid_entry_samples":null}`,
			ports.AudienceAck{AudienceID: "1", NumReceived: 1}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			g := newGraph(t, func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, c.answer) })
			ack, err := newClient(t, g, nil).Upload(context.Background(), multiKeyUpload(ports.AudienceAdd))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(ack, c.want) {
				t.Fatalf("ack %+v\nwant %+v", ack, c.want)
			}
			if strings.Contains(fmt.Sprintf("%+v", ack), "value-") {
				t.Fatalf("ack keeps sample values: %+v", ack)
			}
		})
	}

	t.Run("samples bounded", func(t *testing.T) {
		m := map[string]string{}
		for i := range 50 {
			m[fmt.Sprintf("k%02d-%s", i, strings.Repeat("x", 300))] = "value"
		}
		b, _ := json.Marshal(map[string]any{"audience_id": "1", "num_received": 50, "num_invalid_entries": 50, "invalid_entry_samples": m})
		g := newGraph(t, func(w http.ResponseWriter, r *http.Request) { w.Write(b) })
		ack, err := newClient(t, g, nil).Upload(context.Background(), multiKeyUpload(ports.AudienceAdd))
		if err != nil {
			t.Fatal(err)
		}
		if len(ack.InvalidSamples) != maxInvalidSamples || ack.InvalidSamples[0][:3] != "k00" {
			t.Fatalf("%d samples, first %.10s", len(ack.InvalidSamples), ack.InvalidSamples[0])
		}
		for _, s := range ack.InvalidSamples {
			if len(s) > maxInvalidKeyBytes {
				t.Fatalf("sample of %d bytes", len(s))
			}
		}
	})

	t.Run("200 with an unreadable answer", func(t *testing.T) {
		g := newGraph(t, func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, `{"num_received":{"x":1}}`) })
		_, err := newClient(t, g, nil).Upload(context.Background(), multiKeyUpload(ports.AudienceAdd))
		var ce *ports.CAPIError
		if !errors.As(err, &ce) || ce.Class != ports.CAPIUnknown || ce.HTTPStatus != 200 {
			t.Fatalf("err = %v", err)
		}
	})
}

func TestAudienceClassification(t *testing.T) {
	type tc struct {
		name      string
		status    int
		body      string
		want      ports.CAPIErrorClass
		transient bool // also sent with is_transient
	}
	cases := []tc{
		{"80003 custom audience rate limit", 400, metaError(80003, 2446079, true), ports.CAPIRateLimited, false},
		{"613", 400, metaError(613, 0, false), ports.CAPIRateLimited, false},
		{"17", 400, metaError(17, 0, false), ports.CAPIRateLimited, false},
		{"4", 400, metaError(4, 0, false), ports.CAPIRateLimited, false},
		{"http 429", 429, "slow down", ports.CAPIRateLimited, false},
		{"100/1713230 upload blocked", 400, metaError(100, 1713230, false), ports.CAPIBlocked, true},
		{"368", 400, metaError(368, 0, false), ports.CAPIBlocked, false},
		{"105 too many parameters", 400, metaError(105, 0, false), ports.CAPIInvalidParameter, false},
		{"194 missing parameter", 400, metaError(194, 0, false), ports.CAPIInvalidParameter, false},
		{"100", 400, metaError(100, 0, false), ports.CAPIInvalidParameter, false},
		{"100 other subcode", 400, metaError(100, 33, false), ports.CAPIInvalidParameter, false},
		{"190", 400, metaError(190, 0, false), ports.CAPIAuth, false},
		{"102", 400, metaError(102, 0, false), ports.CAPIAuth, false},
		{"10", 400, metaError(10, 0, false), ports.CAPIAuth, false},
		{"200/1870090 terms not accepted", 400, metaError(200, 1870090, false), ports.CAPIAuth, false},
		{"294 ads_management", 400, metaError(294, 0, false), ports.CAPIAuth, false},
		{"2650/1870145 replace in progress", 400, metaError(2650, 1870145, false), ports.CAPITransient, false},
		{"2650/1870148 retry", 400, metaError(2650, 1870148, false), ports.CAPITransient, false},
		{"2650/1870158 session timed out", 400, metaError(2650, 1870158, false), ports.CAPISessionEnded, true},
		{"2650/1870159 session finished", 400, metaError(2650, 1870159, false), ports.CAPISessionEnded, true},
		{"2650/1870147 first batch not 1", 400, metaError(2650, 1870147, false), ports.CAPISessionEnded, true},
		{"2650 other subcode", 400, metaError(2650, 1, false), ports.CAPIUnknown, false},
		{"1870158 under another code", 400, metaError(100, 1870158, false), ports.CAPIInvalidParameter, false},
		{"is_transient", 400, metaError(12345, 0, true), ports.CAPITransient, false},
		{"http 503", 503, "", ports.CAPITransient, false},
		{"http 400 garbage", 400, "garbage{", ports.CAPIUnknown, false},
	}
	for _, c := range append([]tc(nil), cases...) {
		if c.transient {
			c.name += " with is_transient"
			var env map[string]map[string]any
			_ = json.Unmarshal([]byte(c.body), &env)
			env["error"]["is_transient"] = true
			b, _ := json.Marshal(env)
			c.body = string(b)
			cases = append(cases, c)
		}
	}

	calls := map[string]func(*Client) error{
		"upload": func(cl *Client) error {
			_, err := cl.Upload(context.Background(), multiKeyUpload(ports.AudienceReplace))
			return err
		},
		"create": func(cl *Client) error {
			_, err := cl.CreateAudience(context.Background(), ports.NewAudience{AdAccountID: "act_1", Name: "x"})
			return err
		},
	}
	for _, c := range cases {
		for callName, call := range calls {
			t.Run(callName+"/"+c.name, func(t *testing.T) {
				g := newGraph(t, func(w http.ResponseWriter, r *http.Request) {
					w.WriteHeader(c.status)
					fmt.Fprint(w, c.body)
				})
				err := call(newClient(t, g, nil))
				var ce *ports.CAPIError
				if !errors.As(err, &ce) {
					t.Fatalf("err = %v (%T), want *ports.CAPIError", err, err)
				}
				if ce.Class != c.want || ce.HTTPStatus != c.status {
					t.Fatalf("class %s http %d, want %s http %d (%v)", ce.Class, ce.HTTPStatus, c.want, c.status, err)
				}
				if ports.IsSessionEnded(err) != (c.want == ports.CAPISessionEnded) {
					t.Fatalf("IsSessionEnded = %v for %v", ports.IsSessionEnded(err), err)
				}
				if strings.HasPrefix(c.body, `{"error"`) && (ce.Meta.Code == 0 || ce.Meta.FBTraceID != "TRACE") {
					t.Fatalf("meta fields not kept: %+v", ce.Meta)
				}
			})
		}
	}
}

// TestCAPIClassificationUnchanged guards the CAPI path: the audience codes are classified by
// ClassifyAudience only.
func TestCAPIClassificationUnchanged(t *testing.T) {
	cases := []struct {
		code, subcode int
		want          ports.CAPIErrorClass
	}{
		{105, 0, ports.CAPIUnknown},
		{194, 0, ports.CAPIUnknown},
		{2650, 1870158, ports.CAPIUnknown},
		{2650, 1870145, ports.CAPIUnknown},
		{100, 1713230, ports.CAPIInvalidParameter},
	}
	for _, c := range cases {
		if got := Classify(400, &ports.MetaError{Code: c.code, Subcode: c.subcode}); got != c.want {
			t.Errorf("Classify(%d/%d) = %s, want %s", c.code, c.subcode, got, c.want)
		}
	}
	if ports.IsSessionEnded(errors.New("plain")) || ports.IsSessionEnded(nil) {
		t.Error("IsSessionEnded true for a non-CAPIError")
	}
}

func TestAudienceRetryAfter(t *testing.T) {
	const other = `"2":[{"type":"ads_insights","call_count":100,"total_cputime":100,"total_time":100,"estimated_time_to_regain_access":60}]`
	cases := []struct {
		name    string
		headers map[string]string
		want    time.Duration
		pct     float64
	}{
		{"custom_audience entry only counts",
			map[string]string{"X-Business-Use-Case-Usage": `{"1":[{"type":"custom_audience","call_count":100,"total_cputime":20,"total_time":20,"estimated_time_to_regain_access":7}],` + other + `}`},
			7 * time.Minute, 100},
		{"no custom_audience entry: every entry counts",
			map[string]string{"X-Business-Use-Case-Usage": `{` + other + `}`}, 60 * time.Minute, 100},
		{"ad account reset longer",
			map[string]string{"X-Ad-Account-Usage": `{"acc_id_util_pct":30,"reset_time_duration":900}`,
				"X-Business-Use-Case-Usage": `{"1":[{"type":"custom_audience","call_count":100,"estimated_time_to_regain_access":2}],` + other + `}`},
			900 * time.Second, 100},
		{"retry-after header", map[string]string{"Retry-After": "120"}, 120 * time.Second, 0},
		{"unknown", nil, 0, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			g := newGraph(t, func(w http.ResponseWriter, r *http.Request) {
				for k, v := range c.headers {
					w.Header().Set(k, v)
				}
				w.WriteHeader(400)
				fmt.Fprint(w, metaError(80003, 2446079, true))
			})
			_, err := newClient(t, g, nil).Upload(context.Background(), multiKeyUpload(ports.AudienceAdd))
			var ce *ports.CAPIError
			if !errors.As(err, &ce) || ce.Class != ports.CAPIRateLimited {
				t.Fatalf("err = %v", err)
			}
			if ce.RetryAfter != c.want || ce.UsagePct != c.pct {
				t.Fatalf("RetryAfter %v UsagePct %v, want %v %v", ce.RetryAfter, ce.UsagePct, c.want, c.pct)
			}
		})
	}

	t.Run("ack usage ignores other use cases", func(t *testing.T) {
		g := newGraph(t, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("X-Business-Use-Case-Usage", `{"1":[{"type":"custom_audience","call_count":41,"total_cputime":3,"total_time":5}],`+other+`}`)
			w.Header().Set("X-App-Usage", `{"call_count":12,"total_time":1,"total_cputime":1}`)
			ackJSON(w, r)
		})
		ack, err := newClient(t, g, nil).Upload(context.Background(), multiKeyUpload(ports.AudienceAdd))
		if err != nil || ack.UsagePct != 41 {
			t.Fatalf("UsagePct %v err %v", ack.UsagePct, err)
		}
	})

	// An accepted call near the limit announces its wait too: the ack keeps it (it was dropped
	// before, so the audience sync could not pace itself).
	t.Run("ack keeps the announced wait", func(t *testing.T) {
		g := newGraph(t, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("X-Business-Use-Case-Usage", `{"1":[{"type":"custom_audience","call_count":88,"total_cputime":3,"total_time":5,"estimated_time_to_regain_access":2}]}`)
			w.Header().Set("X-Ad-Account-Usage", `{"acc_id_util_pct":87,"reset_time_duration":200}`)
			ackJSON(w, r)
		})
		ack, err := newClient(t, g, nil).Upload(context.Background(), multiKeyUpload(ports.AudienceAdd))
		if err != nil || ack.UsagePct != 88 || ack.RegainAfter != 200*time.Second {
			t.Fatalf("UsagePct %v RegainAfter %v err %v, want 88, 200s", ack.UsagePct, ack.RegainAfter, err)
		}
	})
}

func TestAudienceTokenNeverInURL(t *testing.T) {
	g := newGraph(t, func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.RequestURI, testToken) || strings.Contains(r.RequestURI, testProof) {
			t.Errorf("credentials in URL %s", r.RequestURI)
		}
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprint(w, `{"error":{"message":"Invalid OAuth access token","type":"OAuthException","code":190,"fbtrace_id":"X"}}`)
	})
	check := func(err error) {
		t.Helper()
		if err == nil || strings.Contains(err.Error(), testToken) || strings.Contains(err.Error(), testProof) {
			t.Fatalf("err = %v", err)
		}
		if req := g.last(t); strings.Contains(req.rawQuery+req.path, testToken) {
			t.Fatalf("token in URL %s?%s", req.path, req.rawQuery)
		}
	}
	for _, form := range []bool{false, true} {
		c := newClient(t, g, func(c *Config) { c.FormEncoded = form })
		for _, op := range []ports.AudienceOp{ports.AudienceAdd, ports.AudienceRemove, ports.AudienceReplace} {
			_, err := c.Upload(context.Background(), multiKeyUpload(op))
			check(err)
		}
		_, err := c.CreateAudience(context.Background(), ports.NewAudience{AdAccountID: "act_1", Name: "x"})
		check(err)
	}

	dead := httptest.NewServer(http.NotFoundHandler())
	dead.Close()
	c := New(Config{BaseURL: dead.URL, AccessToken: testToken, AppSecret: testSecret})
	_, err := c.Upload(context.Background(), multiKeyUpload(ports.AudienceRemove))
	var ce *ports.CAPIError
	if !errors.As(err, &ce) || ce.Class != ports.CAPITransient || strings.Contains(err.Error(), testToken) {
		t.Fatalf("err = %v", err)
	}
}

func TestUploadTimeout(t *testing.T) {
	if c := New(Config{AccessToken: "t"}); c.upload != DefaultUploadTimeout || DefaultUploadTimeout != 30*time.Second {
		t.Fatalf("default upload timeout %v", c.upload)
	}

	// Audience calls use UploadTimeout, not the short CAPI Timeout.
	g := newGraph(t, func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(300 * time.Millisecond)
		ackJSON(w, r)
	})
	c := newClient(t, g, func(c *Config) { c.Timeout = 50 * time.Millisecond; c.UploadTimeout = 10 * time.Second })
	if _, err := c.Upload(context.Background(), multiKeyUpload(ports.AudienceAdd)); err != nil {
		t.Fatalf("upload slower than Timeout but within UploadTimeout: %v", err)
	}

	release := make(chan struct{})
	slow := newGraph(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	})
	defer close(release)
	c = newClient(t, slow, func(c *Config) { c.UploadTimeout = 100 * time.Millisecond })
	for name, call := range map[string]func() error{
		"upload": func() error {
			_, err := c.Upload(context.Background(), multiKeyUpload(ports.AudienceReplace))
			return err
		},
		"create": func() error {
			_, err := c.CreateAudience(context.Background(), ports.NewAudience{AdAccountID: "act_1", Name: "x"})
			return err
		},
	} {
		start := time.Now()
		err := call()
		var ce *ports.CAPIError
		if !errors.As(err, &ce) || ce.Class != ports.CAPITransient || ce.HTTPStatus != 0 || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("%s: err = %v", name, err)
		}
		if took := time.Since(start); took > 5*time.Second {
			t.Fatalf("%s: timeout of 100ms took %v", name, took)
		}
	}
}

func TestAudienceBadConfig(t *testing.T) {
	for _, cfg := range []Config{{}, {AccessToken: "t", BaseURL: "not a url"}} {
		c := New(cfg)
		_, err1 := c.Upload(context.Background(), multiKeyUpload(ports.AudienceAdd))
		_, err2 := c.CreateAudience(context.Background(), ports.NewAudience{AdAccountID: "act_1", Name: "x"})
		for _, err := range []error{err1, err2} {
			if !errors.Is(err, ErrNoToken) && !errors.Is(err, ErrBadBaseURL) {
				t.Fatalf("err = %v", err)
			}
		}
	}
}

func BenchmarkEncodePayload(b *testing.B) {
	rows := make([][]string, ports.MaxAudienceRows)
	for i := range rows {
		rows[i] = []string{fmt.Sprintf("user-%d", i), hashA, "", hashB, "12.5"}
	}
	schema := []string{"EXTERN_ID", "EMAIL", "PHONE", "MADID", "LOOKALIKE_VALUE"}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := encodePayload(schema, rows); err != nil {
			b.Fatal(err)
		}
	}
}
