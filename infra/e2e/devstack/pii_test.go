//go:build unix

package devstack

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"github.com/retarget-dev/retarget/shared/domain/envelope"
	"io"
	"io/fs"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"
	"unicode"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"

	"github.com/retarget-dev/retarget/infra/cmd/devstack/devenv"
	"github.com/retarget-dev/retarget/shared/adapters/kinesisstream"
	"github.com/retarget-dev/retarget/shared/domain/identity"
	"github.com/retarget-dev/retarget/shared/runtime/env"
	"github.com/retarget-dev/retarget/shared/sandbox/emulators"
	"github.com/retarget-dev/retarget/shared/sandbox/metasandbox"
	"github.com/retarget-dev/retarget/shared/testkit/ingesttest"
)

// TestNoRawPIIAnywhere turns ARCHITECTURE.md's GDPR promise into a test: "Raw PII never leaves
// the ingest function" and "No raw PII in Kinesis, DynamoDB, logs, metrics or dead letters".
// It runs the dev stack, sends events of canary users whose every personal field holds a known,
// distinctive value, waits until the forwarder, the segment updater and the audience sync have
// done their work, and then searches everything the pipeline wrote for those values and their
// obvious normalised spellings: every stream record, every DynamoDB item, every file in the log
// folder (function logs, EMF metrics, dead letters, mapping failures, emulator logs), the dev
// stack's stdout and stderr, and everything sent to Meta (request bodies as sent, and the
// sandbox's accepted events, request log and audience members).
//
// Meta is the sandbox of package metasandbox, as `make dev` embeds it, but served by the test
// behind a recorder (META_GRAPH_URL, the setting the dev stack documents for another Graph API):
// the sandbox keeps accepted events and audience members, but not the bodies of refused requests
// or of audience removals, and those left the pipeline too.
//
// What may legitimately be found raw is listed in piiExemptions, each a named rule with its
// reason; everything else found fails the test, naming the source, the JSON path and the value.
func TestNoRawPIIAnywhere(t *testing.T) {
	start := time.Now()
	users := piiCanaryUsers()
	needles, unscannable := piiNeedles(t, users)
	t.Logf("%d spellings of %d users' raw values scanned for; not scannable (too short, they occur anywhere by chance): %s",
		len(needles), len(users), strings.Join(unscannable, ", "))

	// The scan must find what it looks for, decode what hides it, and allow only what the
	// exemptions name: checked on planted documents before anything runs.
	if !t.Run("scanner finds planted values", func(t *testing.T) { checkPIIScanner(t, users, needles) }) {
		return
	}
	// The canary values must not occur in the non-personal parts of the requests (event ids,
	// device, custom data): a hit there would be the test's own doing.
	events := piiEvents(users, time.Now())
	selfCheck := newPIIScanner(needles, nil)
	for _, batch := range events {
		for _, e := range batch.events {
			ev := maps.Clone(e)
			delete(ev, "user")
			b, _ := json.Marshal(ev)
			selfCheck.scanDocument("request", "request event "+fmt.Sprint(e["event_id"]), b)
		}
	}
	for _, f := range selfCheck.findings {
		t.Errorf("test data: a canary value outside a user object: %s", f)
	}
	if t.Failed() {
		return
	}

	root := ingesttest.RepoRoot(t)
	emulators.RequireTools(t)
	apps, err := env.LoadApps(filepath.Join(root, "infra", "config", "apps.json"))
	if err != nil {
		t.Fatal(err)
	}
	// The sandbox as the dev stack configures it (the config's datasets and ad accounts, the dev
	// credentials), refusing the poison event as Meta refuses an invalid one: the forwarder
	// isolates it and dead-letters it.
	datasets, accounts := apps.MetaIDs()
	sandbox, _, err := metasandbox.Start(metasandbox.Config{AccessToken: devenv.MetaAccessToken, AppSecret: devenv.MetaAppSecret,
		Datasets: datasets, AdAccounts: accounts, RemovalMinSize: -1, Faults: metasandbox.Faults{PoisonEventIDs: []string{piiPoisonEventID}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sandbox.Close() })
	recorder := &metaRecorder{sandbox: sandbox}
	graph := httptest.NewServer(recorder) // 127.0.0.1
	t.Cleanup(graph.Close)

	logDir := t.TempDir()
	ds := startDevstack(t, root, "DEV_API_ADDR=127.0.0.1:0", "AUDIENCE_SYNC_INTERVAL=300ms", "SEGMENT_SWEEP_INTERVAL=300ms",
		"LOG_LEVEL=debug", // the most the functions ever log
		env.GraphURL+"="+graph.URL, env.AccessToken+"="+devenv.MetaAccessToken, env.AppSecret+"="+devenv.MetaAppSecret,
		"-log-dir="+logDir) // after startDevstack's own -log-dir: the last one wins
	ready := ds.waitFor(t, readyLine, readyTimeout)
	api := readyLine.FindStringSubmatch(ready)[1]
	kinesisEndpoint, kinesisPID := ds.endpoint(t, kinesisLine)
	dynamoEndpoint, dynamoPID := ds.endpoint(t, dynamoLine)
	ds.emulatorPIDs = []int{kinesisPID, dynamoPID}

	client := &http.Client{Timeout: 15 * time.Second}
	accepted := 0
	for _, batch := range events {
		accepted += postPIIBatch(t, client, api, batch)
	}
	if t.Failed() {
		return
	}

	waitForPipeline(t, client, api, graph.URL, sandbox, logDir)
	if t.Failed() {
		return
	}

	// What the emulators hold is read before the dev stack stops (they keep it in memory).
	records := drainAllStreams(t, kinesisEndpoint)
	if n := streamEvents(t, records[devenv.Stream]); n != accepted {
		t.Errorf("%d events on stream %s, want the %d the API accepted", n, devenv.Stream, accepted)
	}
	items := scanAllTables(t, dynamoEndpoint)

	if code := ds.stop(t, syscall.SIGTERM, 30*time.Second); code != 0 {
		t.Errorf("exit code %d after SIGTERM, want 0", code)
	}
	// After the stop: the logs are complete (shutdown included) and nothing calls Meta any more.
	sandboxDocs := readSandboxAdmin(t, client, graph.URL)
	logs := readLogDir(t, logDir)
	graphRequests := recorder.requests()

	// Every source must hold something, or its scan proves nothing.
	requireNonEmpty(t, records, items, logs, graphRequests, sandboxDocs, ds)
	requireHashedEvidence(t, users, records, items, graphRequests, logs)
	if t.Failed() {
		return
	}

	s := newPIIScanner(needles, piiExemptions())
	for stream, recs := range records {
		for _, r := range recs {
			where := fmt.Sprintf("kinesis stream %s record %s/%s", stream, r.ShardID, r.SequenceNumber)
			s.leaf("stream", where, "#partition_key", r.PartitionKey, 0)
			s.scanDocument("stream", where, r.Data)
		}
	}
	for table, tableItems := range items {
		for _, item := range tableItems {
			where := fmt.Sprintf("dynamodb table %s item %s", table, itemKey(item))
			s.walk("table", where, "", attributesToJSON(item), 0)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(logs)) {
		kind := "log"
		if name == devenv.DeadLettersFile {
			kind = "dead-letters"
		}
		s.scanDocument(kind, "log dir file "+name, logs[name])
	}
	s.scanDocument("console", "dev stack stdout", []byte(ds.out.String()))
	s.scanDocument("console", "dev stack stderr", []byte(ds.stderr.String()))
	for i, r := range graphRequests {
		kind := "meta-audience-request"
		if capiPath.MatchString(strings.SplitN(r.URL, "?", 2)[0]) {
			kind = "meta-capi-request"
		}
		s.scanHTTPRequest(kind, fmt.Sprintf("Meta request %d %s %s", i+1, r.Method, r.URL), r)
	}
	for _, d := range sandboxDocs {
		s.scanDocument(d.kind, "Meta sandbox "+d.path, d.body)
	}

	for _, kind := range slices.Sorted(maps.Keys(s.leaves)) {
		t.Logf("scanned %6d strings and numbers in %s sources", s.leaves[kind], kind)
	}
	for _, e := range piiExemptions() {
		n := s.exempted[e.name+" in "+e.kind]
		t.Logf("exemption %-36s allowed %3d matches in %s sources at %s", e.name, n, e.kind, e.path)
		if n == 0 {
			// A rule that allows nothing is stale (or the canary data no longer reaches its
			// place): remove it rather than keep a blind spot nobody looks at.
			t.Errorf("exemption %s allowed nothing in %s sources", e.name, e.kind)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(logs)) {
		t.Logf("log dir file %-20s %6d bytes", name, len(logs[name]))
	}
	const maxReported = 60
	for i, f := range s.findings {
		if i == maxReported {
			t.Errorf("... and %d more findings", len(s.findings)-maxReported)
			break
		}
		t.Errorf("raw personal data: %s", f)
	}
	t.Logf("run time %s (%d stream records, %d table items, %d log files, %d Meta requests)",
		time.Since(start).Round(100*time.Millisecond), accepted, countItems(items), len(logs), len(graphRequests))
}

// piiPoisonEventID is the event the Meta sandbox refuses: it ends in the dead letters.
const piiPoisonEventID = "pii-scan-u2-poison"

// capiPath is the Conversions API edge; every other Graph call is a Custom Audience call.
var capiPath = regexp.MustCompile(`^/v[0-9.]+/[0-9]+/events$`)

// piiExemptions are the only places a raw value may be found, each because Meta requires the
// value unhashed and the pipeline must therefore carry it there. Only these four fields are
// ever exempted; email, phone, names, gender, date of birth, city, state, zip, country and
// app_user_id are allowed nowhere, and the four are allowed nowhere else: not in logs, metrics,
// the console, the mapping failures, emulator logs, nor at any other path of the same source.
func piiExemptions() []piiExemption {
	metaRaw := []string{"client_ip_address", "client_user_agent", "anon_id", "madid"}
	var out []piiExemption
	for _, f := range metaRaw {
		out = append(out,
			// The stream envelope (package envelope, User) carries anon_id, madid,
			// client_ip_address and client_user_agent unhashed, in its user objects only (version
			// 1: event.user; version 2: the record's user and an event's own): the CAPI
			// forwarder reads the stream and must send them to Meta as they are (Meta refuses
			// hashed values there), so the ingest function cannot hash them away.
			piiExemption{name: "envelope-unhashed-" + f, kind: "stream", fields: []string{f},
				path: regexp.MustCompile(`^(\.event\.user|\.user|\.events\[\d+\]\.user)\.` + f + `$`)},
			// A dead letter's record is the stream envelope byte for byte (ports.DeadLetter.Record,
			// base64), kept so that it can be replayed to CAPI: the same four fields, at the same
			// place inside it, and nowhere else in the letter (not in detail, not in meta_error).
			piiExemption{name: "dead-letter-envelope-" + f, kind: "dead-letters", fields: []string{f},
				path: regexp.MustCompile(`^\.record(\.event\.user|\.user|\.events\[\d+\]\.user)\.` + f + `$`)},
			// Meta's Conversions API takes these customer information parameters unhashed (its
			// rule: "do not hash" client_ip_address, client_user_agent, anon_id, madid);
			// shared/domain/capi maps them to user_data as they are. Allowed in the CAPI request bodies
			// and in the sandbox's copy of the accepted events, in user_data only.
			piiExemption{name: "capi-user-data-" + f, kind: "meta-capi-request", fields: []string{f},
				path: regexp.MustCompile(`^\.data\[\d+\]\.user_data\.` + f + `$`)},
			piiExemption{name: "capi-user-data-" + f, kind: "sandbox-events", fields: []string{f},
				path: regexp.MustCompile(`^\[\d+\]\.event\.user_data\.` + f + `$`)},
		)
	}
	return append(out,
		// Meta's customer-list schema takes MADID (mobile advertiser id) unhashed; the audience
		// sync uploads it in the MADID column (shared/domain/audiences Row) and the sandbox keeps the row.
		piiExemption{name: "audience-madid-column", kind: "meta-audience-request", fields: []string{"madid"},
			path: regexp.MustCompile(`^\.payload\.data\[\d+\]\[MADID\]$`)},
		piiExemption{name: "audience-madid-column", kind: "sandbox-audience", fields: []string{"madid"},
			path: regexp.MustCompile(`^\.members\.[A-Za-z0-9_-]+\.row\.MADID$`)},
		// The audience sync builds rows from the user state alone (the stream is gone by then),
		// so the state keeps the latest advertising id unhashed for that MADID column: "madid":
		// {"id": ...} in the state document (shared/domain/segments README), attribute st of user items.
		piiExemption{name: "state-madid-for-audiences", kind: "table", fields: []string{"madid"},
			path: regexp.MustCompile(`^\.st\.madid\.id$`)},
	)
}

// piiCanaryUser is a user whose personal fields hold known raw values.
type piiCanaryUser struct {
	label    string
	user     map[string]string // the ingest API's user object
	platform string            // device.platform
	// consent is consent.ads_personalization; without it the ingest function keeps no
	// identifier at all.
	consent bool
	// rejected: the event is invalid (an unusable email), so the API refuses it.
	rejected bool
}

// piiCanaryUsers are the users of the test. Values are distinctive so that a hit cannot be a
// coincidence; zip codes that are plain numbers start with 0 (no port, size or count is
// written so), dates of birth are in years no log timestamp shows.
//
// Short values cannot be scanned meaningfully and are left out (piiNeedles lists them): the
// normalised gender ("f", "m"), the 2-letter country codes ("us", "nl", "ca", "gb", "de"), the
// 2-letter US state code ("ny") and u3's raw gender "F". One or two letters occur in every log
// line, digest and user key. Their long raw spellings ("Female", "MALE", "United States",
// "Netherlands", "New York", ...) are scanned.
func piiCanaryUsers() []piiCanaryUser {
	return []piiCanaryUser{
		{label: "u1", platform: "android", consent: true, user: map[string]string{
			"app_user_id": "pii-canary-user-0001", "anon_id": "6c0d9f1e-8a2b-4c3d-9e4f-a1b2c3d4e501",
			"madid": "5b3f9c2e-7d41-4a8e-9f06-c3a1d2e4f501", "email": " Pii.Canary+1@Example.COM ",
			"phone": "+1 (631) 555-0142", "first_name": "Zelphira", "last_name": "Quandt-Vasquez", "gender": "Female",
			"date_of_birth": "1990-02-14", "city": "Holtsville", "state": "New York", "zip": "00501-4321",
			"country": "United States", "client_ip_address": "203.0.113.77",
			"client_user_agent": "PiiCanaryShop/7.3.1 (Linux; U; Android 14; Pixel 8 Pro Build/AP2A) okhttp/4.12.0",
		}},
		{label: "u2", platform: "ios", consent: true, user: map[string]string{
			"app_user_id": "pii-canary-user-0002", "anon_id": "6c0d9f1e-8a2b-4c3d-9e4f-a1b2c3d4e502",
			"madid": "E1A2B3C4-D5E6-4F70-8192-A3B4C5D6E702", "email": "PII.Canary+2@Example.NL",
			"phone": "+31 (0)6 1234 5678", "first_name": "Thijsbertha", "last_name": "van Oosterwijck-Plomp", "gender": "MALE",
			"date_of_birth": "14.07.1985", "city": "'s-Hertogenbosch", "state": "Noord-Brabant", "zip": "5211 AB",
			"country": "Netherlands", "client_ip_address": "2001:db8:85a3::8a2e:370:7334",
			"client_user_agent": "PiiCanaryShopIOS/8.0.2 CFNetwork/1494.0.7 Darwin/23.4.0",
		}},
		// No app_user_id: keyed by anon_id, in audiences through its hashed email and its MADID.
		{label: "u3", platform: "android", consent: true, user: map[string]string{
			"anon_id": "6c0d9f1e-8a2b-4c3d-9e4f-a1b2c3d4e503", "madid": "5b3f9c2e-7d41-4a8e-9f06-c3a1d2e4f503",
			"email": "pii.canary+3@example.ca", "phone": "604.555.0187", "first_name": "Ottoline",
			"last_name": "Brackenbury-Fyfe", "gender": "F", "date_of_birth": "03/09/1978", "city": "Port Coquitlam",
			"state": "British Columbia", "zip": "V3C 5M2", "country": "Canada", "client_ip_address": "198.51.100.23",
			"client_user_agent": "PiiCanaryShopDroid/5.1.0 (Linux; Android 13; SM-A536B)",
		}},
		// Rejected by the API (two @ in the email): its values must not even be logged.
		{label: "u4", platform: "android", consent: true, rejected: true, user: map[string]string{
			"app_user_id": "pii-canary-user-0004", "anon_id": "6c0d9f1e-8a2b-4c3d-9e4f-a1b2c3d4e504",
			"madid": "5b3f9c2e-7d41-4a8e-9f06-c3a1d2e4f504", "email": "pii.canary+4@@example.org",
			"phone": "+44 20 7946 0958", "first_name": "Cordelia", "last_name": "Fairweather-Nkemelu", "gender": "female",
			"date_of_birth": "1969-11-23", "city": "Little Snoring", "state": "Norfolk", "zip": "NR21 0AA",
			"country": "United Kingdom", "client_ip_address": "192.0.2.144", "client_user_agent": "PiiCanaryShopBeta/0.9.9 (Android 12)",
		}},
		// No consent to ads personalisation: the ingest function drops every identifier.
		{label: "u5", platform: "android", consent: false, user: map[string]string{
			"app_user_id": "pii-canary-user-0005", "anon_id": "6c0d9f1e-8a2b-4c3d-9e4f-a1b2c3d4e505",
			"madid": "5b3f9c2e-7d41-4a8e-9f06-c3a1d2e4f505", "email": "pii.canary+5@example.de",
			"phone": "+49 30 9018 2277", "first_name": "Wolfhilde", "last_name": "Ebersbächer", "gender": "Woman",
			"date_of_birth": "1961-08-13", "city": "Dresden-Neustadt", "state": "Sachsen", "zip": "01067",
			"country": "Germany", "client_ip_address": "192.0.2.201", "client_user_agent": "PiiCanaryShopNoConsent/1.0 (Android 11)",
		}},
	}
}

// piiBatch is one POST /v1/events.
type piiBatch struct {
	name     string
	events   []map[string]any
	rejected []int // indices the API must refuse
}

// piiEvents are the requests: enough variety that users enter segments mapped to audiences
// (engaged: 3 app opens; vip: a 250 USD purchase; cart_abandoner: an add-to-cart 2-3 h old
// without purchase; onboarding_incomplete: a registration 2 days old; new_installer: first
// seen lately), a poison event, an invalid event and an event without consent.
func piiEvents(users []piiCanaryUser, now time.Time) []piiBatch {
	byLabel := map[string]piiCanaryUser{}
	for _, u := range users {
		byLabel[u.label] = u
	}
	ev := func(label, id, name string, ago time.Duration, custom map[string]any) map[string]any {
		u := byLabel[label]
		user := map[string]any{}
		for k, v := range u.user {
			user[k] = v
		}
		device := map[string]any{"platform": u.platform, "os_version": "14", "app_package": "com.example.sampleshop",
			"app_version": "3.2.0", "device_model": "Pixel 8 Pro", "locale": "en_US", "carrier": "Example Mobile"}
		consent := map[string]any{"ads_personalization": u.consent}
		if u.platform == "ios" {
			device["os_version"], device["device_model"] = "17.4", "iPhone15,2"
			consent["advertiser_tracking_enabled"] = true
		}
		e := map[string]any{"event_id": id, "event_name": name, "event_time": now.Add(-ago).Unix(),
			"user": user, "device": device, "consent": consent}
		if custom != nil {
			e["custom_data"] = custom
		}
		return e
	}
	return []piiBatch{
		{name: "u1", events: []map[string]any{
			ev("u1", "pii-scan-u1-open-1", "fb_mobile_activate_app", 3*time.Hour, nil),
			ev("u1", "pii-scan-u1-open-2", "fb_mobile_activate_app", 150*time.Minute, nil),
			ev("u1", "pii-scan-u1-cart", "fb_mobile_add_to_cart", 2*time.Hour, map[string]any{"content_ids": []string{"sku-77"}, "value": 250, "currency": "USD"}),
			ev("u1", "pii-scan-u1-open-3", "fb_mobile_activate_app", time.Hour, nil),
			ev("u1", "pii-scan-u1-buy", "fb_mobile_purchase", time.Minute, map[string]any{"value": 250, "currency": "USD", "content_ids": []string{"sku-77"}, "order_id": "order-1001"}),
		}},
		{name: "u2", events: []map[string]any{
			ev("u2", "pii-scan-u2-open-1", "fb_mobile_activate_app", 5*time.Hour, nil),
			ev("u2", "pii-scan-u2-cart", "fb_mobile_add_to_cart", 3*time.Hour, map[string]any{"content_ids": []string{"sku-12"}}),
			ev("u2", "pii-scan-u2-open-2", "fb_mobile_activate_app", 2*time.Hour, nil),
			ev("u2", "pii-scan-u2-open-3", "fb_mobile_activate_app", 90*time.Minute, nil),
			ev("u2", piiPoisonEventID, "fb_mobile_content_view", 10*time.Minute, map[string]any{"content_ids": []string{"sku-12"}}),
		}},
		{name: "u3, u4 (invalid), u5 (no consent)", rejected: []int{1}, events: []map[string]any{
			ev("u3", "pii-scan-u3-registration", "fb_mobile_complete_registration", 48*time.Hour, nil),
			ev("u4", "pii-scan-u4-invalid", "fb_mobile_activate_app", time.Hour, nil),
			ev("u5", "pii-scan-u5-no-consent", "fb_mobile_activate_app", time.Hour, nil),
		}},
	}
}

// postPIIBatch sends a batch and checks the answer; it returns the number accepted.
func postPIIBatch(t *testing.T, client *http.Client, api string, b piiBatch) int {
	t.Helper()
	body, err := json.Marshal(map[string]any{"events": b.events})
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodPost, api+"/v1/events", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("x-api-key", "dev-api-key")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var a ingesttest.Answer
	if err := json.Unmarshal(raw, &a); err != nil {
		t.Fatalf("batch %s: %d %s: %v", b.name, resp.StatusCode, raw, err)
	}
	want := len(b.events) - len(b.rejected)
	if resp.StatusCode != http.StatusAccepted {
		t.Errorf("batch %s: status %d, want 202: %s", b.name, resp.StatusCode, raw)
	}
	ingesttest.WantAccepted(want, b.rejected...)(t, a)
	return want
}

// waitForPipeline waits until the forwarder delivered the consented events (and dead-lettered
// the poison one), the segments read API answers, and the audiences hold their members.
func waitForPipeline(t *testing.T, client *http.Client, api, graph string, sb *metasandbox.Sandbox, logDir string) {
	t.Helper()
	wantCAPI := []string{"pii-scan-u1-buy", "pii-scan-u1-cart", "pii-scan-u1-open-1", "pii-scan-u1-open-2", "pii-scan-u1-open-3",
		"pii-scan-u2-cart", "pii-scan-u2-open-1", "pii-scan-u2-open-2", "pii-scan-u2-open-3", "pii-scan-u3-registration"}
	waitUntil(t, "Meta sandbox accepts the consented events", 30*time.Second, func() (bool, string) {
		ids := map[string]bool{}
		for _, a := range sb.Accepted() {
			ids[a.EventID] = true
		}
		got := slices.Sorted(maps.Keys(ids))
		return slices.Equal(got, wantCAPI), fmt.Sprintf("accepted %q, want %q", got, wantCAPI)
	})
	waitUntil(t, "the poison event is dead-lettered", 30*time.Second, func() (bool, string) {
		b, _ := os.ReadFile(filepath.Join(logDir, devenv.DeadLettersFile))
		return bytes.Contains(b, []byte(`"event_id":"`+piiPoisonEventID+`"`)), fmt.Sprintf("%s: %s", devenv.DeadLettersFile, b)
	})
	for user, want := range map[string][]string{
		"pii-canary-user-0001": {"engaged", "new_installer", "vip"},
		"pii-canary-user-0002": {"cart_abandoner", "engaged", "new_installer"},
	} {
		waitUntil(t, "segments of "+user, 30*time.Second, func() (bool, string) {
			req, _ := http.NewRequest(http.MethodGet, api+"/v1/users/"+user+"/segments", nil)
			req.Header.Set("x-api-key", "dev-api-key")
			signAsDevAdmin(t, req, nil)
			resp, err := client.Do(req)
			if err != nil {
				return false, err.Error()
			}
			defer resp.Body.Close()
			raw, _ := io.ReadAll(resp.Body)
			var body struct {
				Segments []string `json:"segments"`
			}
			json.Unmarshal(raw, &body)
			sort.Strings(body.Segments)
			return resp.StatusCode == http.StatusOK && slices.Equal(body.Segments, want), fmt.Sprintf("%d %s, want %q", resp.StatusCode, raw, want)
		})
	}
	wantSizes := map[string]int{"Top spenders": 1, "Cart abandoners": 1, "Engaged users": 2, "Onboarding not finished": 1, "New installers": 3}
	waitUntil(t, "audiences hold their members", 30*time.Second, func() (bool, string) {
		sizes, values := bothArms(sandboxAudiences(t, client, graph))
		for name, n := range wantSizes {
			if sizes[name] != n {
				return false, fmt.Sprintf("sizes %v, want %v", sizes, wantSizes)
			}
		}
		return values["Top spenders"] == "250", fmt.Sprintf("values %v", values)
	})
}

// waitUntil polls ok until it holds or the timeout passes (then it fails the test).
func waitUntil(t *testing.T, what string, timeout time.Duration, ok func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		done, state := ok()
		if done {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("waiting %s for %s: %s", timeout, what, state)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// drainAllStreams reads every stream of the emulator from TRIM_HORIZON.
func drainAllStreams(t *testing.T, endpoint string) map[string][]kinesisstream.TailedRecord {
	t.Helper()
	cfg, err := emulators.AWSConfig(context.Background(), endpoint)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	client := kinesis.NewFromConfig(cfg)
	list, err := client.ListStreams(ctx, &kinesis.ListStreamsInput{})
	if err != nil {
		t.Fatalf("list streams: %v", err)
	}
	out := map[string][]kinesisstream.TailedRecord{}
	for _, name := range list.StreamNames {
		recs, err := kinesisstream.NewTailer(client, name, kinesisstream.TrimHorizon).Drain(ctx)
		if err != nil {
			t.Fatalf("read stream %s: %v", name, err)
		}
		out[name] = recs
	}
	return out
}

// scanAllTables reads every item of every table of the emulator (a test may Scan).
func scanAllTables(t *testing.T, endpoint string) map[string][]map[string]types.AttributeValue {
	t.Helper()
	cfg, err := emulators.AWSConfig(context.Background(), endpoint)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	client := dynamodb.NewFromConfig(cfg)
	tables, err := client.ListTables(ctx, &dynamodb.ListTablesInput{})
	if err != nil {
		t.Fatalf("list tables: %v", err)
	}
	out := map[string][]map[string]types.AttributeValue{}
	for _, name := range tables.TableNames {
		p := dynamodb.NewScanPaginator(client, &dynamodb.ScanInput{TableName: aws.String(name), ConsistentRead: aws.Bool(true)})
		for p.HasMorePages() {
			page, err := p.NextPage(ctx)
			if err != nil {
				t.Fatalf("scan %s: %v", name, err)
			}
			out[name] = append(out[name], page.Items...)
		}
	}
	return out
}

func countItems(items map[string][]map[string]types.AttributeValue) int {
	n := 0
	for _, v := range items {
		n += len(v)
	}
	return n
}

// attributesToJSON turns an item into plain JSON values: binary attributes become their bytes
// as a string (the user state is JSON), numbers their text.
func attributesToJSON(item map[string]types.AttributeValue) map[string]any {
	out := map[string]any{}
	for k, v := range item {
		out[k] = attributeToJSON(v)
	}
	return out
}

func attributeToJSON(v types.AttributeValue) any {
	switch v := v.(type) {
	case *types.AttributeValueMemberS:
		return v.Value
	case *types.AttributeValueMemberN:
		return json.Number(v.Value)
	case *types.AttributeValueMemberB:
		return string(v.Value)
	case *types.AttributeValueMemberSS:
		return toAnySlice(v.Value)
	case *types.AttributeValueMemberNS:
		return toAnySlice(v.Value)
	case *types.AttributeValueMemberBS:
		out := make([]any, len(v.Value))
		for i, b := range v.Value {
			out[i] = string(b)
		}
		return out
	case *types.AttributeValueMemberL:
		out := make([]any, len(v.Value))
		for i, x := range v.Value {
			out[i] = attributeToJSON(x)
		}
		return out
	case *types.AttributeValueMemberM:
		return attributesToJSON(v.Value)
	case *types.AttributeValueMemberBOOL:
		return v.Value
	}
	return nil
}

func itemKey(item map[string]types.AttributeValue) string {
	var pk, sk string
	if v, ok := item["pk"].(*types.AttributeValueMemberS); ok {
		pk = v.Value
	}
	if v, ok := item["sk"].(*types.AttributeValueMemberS); ok {
		sk = v.Value
	}
	return pk + " / " + sk
}

// sandboxDoc is one answer of the sandbox's developer endpoints.
type sandboxDoc struct {
	kind, path string
	body       []byte
}

// readSandboxAdmin reads what the Meta sandbox received through its developer endpoints: the
// accepted events, the request log, the audiences and each audience's members and sessions.
func readSandboxAdmin(t *testing.T, client *http.Client, graph string) []sandboxDoc {
	t.Helper()
	get := func(path string) []byte {
		resp, err := client.Get(graph + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %d %s", path, resp.StatusCode, b)
		}
		return b
	}
	docs := []sandboxDoc{
		{"sandbox-events", "/_sandbox/events", get("/_sandbox/events")},
		{"sandbox-requests", "/_sandbox/requests", get("/_sandbox/requests")},
		{"sandbox-audiences", "/_sandbox/audiences", get("/_sandbox/audiences")},
	}
	var list []struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(docs[2].body, &list); err != nil {
		t.Fatal(err)
	}
	for _, a := range list {
		p := "/_sandbox/audiences/" + a.ID
		docs = append(docs, sandboxDoc{"sandbox-audience", p, get(p)})
	}
	return docs
}

// readLogDir reads every file under the log folder, by path relative to it.
func readLogDir(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		out[rel] = b
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// requireNonEmpty fails the test when a source it scans holds nothing: a scan of nothing
// proves nothing.
func requireNonEmpty(t *testing.T, records map[string][]kinesisstream.TailedRecord, items map[string][]map[string]types.AttributeValue,
	logs map[string][]byte, graph []recordedRequest, sandbox []sandboxDoc, ds *devstack) {
	t.Helper()
	if len(records[devenv.Stream]) == 0 {
		t.Errorf("no record on stream %s", devenv.Stream)
	}
	if len(items[devenv.StateTable]) == 0 {
		t.Errorf("no item in table %s", devenv.StateTable)
	}
	// The function logs, the metrics and the dead letters must have content; the emulators'
	// logs and the mapping failures (written only when a batch is given up after 6 hours of
	// retries) exist but are normally empty: they are scanned all the same.
	for _, name := range []string{"ingest.log", "forwarder.log", "segments.log", "metrics.log", devenv.DeadLettersFile} {
		if len(logs[name]) == 0 {
			t.Errorf("log file %s is missing or empty", name)
		}
	}
	for _, name := range []string{"esm-failures.jsonl", "kinesalite.log", "dynalite.log"} {
		if _, ok := logs[name]; !ok {
			t.Errorf("log file %s is missing", name)
		}
	}
	capiCalls, audienceCalls := 0, 0
	for _, r := range graph {
		if capiPath.MatchString(strings.SplitN(r.URL, "?", 2)[0]) {
			capiCalls++
		} else {
			audienceCalls++
		}
	}
	if capiCalls == 0 || audienceCalls == 0 {
		t.Errorf("Meta received %d CAPI and %d audience requests, want some of each", capiCalls, audienceCalls)
	}
	for _, d := range sandbox {
		if len(bytes.TrimSpace(d.body)) <= 2 { // "[]" or "{}"
			t.Errorf("sandbox %s is empty: %s", d.path, d.body)
		}
	}
	if ds.out.String() == "" {
		t.Errorf("the dev stack printed nothing on stdout")
	}
}

// requireHashedEvidence checks that the canary users' data reached the sources in hashed form:
// the SHA-256 of each consented, accepted user's normalised email is on the stream, in the
// table, in a CAPI request and in an audience upload. So the scan below looks at the canary
// users' own records, not at unrelated ones.
func requireHashedEvidence(t *testing.T, users []piiCanaryUser, records map[string][]kinesisstream.TailedRecord,
	items map[string][]map[string]types.AttributeValue, graph []recordedRequest, logs map[string][]byte) {
	t.Helper()
	var stream, table, capi, audience bytes.Buffer
	for _, r := range records[devenv.Stream] {
		stream.Write(r.Data)
	}
	for _, item := range items[devenv.StateTable] {
		b, _ := json.Marshal(attributesToJSON(item))
		table.Write(b)
	}
	for _, r := range graph {
		if capiPath.MatchString(strings.SplitN(r.URL, "?", 2)[0]) {
			capi.Write(r.Body)
		} else {
			audience.Write(r.Body)
		}
	}
	n := identity.NewNormalizer()
	for _, u := range users {
		if !u.consent || u.rejected {
			continue
		}
		email, err := n.Normalize(identity.Email, u.user["email"], "")
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256([]byte(email))
		digest := hex.EncodeToString(sum[:])
		for name, src := range map[string]*bytes.Buffer{"stream": &stream, "table": &table, "CAPI requests": &capi, "audience uploads": &audience} {
			want := digest
			if name == "stream" {
				want = base64.RawURLEncoding.EncodeToString(sum[:]) // stream records of version 2
			}
			if !strings.Contains(src.String(), want) {
				t.Errorf("the hashed email of %s is not in the %s: the canary data did not get there", u.label, name)
			}
		}
	}
	if !bytes.Contains(logs[devenv.DeadLettersFile], []byte(piiPoisonEventID)) {
		t.Errorf("no dead letter for the poison event %s", piiPoisonEventID)
	}
}

// piiNeedles lists the spellings to look for: each raw value as sent, trimmed, and normalised
// as package identity does before hashing, plus the obvious variants (digits only, without
// spaces or punctuation, other date layouts, expanded IPv6...). Spellings shorter than 4
// characters are returned as unscannable instead.
func piiNeedles(t *testing.T, users []piiCanaryUser) (needles []piiNeedle, unscannable []string) {
	t.Helper()
	fields := map[string]identity.Field{
		"email": identity.Email, "phone": identity.Phone, "first_name": identity.FirstName, "last_name": identity.LastName,
		"gender": identity.Gender, "date_of_birth": identity.DateOfBirth, "city": identity.City, "state": identity.State,
		"zip": identity.Zip, "country": identity.Country, "app_user_id": identity.ExternalID,
	}
	norm := identity.NewNormalizer()
	for _, u := range users {
		country, _ := identity.NormalizeCountry(strings.TrimSpace(u.user["country"]))
		seen := map[string]bool{}
		for _, field := range slices.Sorted(maps.Keys(u.user)) {
			raw := u.user[field]
			forms := map[string]string{"raw": raw, "trimmed": strings.TrimSpace(raw)}
			if f, ok := fields[field]; ok {
				if v, err := norm.Normalize(f, raw, country); err == nil {
					forms["normalised"] = v
				}
			}
			forms["letters and digits"] = keepLettersDigits(raw)
			forms["without spaces"] = strings.ReplaceAll(strings.TrimSpace(raw), " ", "")
			switch field {
			case "email":
				if local, domain, ok := strings.Cut(strings.TrimSpace(raw), "@"); ok {
					forms["local part"] = local
					tagless, _, _ := strings.Cut(local, "+")
					forms["canonical mailbox"] = strings.ReplaceAll(tagless, ".", "") + "@" + domain
				}
			case "phone":
				digits := onlyDigits(raw)
				forms["digits"] = digits
				if v := forms["normalised"]; v != "" {
					forms["e164"] = "+" + v
					if len(v) > 9 {
						forms["national digits"] = v[len(v)-9:]
					}
				}
			case "date_of_birth":
				if v := forms["normalised"]; len(v) == 8 {
					y, m, d := v[:4], v[4:6], v[6:]
					for i, layout := range []string{y + "-" + m + "-" + d, y + "/" + m + "/" + d, y + "." + m + "." + d,
						m + "/" + d + "/" + y, d + "/" + m + "/" + y, d + "." + m + "." + y, d + "-" + m + "-" + y, m + "-" + d + "-" + y} {
						forms[fmt.Sprintf("date layout %d", i+1)] = layout
					}
				}
			case "client_ip_address":
				if ip, err := netip.ParseAddr(strings.TrimSpace(raw)); err == nil {
					forms["canonical"] = ip.String()
					forms["expanded"] = ip.StringExpanded()
				}
			case "client_user_agent":
				product, _, _ := strings.Cut(strings.TrimSpace(raw), " ")
				forms["product token"] = product
			case "madid", "anon_id", "app_user_id":
				forms["without hyphens"] = strings.ReplaceAll(raw, "-", "")
			}
			// The same text under several forms is reported as the first: raw before derived.
			order := slices.SortedFunc(maps.Keys(forms), func(a, b string) int {
				return cmp.Or(formRank(a)-formRank(b), strings.Compare(a, b))
			})
			for _, form := range order {
				text := strings.ToLower(forms[form])
				if text == "" || seen[field+"\x00"+text] {
					continue
				}
				seen[field+"\x00"+text] = true
				if len([]rune(text)) < 4 {
					unscannable = append(unscannable, fmt.Sprintf("%s %s %q", u.label, field, text))
					continue
				}
				needles = append(needles, piiNeedle{user: u.label, field: field, form: form, text: text,
					bounded: len(text) < 10 || onlyDigits(text) == keepLettersDigits(text)})
			}
		}
	}
	if len(needles) < 100 {
		t.Fatalf("only %d spellings to scan for", len(needles))
	}
	return needles, unscannable
}

// formRank orders spellings for reports: the value as sent first.
func formRank(form string) int {
	switch form {
	case "raw":
		return 0
	case "trimmed":
		return 1
	case "normalised":
		return 2
	}
	return 3
}

func keepLettersDigits(s string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(s) {
		if unicode.IsLetter(r) || unicode.IsDigit(r) {
			b.WriteRune(r)
		}
	}
	return b.String()
}

func onlyDigits(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r >= '0' && r <= '9' {
			b.WriteRune(r)
		}
	}
	return b.String()
}

// checkPIIScanner plants raw values where the pipeline could leak them and checks that the
// scanner reports exactly the leaks: through JSON escapes, base64 and form encoding, and
// despite the exemptions, which allow their own field at their own path only.
func checkPIIScanner(t *testing.T, users []piiCanaryUser, needles []piiNeedle) {
	u1 := users[0].user
	n := identity.NewNormalizer()
	email, _ := n.Normalize(identity.Email, u1["email"], "")
	sum := sha256.Sum256([]byte(email))
	emailHash := hex.EncodeToString(sum[:])
	envelopeWith := func(user, custom map[string]any) string {
		b, _ := json.Marshal(map[string]any{"v": 1, "app": "sample-shop", "uk": "Xk3pZ0aB1cD2eF3gH4iJ5kL6mN7oP8qR9sT0uV1wX2y",
			"event": map[string]any{"id": "e1", "name": "fb_mobile_purchase", "user": user, "custom_data": custom}})
		return string(b)
	}
	deadLetter := func(record string) string {
		b, _ := json.Marshal(map[string]any{"event_id": "e1", "reason": "refused_by_meta", "record": []byte(record)})
		return string(b)
	}
	tests := []struct {
		name, kind, doc string
		want            []string // "user field" of each finding, in order
	}{
		{name: "email in a JSON log line, escaped", kind: "log",
			doc:  `{"level":"DEBUG","msg":"user","value":"Pii.Canary\u002b1@Example.COM"}`,
			want: []string{"u1 email"}},
		{name: "zip in a text line, not inside a longer number", kind: "console",
			doc:  "seq=910050143210 bytes=812\nwarn zip=00501 something",
			want: []string{"u1 zip"}},
		{name: "digests and user keys are not raw values", kind: "log",
			doc: `{"em":"` + emailHash + `","uk":"Xk3pZ0aB1cD2eF3gH4iJ5kL6mN7oP8qR9sT0uV1wX2y"}`},
		{name: "stream: IP in event.user allowed, first name in custom data not", kind: "stream",
			doc:  envelopeWith(map[string]any{"client_ip_address": u1["client_ip_address"], "em": emailHash}, map[string]any{"description": "for Zelphira"}),
			want: []string{"u1 first_name"}},
		{name: "stream: madid elsewhere than event.user.madid", kind: "stream",
			doc:  envelopeWith(map[string]any{"madid": u1["madid"]}, map[string]any{"order_id": u1["madid"]}),
			want: []string{"u1 madid"}},
		{name: "an exemption is for its own kind of source only", kind: "log",
			doc:  envelopeWith(map[string]any{"madid": u1["madid"]}, nil),
			want: []string{"u1 madid"}},
		{name: "dead letter: base64 record decoded, user agent allowed, phone digits not", kind: "dead-letters",
			doc:  deadLetter(envelopeWith(map[string]any{"client_user_agent": u1["client_user_agent"]}, map[string]any{"search_string": "16315550142"})),
			want: []string{"u1 phone"}},
		{name: "dead letter: an exempted field is exempted inside the record only", kind: "dead-letters",
			doc:  `{"detail":"from 203.0.113.77","record":""}`,
			want: []string{"u1 client_ip_address"}},
		{name: "CAPI request: form-encoded, unhashed ids in user_data allowed", kind: "meta-capi-request",
			doc: "access_token=x&data=" + url.QueryEscape(`[{"event_name":"Purchase","user_data":{"em":["`+emailHash+`"],"client_ip_address":"203.0.113.77","client_user_agent":"`+u1["client_user_agent"]+`","madid":"`+u1["madid"]+`"}}]`)},
		{name: "CAPI request: date of birth in custom data", kind: "meta-capi-request",
			doc:  `{"data":[{"event_name":"Purchase","custom_data":{"description":"born 14.02.1990"}}]}`,
			want: []string{"u1 date_of_birth"}},
		{name: "audience upload: MADID column allowed, email column not", kind: "meta-audience-request",
			doc:  `{"payload":{"schema":["EXTERN_ID","EMAIL_SHA256","MADID"],"data":[["k","pii.canary+1@example.com","` + u1["madid"] + `"]]}}`,
			want: []string{"u1 email"}},
		{name: "table: madid in the state allowed, city not", kind: "table",
			doc:  `{"pk":"user#sample-shop#k","st":"{\"madid\":{\"id\":\"` + u1["madid"] + `\"},\"ct\":\"holtsville\"}"}`,
			want: []string{"u1 city"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newPIIScanner(needles, piiExemptions())
			if tc.kind == "meta-capi-request" && !strings.HasPrefix(tc.doc, "{") {
				s.scanHTTPRequest(tc.kind, "planted", recordedRequest{URL: "/v26.0/1/events", ContentType: "application/x-www-form-urlencoded", Body: []byte(tc.doc)})
			} else {
				s.scanDocument(tc.kind, "planted", []byte(tc.doc))
			}
			var got []string
			for _, f := range s.findings {
				if g := f.needle.user + " " + f.needle.field; !slices.Contains(got, g) {
					got = append(got, g)
				}
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("findings %q, want %q:\n%v", got, tc.want, s.findings)
			}
		})
	}
}

// streamEvents counts the events of stream records (a version 2 record holds a user's events of
// one request).
func streamEvents(t *testing.T, recs []kinesisstream.TailedRecord) int {
	t.Helper()
	n := 0
	for _, r := range recs {
		evs, err := envelope.Decode(r.Data)
		if err != nil {
			t.Errorf("record %s: %v", r.SequenceNumber, err)
			continue
		}
		n += len(evs)
	}
	return n
}
