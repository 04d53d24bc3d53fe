package ingestapi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/retarget-dev/retarget/shared/adapters/observability"
	"github.com/retarget-dev/retarget/shared/domain/identity"
	"github.com/retarget-dev/retarget/shared/ports"
	"github.com/retarget-dev/retarget/shared/testkit/ingesttest"
)

// eventsRequest is a POST /v1/events of the fixture app whose events belong to users[i]
// (app_user_id and email), with ids prefix-i; an empty user sends an invalid event.
func eventsRequest(t *testing.T, prefix string, users []string) []byte {
	t.Helper()
	var evs []string
	for i, u := range users {
		email := u + "@example.com"
		if u == "" {
			u, email = "someone", "not-an-email"
		}
		evs = append(evs, fmt.Sprintf(`{"event_id":"%s-%d","event_name":"fb_mobile_add_to_cart","event_time":%d,`+
			`"user":{"app_user_id":%q,"email":%q,"first_name":"Mary","last_name":"Major","phone":"+1 650 555 1212","country":"US"},`+
			`"device":{"platform":"android","os_version":"14","app_version":"7.7.1","device_model":"Pixel 8","locale":"en_US"},`+
			`"consent":{"ads_personalization":true},"custom_data":{"value":12.5,"currency":"USD","content_ids":["sku-1"]}}`,
			prefix, i, fixtureNow.Add(-time.Hour).Unix(), u, email))
	}
	return withRequest(t, ingesttest.FixtureJSON(t, "valid-batch.json"), func(r *events.APIGatewayProxyRequest) {
		r.Body = `{"events":[` + strings.Join(evs, ",") + `]}`
	})
}

func userKey(u string) string {
	pseudo, _ := identity.NewPseudonymizer([]byte("handler-test-pepper-0123"))
	return pseudo.UserKey("sample-shop", identity.KindAppUserID, u)
}

// A record the stream refuses turns all its events, and only those, into retryable
// rejections; the other users' records are written.
func TestAFailedRecordRejectsAllAndOnlyItsEvents(t *testing.T) {
	h := newHarness(t, nil)
	bad := userKey("b")
	h.stream.SetFault(func(_, _ int, rec ports.StreamRecord) string {
		if rec.PartitionKey == bad {
			return "ProvisionedThroughputExceededException"
		}
		return ""
	})
	resp := h.invoke(t, eventsRequest(t, "e", []string{"a", "b", "a", "", "c", "b", "b"}))
	r := decode(t, resp)
	if resp.StatusCode != 202 || r.Accepted != 3 {
		t.Fatalf("got %d %s", resp.StatusCode, resp.Body)
	}
	var retryable, invalid []int
	for _, rej := range r.Rejected {
		if rej.Retryable {
			retryable = append(retryable, rej.Index)
			if rej.EventID != fmt.Sprintf("e-%d", rej.Index) || !strings.Contains(rej.Errors[0].Reason, "retry with the same event_id") {
				t.Errorf("rejection %+v", rej)
			}
		} else {
			invalid = append(invalid, rej.Index)
		}
	}
	if !slices.Equal(retryable, []int{1, 5, 6}) || !slices.Equal(invalid, []int{3}) || !sort.SliceIsSorted(r.Rejected, func(i, j int) bool { return r.Rejected[i].Index < r.Rejected[j].Index }) {
		t.Fatalf("retryable %v (want b's events 1 5 6), invalid %v (want 3): %s", retryable, invalid, resp.Body)
	}
	var ids []string
	for _, ev := range h.streamEvents(t) {
		ids = append(ids, ev.Event.ID)
	}
	if want := []string{"e-0", "e-2", "e-4"}; !slices.Equal(ids, want) {
		t.Fatalf("on the stream %v, want %v", ids, want)
	}
	if !strings.Contains(h.metrics.String(), `"EventsUnwritten":3`) || !strings.Contains(h.logs.String(), `"unwritten":3`) {
		t.Errorf("unwritten events not counted per event:\n%s\n%s", h.metrics, h.logs)
	}
}

// clock is a fake time that moves on by step at each reading after the first.
type clock struct {
	t    time.Time
	step time.Duration
}

func (c *clock) now() time.Time { c.t = c.t.Add(c.step); return c.t }

// At INFO, with 20 events per request, the function logs at most 10 bytes per event, EMF
// metric lines included: one request is one invocation, so the instance adds its requests up.
func TestLogBytesPerEventAtInfo(t *testing.T) {
	var out bytes.Buffer // Lambda sends the log and the EMF lines to one place
	c := &clock{t: fixtureNow, step: 10 * time.Millisecond}
	var handler *Handler
	h := newHarness(t, func(cfg *Config) {
		cfg.Logger = observability.NewLogger(&out, "info")
		cfg.Metrics = observability.NewEmitter(&out, "Test")
		cfg.MetricsInterval = 0 // the default: one second
		cfg.Now = c.now
	})
	handler = h.handler
	users := []string{"a", "b", "c", "d", "e"}
	const requests, perRequest = 50, 20
	written := 0
	for i := range requests {
		var us []string
		for j := range perRequest {
			us = append(us, users[(i+j)%len(users)]+fmt.Sprint(i%7))
		}
		resp := h.invoke(t, eventsRequest(t, fmt.Sprintf("r%d", i), us))
		if resp.StatusCode != 202 || decode(t, resp).Accepted != perRequest {
			t.Fatalf("request %d: %d %s", i, resp.StatusCode, resp.Body)
		}
		if i == requests/2 {
			written = out.Len()
		}
	}
	if written == 0 {
		t.Errorf("nothing written after %d requests over more than a second", requests/2)
	}
	handler.metrics.Flush() // what the instance holds is written later: count it too
	perEvent := float64(out.Len()) / (requests * perRequest)
	t.Logf("%d bytes for %d events: %.2f bytes per event\n%s", out.Len(), requests*perRequest, perEvent, out.String())
	if perEvent > 10 {
		t.Fatalf("%.2f bytes of log per event at INFO, want at most 10", perEvent)
	}
}

// The instance-wide metrics add up to what one document per request says: nothing lost,
// nothing counted twice, the per-request values (batch sizes, latencies) all kept.
func TestAggregatedMetricsSumToPerRequest(t *testing.T) {
	requests := [][]string{
		{"a", "b", "a"}, {"a", "", "c"}, {"d"}, {"b", "b", "", ""}, {"e", "a"}, {"c"}, {"a", "b", "c", "d", "e"},
	}
	run := func(interval time.Duration) (map[string]float64, map[string][]float64, int) {
		c := &clock{t: fixtureNow, step: 20 * time.Millisecond} // a few readings per request
		h := newHarness(t, func(cfg *Config) { cfg.MetricsInterval, cfg.Now = interval, c.now })
		bad := userKey("c")
		h.stream.SetFault(func(_, _ int, rec ports.StreamRecord) string {
			if rec.PartitionKey == bad {
				return "InternalFailure"
			}
			return ""
		})
		for round := range 3 {
			for i, us := range requests {
				h.invoke(t, eventsRequest(t, fmt.Sprintf("r%d-%d", round, i), us))
			}
		}
		h.handler.metrics.Flush()
		return sumEMF(t, h.metrics.Bytes())
	}
	perRequestSums, perRequestSamples, perRequestLines := run(-1)
	sums, samples, lines := run(0)
	if !equalMaps(sums, perRequestSums) {
		t.Errorf("aggregated sums %v\nper request %v", sums, perRequestSums)
	}
	if !equalSamples(samples, perRequestSamples) {
		t.Errorf("aggregated samples %v\nper request %v", samples, perRequestSamples)
	}
	if sums["App=sample-shop,Function=ingest/Requests"] != 21 || sums["App=sample-shop,Function=ingest/EventsUnwritten"] == 0 ||
		sums["App=sample-shop,Function=ingest,Reason=invalid_email/FieldErrors"] == 0 {
		t.Errorf("the requests' counts are missing: %v", sums)
	}
	if lines >= perRequestLines/4 {
		t.Errorf("%d documents aggregated, %d per request: not aggregated", lines, perRequestLines)
	}
}

// distributions are the metrics with a value per request.
var distributions = map[string]bool{"BatchSize": true, "IngestLatency": true}

// sumEMF adds up the values of EMF documents by dimension set and metric: numbers are summed,
// arrays concatenated. It returns the number of documents too.
func sumEMF(t *testing.T, data []byte) (map[string]float64, map[string][]float64, int) {
	t.Helper()
	sums, samples := map[string]float64{}, map[string][]float64{}
	lines := 0
	for _, line := range bytes.Split(bytes.TrimSpace(data), []byte("\n")) {
		var doc map[string]any
		if err := json.Unmarshal(line, &doc); err != nil {
			t.Fatalf("%v: %s", err, line)
		}
		lines++
		aws := doc["_aws"].(map[string]any)["CloudWatchMetrics"].([]any)[0].(map[string]any)
		var dims []string
		for _, d := range aws["Dimensions"].([]any)[0].([]any) {
			dims = append(dims, d.(string)+"="+doc[d.(string)].(string))
		}
		sort.Strings(dims)
		for _, m := range aws["Metrics"].([]any) {
			name := m.(map[string]any)["Name"].(string)
			k := strings.Join(dims, ",") + "/" + name
			switch v := doc[name].(type) {
			case float64:
				if distributions[name] { // a document per request: one value
					samples[k] = append(samples[k], v)
					break
				}
				sums[k] += v
			case []any:
				for _, x := range v {
					samples[k] = append(samples[k], x.(float64))
				}
			}
		}
	}
	return sums, samples, lines
}

func equalMaps(a, b map[string]float64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// equalSamples compares distributions: each metric's values, in order.
func equalSamples(agg map[string][]float64, perRequest map[string][]float64) bool {
	if len(agg) != len(perRequest) {
		return false
	}
	for k, v := range agg {
		if !slices.Equal(v, perRequest[k]) {
			return false
		}
	}
	return true
}
