package analytics_test

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	adapter "github.com/retarget-dev/retarget/shared/adapters/archive"
	domain "github.com/retarget-dev/retarget/shared/domain/archive"
	"github.com/retarget-dev/retarget/shared/sandbox/emulators"
)

// TestQueries writes a known archive with shared/adapters/archive, runs every .sql file of this
// folder over it with DuckDB (testdata/duckdb.mjs) and compares each result with the numbers
// worked out by hand below. The events cover what each query must get right: duplicates of an
// event in two files, another app's events, server events, an event that arrives 5 days late,
// both spellings of event names, and the boundaries of every window.
func TestQueries(t *testing.T) {
	node, tools := requireDuckDB(t)
	dir := t.TempDir()
	writeArchive(t, dir)

	sqls, err := filepath.Glob("*.sql")
	if err != nil || len(sqls) == 0 {
		t.Fatalf("no .sql files (%v)", err)
	}
	cmd := exec.Command(node, append([]string{filepath.Join("testdata", "duckdb.mjs"), tools, dir}, sqls...)...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("duckdb.mjs: %v\n%s", err, stderr.String())
	}
	var got map[string][]map[string]any
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("decode results: %v\n%s", err, out)
	}

	want := map[string][]map[string]any{
		// Client events by event day: the other app, u7's server purchase (2 Dec) and the
		// events outside 1-7 December are not counted; u3's purchase of 7 December arrived on
		// the 12th and is.
		"daily_active_users": {
			{"event_day": "2026-12-01", "active_users": 5.0}, // u1 u2 u3 u4 u10
			{"event_day": "2026-12-02", "active_users": 2.0}, // u1 u10
			{"event_day": "2026-12-03", "active_users": 2.0}, // u1 u10
			{"event_day": "2026-12-04", "active_users": 1.0}, // u3
			{"event_day": "2026-12-05", "active_users": 3.0}, // u8 u9 u11
			{"event_day": "2026-12-07", "active_users": 1.0}, // u3
		},
		// u2 bought 8 days after the add-to-cart, u4 before it; u5's add-to-cart is on 30
		// November; u1's is an app event name.
		"funnel_to_purchase": {
			{"cart_day": "2026-12-01", "added_to_cart": 4.0, "purchased_within_7d": 2.0, "conversion": 0.5}, // u2 u3 u4 u10; u3 u10
			{"cart_day": "2026-12-02", "added_to_cart": 1.0, "purchased_within_7d": 1.0, "conversion": 1.0}, // u1
			{"cart_day": "2026-12-05", "added_to_cart": 1.0, "purchased_within_7d": 1.0, "conversion": 1.0}, // u9
		},
		// u1 (its purchase is in two files), u3, u10's first purchase: cart abandoners; u7 last
		// seen 22 days before; u4 active the day before, u8 never seen before, u9 bought within
		// the hour, u10's second purchase followed the first: none.
		"revenue_by_segment": {
			{"segment": "cart_abandoner", "currency": "EUR", "purchases": 3.0, "buyers": 3.0, "revenue": 80.5},
			{"segment": "lapsed_7d", "currency": "USD", "purchases": 1.0, "buyers": 1.0, "revenue": 100.0},
			{"segment": "none", "currency": "EUR", "purchases": 3.0, "buyers": 3.0, "revenue": 37.0},
			{"segment": "none", "currency": nil, "purchases": 1.0, "buyers": 1.0, "revenue": 0.0},
		},
		// Cart: u1 u2 u3 (once, two add-to-carts) u4 u5 (entered 1 December at 00:00) u10 twice
		// (a second basket after its purchases); u9 bought within the hour. Re-engaged: u1 u2
		// u3 u10's first. Lapsed: u5, u11 (back after 10 days), u12 (back after 24 days: too
		// late).
		"reengagement_by_audience": {
			{"segment": "cart_abandoner", "entered": 7.0, "reengaged_within_14d": 4.0, "rate": 0.571},
			{"segment": "lapsed_7d", "entered": 3.0, "reengaged_within_14d": 1.0, "rate": 0.333},
		},
	}
	for _, f := range sqls {
		name := strings.TrimSuffix(f, ".sql")
		if _, ok := want[name]; !ok {
			t.Errorf("%s has no expected result in this test: every shipped query is tested", f)
		}
	}
	for name, rows := range want {
		if !reflect.DeepEqual(got[name], rows) {
			g, _ := json.MarshalIndent(got[name], "", "  ")
			w, _ := json.MarshalIndent(rows, "", "  ")
			t.Errorf("%s:\ngot  %s\nwant %s", name, g, w)
		}
	}
}

// requireDuckDB returns node and the tools folder holding @duckdb/node-api; it skips the test
// when either is missing, or fails it under EMULATORS_REQUIRED=1 (make test), like the
// emulators.
func requireDuckDB(t *testing.T) (node, tools string) {
	t.Helper()
	tools, err := emulators.ToolsDir()
	if err == nil {
		node, err = exec.LookPath("node")
	}
	if err == nil {
		_, err = os.Stat(filepath.Join(tools, "node_modules", "@duckdb", "node-api", "package.json"))
	}
	switch {
	case err == nil:
		return node, tools
	case os.Getenv(emulators.RequiredEnv) == "1":
		t.Fatalf("node or @duckdb/node-api missing: %v (%s=1 is set: the tools are required)", err, emulators.RequiredEnv)
	default:
		t.Skipf("skipping: node or @duckdb/node-api missing: %v (run `make tools`; set %s=1 to fail instead of skipping)", err, emulators.RequiredEnv)
	}
	return "", ""
}

// event is one archived event; received is its event time plus 2 seconds unless late is set.
type event struct {
	app, user, name, at string
	server              bool
	value               *float64
	currency            string
	late                string // arrival, when not at the event time
}

func money(v float64) *float64 { return &v }

const shop = "sample-shop"

// events is the known archive (all times UTC).
var events = []event{
	{app: shop, user: "u1", name: "ActivateApp", at: "2026-12-01 10:00"},
	{app: shop, user: "u1", name: "ActivateApp", at: "2026-12-01 12:00"},
	{app: shop, user: "u1", name: "fb_mobile_add_to_cart", at: "2026-12-02 09:00"},
	{app: shop, user: "u1", name: "Purchase", at: "2026-12-03 09:00", value: money(30), currency: "EUR"},

	{app: shop, user: "u2", name: "ActivateApp", at: "2026-12-01 08:00"},
	{app: shop, user: "u2", name: "AddToCart", at: "2026-12-01 09:00"},
	{app: shop, user: "u2", name: "Purchase", at: "2026-12-09 10:00", value: money(50), currency: "EUR"},

	{app: shop, user: "u3", name: "AddToCart", at: "2026-12-01 20:00"},
	{app: shop, user: "u3", name: "AddToCart", at: "2026-12-04 10:00"},
	{app: shop, user: "u3", name: "fb_mobile_purchase", at: "2026-12-07 21:00", value: money(45.5), currency: "EUR", late: "2026-12-12 08:00"},

	{app: shop, user: "u4", name: "ActivateApp", at: "2026-11-29 12:00"},
	{app: shop, user: "u4", name: "Purchase", at: "2026-12-01 07:00", value: money(10), currency: "EUR"},
	{app: shop, user: "u4", name: "AddToCart", at: "2026-12-01 10:00"},

	{app: shop, user: "u5", name: "ActivateApp", at: "2026-11-30 22:00"},
	{app: shop, user: "u5", name: "AddToCart", at: "2026-11-30 23:00"},

	{app: "other-app", user: "u6", name: "AddToCart", at: "2026-12-01 09:00"},
	{app: "other-app", user: "u6", name: "Purchase", at: "2026-12-01 11:00", value: money(999), currency: "EUR"},

	{app: shop, user: "u7", name: "ActivateApp", at: "2026-11-10 09:00"},
	{app: shop, user: "u7", name: "Purchase", at: "2026-12-02 12:00", server: true, value: money(100), currency: "USD"},

	{app: shop, user: "u8", name: "Purchase", at: "2026-12-05 15:00", value: money(20), currency: "EUR"},

	{app: shop, user: "u9", name: "AddToCart", at: "2026-12-05 10:00"},
	{app: shop, user: "u9", name: "Purchase", at: "2026-12-05 10:30"},

	{app: shop, user: "u10", name: "AddToCart", at: "2026-12-01 10:00"},
	{app: shop, user: "u10", name: "Purchase", at: "2026-12-01 12:00", value: money(5), currency: "EUR"},
	{app: shop, user: "u10", name: "Purchase", at: "2026-12-02 12:00", value: money(7), currency: "EUR"},
	{app: shop, user: "u10", name: "AddToCart", at: "2026-12-03 10:00"},

	{app: shop, user: "u11", name: "ActivateApp", at: "2026-11-25 10:00"},
	{app: shop, user: "u11", name: "ActivateApp", at: "2026-12-05 10:00"},

	{app: shop, user: "u12", name: "ActivateApp", at: "2026-11-26 12:00"},
	{app: shop, user: "u12", name: "ActivateApp", at: "2026-12-20 12:00"},
}

// writeArchive writes events as two batches, the second repeating u1's purchase under a new
// sequence number (a batch cut differently on redelivery): the event is then in two files.
func writeArchive(t *testing.T, dir string) {
	t.Helper()
	var batch, again []adapter.SequencedRow
	for i, e := range events {
		at := mustTime(t, e.at)
		received := at.Add(2 * time.Second)
		if e.late != "" {
			received = mustTime(t, e.late)
		}
		row := domain.Row{
			App: e.app, Day: domain.DayOf(received.UnixMilli()),
			EnvelopeVersion: 1, EventID: "ev-" + strconv.Itoa(i), EventName: e.name,
			EventTime: at.UnixMilli(), ReceivedAt: received.UnixMilli(),
			UserKey: e.user, Server: e.server, Value: e.value, Currency: e.currency,
		}
		batch = append(batch, adapter.SequencedRow{Seq: strconv.Itoa(1000 + i), Row: row})
		if e.user == "u1" && e.name == "Purchase" {
			again = append(again, adapter.SequencedRow{Seq: "5000", Row: row})
		}
	}
	ctx := context.Background()
	for _, b := range [][]adapter.SequencedRow{batch, again} {
		if _, err := adapter.Write(ctx, adapter.Dir(dir), b); err != nil {
			t.Fatal(err)
		}
	}
	names, err := adapter.Dir(dir).List(ctx, "app="+shop+"/day=2026-12-03/")
	if err != nil || len(names) != 2 {
		t.Fatalf("u1's purchase should be in two files of 3 December, got %v (%v)", names, err)
	}
}

func mustTime(t *testing.T, s string) time.Time {
	t.Helper()
	at, err := time.Parse("2006-01-02 15:04", s)
	if err != nil {
		t.Fatal(err)
	}
	return at
}
