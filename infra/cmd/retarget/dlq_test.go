package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/retarget-dev/retarget/shared/adapters/deadletters"
	"github.com/retarget-dev/retarget/shared/domain/appevent"
	"github.com/retarget-dev/retarget/shared/domain/envelope"
	"github.com/retarget-dev/retarget/shared/domain/identity"
	"github.com/retarget-dev/retarget/shared/ports"
)

// personal is raw personal data the test events carry: none of it, nor its digest, may be
// printed.
var personal = []string{"Mary.Major@Example.com", "203.0.113.7", "38400000-8cf0-11bd-b23e-10b96e40000d", "ShopApp/7.7.1", "u-123", "(650) 555-1212"}

// deadLetters builds dead letters as the forwarder writes them: stream records made by the
// ingest parser from events with full personal data.
func deadLetters(t *testing.T) []ports.DeadLetter {
	t.Helper()
	cfg := loadSampleConfig(t)
	pseudo, _ := identity.NewPseudonymizer([]byte(devPepper))
	var evs []string
	for i := range 4 {
		evs = append(evs, fmt.Sprintf(`{"event_id":"e-%d","event_name":"fb_mobile_purchase","event_time":%d,`+
			`"user":{"app_user_id":"u-123","email":"Mary.Major@Example.com","phone":"(650) 555-1212","country":"US",`+
			`"madid":"38400000-8CF0-11BD-B23E-10B96E40000D","client_ip_address":"203.0.113.7","client_user_agent":"ShopApp/7.7.1"},`+
			`"device":{"platform":"android","os_version":"14"},"consent":{"ads_personalization":true},`+
			`"custom_data":{"value":12.5,"currency":"USD"}}`, i, testNow.Add(-time.Duration(10-i)*time.Hour).Unix()))
	}
	b, err := appevent.NewParser(pseudo).Parse(&cfg.Apps[0], `{"events":[`+strings.Join(evs, ",")+`]}`, testNow)
	if err != nil || len(b.Accepted) != 4 {
		t.Fatalf("parse: %v %+v", err, b.Rejected)
	}
	defer b.Release()
	envs, err := b.Events()
	if err != nil {
		t.Fatal(err)
	}
	letter := func(i int, reason string, attempts int) ports.DeadLetter {
		l := ports.DeadLetter{App: "sample-shop", EventID: b.Accepted[i].EventID, EventName: "fb_mobile_purchase",
			Consumer: "capi-forwarder", Reason: reason, Detail: "refused", Attempts: attempts, ShardID: "shardId-000000000000",
			SequenceNumber: "4968" + strconv.Itoa(i), FailedAt: testNow.Add(-time.Duration(5-i) * time.Hour).UnixMilli(),
			Record: envelope.Append(nil, &envs[i])} // a dead letter holds its one event
		if reason == "invalid_parameter" {
			l.Meta = &ports.MetaError{Code: 100, Subcode: 2804016, Message: "Invalid parameter", ErrorUserTitle: "Malformed hash",
				FBTraceID: "AbC123"}
		}
		return l
	}
	return []ports.DeadLetter{
		letter(0, "too_old", 1),
		letter(1, "invalid_parameter", 3),
		letter(2, "too_old", 1),
		letter(3, "invalid_parameter", 2),
	}
}

func writeLetters(t *testing.T, letters ...ports.DeadLetter) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "dead-letters.jsonl")
	if err := deadletters.NewFile(path).Send(context.Background(), letters); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestDLQListAndShowTheDevFile(t *testing.T) {
	letters := deadLetters(t)
	junk := ports.DeadLetter{App: "sample-shop", EventID: "junk", Consumer: "capi-forwarder", Reason: "undecodable",
		FailedAt: testNow.UnixMilli(), Record: []byte("not json, could be anything: Mary.Major@Example.com")}
	path := writeLetters(t, append(letters, junk)...)
	h := newHarness(t)
	h.env["DEAD_LETTER_FILE"] = path

	out := h.mustRun(exitOK, "dlq", "list")
	id0 := letterID(letters[0])
	row := tableRow(t, out, id0)
	if strings.Join(row[1:], " ") != "2026-03-09T05:00:00Z (5h ago) sample-shop capi-forwarder too_old e-0 fb_mobile_purchase 1" {
		t.Errorf("row %q", row)
	}
	wantContains(t, out, "ID  ", "FAILED AT", "REASON", "EVENT ID", "5 dead letter(s) in "+path)
	wantNotContains(t, out, personal...)

	h.mustRun(exitOK, "dlq", "list", "--reason", "invalid_parameter", "--json")
	var rows []letterRow
	h.decodeJSON(&rows)
	if len(rows) != 2 || rows[0].EventID != "e-1" || rows[1].EventID != "e-3" || rows[0].ID != letterID(letters[1]) ||
		rows[0].Attempts != 3 || rows[0].FailedAt != "2026-03-09T06:00:00Z" {
		t.Errorf("rows %+v", rows)
	}

	// show, by id prefix: every field, the record with its identifiers redacted.
	out = h.mustRun(exitOK, "dlq", "show", letterID(letters[1])[:6], "--file", path)
	for name, want := range map[string]string{
		"id": letterID(letters[1]), "reason": "invalid_parameter", "event id": "e-1", "attempts": "3",
		"meta error": "100/2804016", "meta user title": "Malformed hash", "fbtrace id": "AbC123", "replayable": "yes",
	} {
		if got := fieldValue(t, out, name); got != want {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}
	emailHash, _ := identity.NewNormalizer().HashField(identity.Email, "Mary.Major@Example.com", "")
	pseudo, _ := identity.NewPseudonymizer([]byte(devPepper))
	key := pseudo.UserKey("sample-shop", identity.KindAppUserID, "u-123")
	emailB64 := base64.RawURLEncoding.EncodeToString(emailHash[:]) // version 2 records carry digests in base64url
	wantContains(t, out, `"em": "`+emailB64[:8]+`…"`, `"uk": "`+key[:8]+`…"`, `"client_ip_address": "(redacted)"`,
		`"madid": "(redacted)"`, `"key_source": "app_user_id"`, `"value": 12.5`)
	wantNotContains(t, out, append(personal, emailHash.String(), emailB64, key)...)

	h.mustRun(exitOK, "dlq", "show", "--json", letterID(letters[1]), "--file", path)
	var v struct {
		letterView
		Record struct {
			UK   string            `json:"uk"`
			User map[string]string `json:"user"`
		} `json:"record"`
	}
	h.decodeJSON(&v)
	if !v.Replayable || v.MetaError.Code != 100 || v.Record.UK != key[:8]+"…" || v.Record.User["ph"] == "" ||
		len(v.Record.User["ph"]) > 12 || v.Record.User["client_user_agent"] != "(redacted)" {
		t.Errorf("json %+v", v)
	}
	wantNotContains(t, h.stdout.String(), append(personal, emailHash.String(), key)...)

	// A letter whose record is not an envelope: shown without its bytes.
	out = h.mustRun(exitOK, "dlq", "show", letterID(junk))
	if got := fieldValue(t, out, "replayable"); !strings.HasPrefix(got, "no: ") {
		t.Errorf("replayable = %q", got)
	}
	wantNotContains(t, out, "could be anything", "Mary")

	for _, tc := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"dlq", "show"}, exitUsage, "want one letter <id>"},
		{[]string{"dlq", "show", "ffffffffffff"}, exitFailure, `retarget dlq show: no dead letter with id "ffffffffffff"`},
		{[]string{"dlq", "show", id0[:1]}, exitFailure, "no dead letter with id"}, // too short to be taken as a prefix
		{[]string{"dlq", "list", "--file", path, "--queue-url", "https://sqs.example/q"}, exitUsage, "give --file or --queue-url, not both"},
		{[]string{"dlq", "list", "--file", "/no/such/dir/file.jsonl"}, exitOK, "note: no dead letters: /no/such/dir/file.jsonl does not exist (yet)"},
	} {
		if code := h.run(tc.args...); code != tc.code || !strings.Contains(h.stderr.String(), tc.msg) {
			t.Errorf("%q: exit %d, stderr %q; want %d and %q", tc.args, code, h.stderr.String(), tc.code, tc.msg)
		}
	}
}

func TestDLQReplayFromTheDevFileToKinesalite(t *testing.T) {
	endpoint, kin := kinesalite(t, devStream)
	letters := deadLetters(t)
	dup := letters[3]
	dup.Attempts = 7 // the same event dead-lettered again after a replay
	junk := ports.DeadLetter{App: "sample-shop", EventID: "junk", Consumer: "capi-forwarder", Reason: "undecodable", Record: []byte("{}")}
	path := writeLetters(t, append(letters, dup, junk)...)
	h := newHarness(t)
	h.env["AWS_ENDPOINT_URL_KINESIS"] = endpoint // the stream: the dev stack's default name
	h.env["DEAD_LETTER_FILE"] = path
	ids := func() []string {
		left, err := deadletters.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, l := range left {
			out = append(out, l.EventID)
		}
		return out
	}

	h.mustRun(exitUsage, "dlq", "replay")
	wantContains(t, h.stderr.String(), "choose the letters: --id, --reason, --app, --event-id, or --all")
	h.mustRun(exitUsage, "dlq", "replay", "--all", "--reason", "x")

	// Dry run: lists, changes nothing.
	out := h.mustRun(exitOK, "dlq", "replay", "--reason", "too_old", "--dry-run")
	tableRow(t, out, letterID(letters[0]), "sample-shop", "too_old", "e-0", "fb_mobile_purchase", "would", "replay")
	tableRow(t, out, letterID(letters[2]), "sample-shop", "too_old", "e-2")
	wantContains(t, out, "dry run: 2 letter(s) would be replayed; nothing changed")
	if got := len(streamRecords(t, kin, devStream)); got != 0 {
		t.Fatalf("a dry run put %d records on the stream", got)
	}

	// Unknown ids change nothing.
	h.mustRun(exitFailure, "dlq", "replay", "--id", letterID(letters[0]), "--id", "ffffffffffff")
	wantContains(t, h.stderr.String(), `no dead letter with id "ffffffffffff"`)
	if fmt.Sprint(ids()) != "[e-0 e-1 e-2 e-3 e-3 junk]" {
		t.Fatalf("letters left %v", ids())
	}

	// One letter by id: its record goes back on the stream as it was, the others stay.
	out = h.mustRun(exitOK, "dlq", "replay", "--id", letterID(letters[2]))
	tableRow(t, out, letterID(letters[2]), "sample-shop", "too_old", "e-2", "fb_mobile_purchase", "replayed")
	wantContains(t, out, "1 letter(s) replayed to stream retarget-events")
	recs := streamRecords(t, kin, devStream)
	pseudo, _ := identity.NewPseudonymizer([]byte(devPepper))
	if len(recs) != 1 || string(recs[0].Data) != string(letters[2].Record) || recs[0].PartitionKey != pseudo.UserKey("sample-shop", identity.KindAppUserID, "u-123") {
		t.Fatalf("stream: %+v", recs)
	}
	if fmt.Sprint(ids()) != "[e-0 e-1 e-3 e-3 junk]" {
		t.Errorf("letters left %v", ids())
	}

	// By id, when another letter has the same app, reason and event: the Replayer's filter
	// takes both, and the output says so.
	h.mustRun(exitOK, "dlq", "replay", "--id", letterID(letters[3]), "--json")
	var res replayResult
	h.decodeJSON(&res)
	if res.Replayed != 2 || len(res.Letters) != 2 || res.Letters[0].Result != resultReplayed || res.Letters[1].Result != resultDuplicate ||
		res.Letters[1].ID != letterID(dup) || res.Stream != devStream || res.DryRun {
		t.Errorf("replay %+v", res)
	}

	// By reason, with a letter that cannot be replayed: reported, kept, exit 1.
	out = h.mustRun(exitFailure, "dlq", "replay", "--all", "--stream", devStream)
	tableRow(t, out, letterID(letters[0]), "sample-shop", "too_old", "e-0", "fb_mobile_purchase", "replayed")
	tableRow(t, out, letterID(junk), "sample-shop", "undecodable", "junk", "-", "not", "replayed")
	wantContains(t, h.stderr.String(), `retarget dlq replay: letter for event "junk" holds no replayable record`)
	if fmt.Sprint(ids()) != "[junk]" {
		t.Errorf("letters left %v", ids())
	}
	if got := len(streamRecords(t, kin, devStream)); got != 5 {
		t.Errorf("%d records on the stream, want 5", got)
	}

	// Against AWS a stream name is needed.
	h.env["AWS_ENDPOINT_URL_KINESIS"] = ""
	h.mustRun(exitUsage, "dlq", "replay", "--all")
	wantContains(t, h.stderr.String(), "no stream: pass --stream or set EVENT_STREAM_NAME")
}

// fakeSQS is an in-memory SQS queue with visibility timeouts (the repository has no SQS
// emulator).
type fakeSQS struct {
	mu       sync.Mutex
	msgs     []*fakeMessage
	handles  map[string]*fakeMessage
	receipts int
}

type fakeMessage struct {
	id, body  string
	visibleAt time.Time
	deleted   bool
}

func newFakeSQS(letters ...ports.DeadLetter) *fakeSQS {
	q := &fakeSQS{handles: map[string]*fakeMessage{}}
	for i, l := range letters {
		body, _ := json.Marshal(l)
		q.msgs = append(q.msgs, &fakeMessage{id: fmt.Sprintf("msg-%d", i), body: string(body)})
	}
	q.msgs = append(q.msgs, &fakeMessage{id: "msg-foreign", body: "not a dead letter"})
	return q
}

func (q *fakeSQS) ReceiveMessage(_ context.Context, in *sqs.ReceiveMessageInput, _ ...func(*sqs.Options)) (*sqs.ReceiveMessageOutput, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	now := time.Now()
	out := &sqs.ReceiveMessageOutput{}
	for _, m := range q.msgs {
		if len(out.Messages) == int(in.MaxNumberOfMessages) {
			break
		}
		if m.deleted || m.visibleAt.After(now) {
			continue
		}
		m.visibleAt = now.Add(time.Duration(in.VisibilityTimeout) * time.Second)
		q.receipts++
		h := fmt.Sprintf("rh-%d", q.receipts)
		q.handles[h] = m
		out.Messages = append(out.Messages, types.Message{MessageId: aws.String(m.id), ReceiptHandle: aws.String(h), Body: aws.String(m.body)})
	}
	return out, nil
}

func (q *fakeSQS) DeleteMessageBatch(_ context.Context, in *sqs.DeleteMessageBatchInput, _ ...func(*sqs.Options)) (*sqs.DeleteMessageBatchOutput, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	out := &sqs.DeleteMessageBatchOutput{}
	for _, e := range in.Entries {
		if m, ok := q.handles[aws.ToString(e.ReceiptHandle)]; ok {
			m.deleted = true
			out.Successful = append(out.Successful, types.DeleteMessageBatchResultEntry{Id: e.Id})
		} else {
			out.Failed = append(out.Failed, types.BatchResultErrorEntry{Id: e.Id, Code: aws.String("ReceiptHandleIsInvalid")})
		}
	}
	return out, nil
}

func (q *fakeSQS) ChangeMessageVisibilityBatch(_ context.Context, in *sqs.ChangeMessageVisibilityBatchInput, _ ...func(*sqs.Options)) (*sqs.ChangeMessageVisibilityBatchOutput, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	out := &sqs.ChangeMessageVisibilityBatchOutput{}
	for _, e := range in.Entries {
		if m, ok := q.handles[aws.ToString(e.ReceiptHandle)]; ok {
			m.visibleAt = time.Now().Add(time.Duration(e.VisibilityTimeout) * time.Second)
		}
	}
	return out, nil
}

// visible lists the ids of the messages a receive would return now.
func (q *fakeSQS) visible() []string {
	q.mu.Lock()
	defer q.mu.Unlock()
	var out []string
	for _, m := range q.msgs {
		if !m.deleted && !m.visibleAt.After(time.Now()) {
			out = append(out, m.id)
		}
	}
	return out
}

func TestDLQOverSQS(t *testing.T) {
	endpoint, kin := kinesalite(t, devStream)
	letters := deadLetters(t)
	q := newFakeSQS(letters...)
	h := newHarness(t)
	h.newSQS = func() sqsAPI { return q }
	h.env["AWS_ENDPOINT_URL_KINESIS"] = endpoint
	h.env["DEAD_LETTER_QUEUE_URL"] = "https://sqs.eu-west-1.amazonaws.com/123456789012/dlq"
	all := "[msg-0 msg-1 msg-2 msg-3 msg-foreign]"

	out := h.mustRun(exitOK, "dlq", "list")
	for _, l := range letters {
		tableRow(t, out, letterID(l), time.UnixMilli(l.FailedAt).UTC().Format(time.RFC3339))
	}
	wantContains(t, out, "4 dead letter(s) in https://sqs.eu-west-1.amazonaws.com/123456789012/dlq")
	if got := fmt.Sprint(q.visible()); got != all {
		t.Fatalf("after list, visible %s: want every message visible again", got)
	}
	out = h.mustRun(exitOK, "dlq", "show", letterID(letters[1]))
	if fieldValue(t, out, "event id") != "e-1" {
		t.Errorf("show:\n%s", out)
	}

	h.mustRun(exitOK, "dlq", "replay", "--reason", "too_old", "--dry-run")
	if got := fmt.Sprint(q.visible()); got != all {
		t.Fatalf("after a dry run, visible %s", got)
	}

	out = h.mustRun(exitOK, "dlq", "replay", "--id", letterID(letters[1]), "--id", letterID(letters[3]))
	tableRow(t, out, letterID(letters[1]), "sample-shop", "invalid_parameter", "e-1", "fb_mobile_purchase", "replayed")
	tableRow(t, out, letterID(letters[3]), "sample-shop", "invalid_parameter", "e-3", "fb_mobile_purchase", "replayed")
	wantContains(t, out, "2 letter(s) replayed to stream retarget-events")
	if got := fmt.Sprint(q.visible()); got != "[msg-0 msg-2 msg-foreign]" {
		t.Errorf("after the replay, visible %s: want the others visible at once", got)
	}
	if recs := streamRecords(t, kin, devStream); len(recs) != 2 || string(recs[0].Data) != string(letters[1].Record) {
		t.Errorf("stream: %d records", len(recs))
	}

	h.mustRun(exitFailure, "dlq", "replay", "--id", "ffffffffffff")
	wantContains(t, h.stderr.String(), "no dead letter with id [ffffffffffff] in the queue")
	if got := fmt.Sprint(q.visible()); got != "[msg-0 msg-2 msg-foreign]" {
		t.Errorf("visible %s", got)
	}
}

// Every user object of a record is redacted, whatever the version: version 1's event.user,
// version 2's record user and each event's own.
func TestRedactRecordCoversEveryUserObject(t *testing.T) {
	h := sha256.Sum256([]byte("x"))
	hexD, b64D := hex.EncodeToString(h[:]), base64.RawURLEncoding.EncodeToString(h[:])
	for name, doc := range map[string]string{
		"v1": `{"v":1,"app":"a","uk":"k","event":{"id":"i","name":"n","user":{"em":"` + hexD + `","madid":"RAW-1","client_ip_address":"RAW-2"}}}`,
		"v2": `{"v":2,"app":"a","uk":"k","user":{"em":"` + b64D + `","madid":"RAW-1"},"events":[{"id":"i","name":"n"},` +
			`{"id":"j","name":"n","user":{"em":"` + b64D + `","client_user_agent":"RAW-2","anon_id":"RAW-3"}}]}`,
	} {
		t.Run(name, func(t *testing.T) {
			red, err := redactRecord([]byte(doc))
			if err != nil {
				t.Fatal(err)
			}
			out, _ := json.Marshal(red)
			if bytes.Contains(out, []byte("RAW-")) || bytes.Contains(out, []byte(hexD)) || bytes.Contains(out, []byte(b64D)) {
				t.Fatalf("not redacted: %s", out)
			}
			if !bytes.Contains(out, []byte(`(redacted)`)) || !bytes.Contains(out, []byte(`…`)) {
				t.Fatalf("redaction marks missing: %s", out)
			}
		})
	}
}

// Letters of both envelope versions: a version 1 record, and a version 2 record of several
// events of which one has a user object of its own (other IP, user agent and madid). show
// redacts every user object of both and calls both replayable; replay puts both back as they
// are, keyed by their user key.
func TestDLQShowAndReplayLettersOfEitherVersion(t *testing.T) {
	endpoint, kin := kinesalite(t, devStream)
	cfg := loadSampleConfig(t)
	pseudo, _ := identity.NewPseudonymizer([]byte(devPepper))
	other := []string{"198.51.100.23", "OtherAgent/1.0", "6D92078A-8246-4BA4-AE5B-76104861E7DC"}
	var evs []string
	for i, u := range []string{
		`"client_ip_address":"203.0.113.7","client_user_agent":"ShopApp/7.7.1","madid":"38400000-8CF0-11BD-B23E-10B96E40000D"`,
		`"client_ip_address":"203.0.113.7","client_user_agent":"ShopApp/7.7.1","madid":"38400000-8CF0-11BD-B23E-10B96E40000D"`,
		`"client_ip_address":"` + other[0] + `","client_user_agent":"` + other[1] + `","madid":"` + other[2] + `"`,
	} {
		evs = append(evs, fmt.Sprintf(`{"event_id":"m-%d","event_name":"fb_mobile_purchase","event_time":%d,`+
			`"user":{"app_user_id":"u-123","email":"Mary.Major@Example.com","phone":"(650) 555-1212","country":"US",%s},`+
			`"device":{"platform":"android","os_version":"14"},"consent":{"ads_personalization":true},`+
			`"custom_data":{"value":12.5,"currency":"USD"}}`, i, testNow.Add(-time.Duration(3-i)*time.Hour).Unix(), u))
	}
	b, err := appevent.NewParser(pseudo).Parse(&cfg.Apps[0], `{"events":[`+strings.Join(evs, ",")+`]}`, testNow)
	if err != nil || len(b.Rejected) > 0 {
		t.Fatalf("parse: %v %+v", err, b.Rejected)
	}
	var recs []envelope.Record
	for _, a := range b.Records {
		rs, err := envelope.Decode(a.Data)
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, rs...)
	}
	b.Release()
	if len(recs) != 3 {
		t.Fatalf("%d events parsed", len(recs))
	}
	group := envelope.AppendGroup(nil, recs[1:])
	if !bytes.Contains(group, []byte(`"events":[{`)) || bytes.Count(group, []byte(`"client_ip_address"`)) != 2 {
		t.Fatalf("the version 2 record has no event user of its own: %s", group)
	}
	letter := func(id string, rec []byte) ports.DeadLetter {
		return ports.DeadLetter{App: "sample-shop", EventID: id, EventName: "fb_mobile_purchase", Consumer: "capi-forwarder",
			Reason: "invalid_parameter", Attempts: 1, FailedAt: testNow.UnixMilli(), Record: rec}
	}
	v1 := letter("m-0", envelope.AppendV1(nil, &recs[0]))
	v2 := letter("m-2", group)
	path := writeLetters(t, v1, v2)
	h := newHarness(t)
	h.env["DEAD_LETTER_FILE"] = path
	h.env["AWS_ENDPOINT_URL_KINESIS"] = endpoint

	emailHash, _ := identity.NewNormalizer().HashField(identity.Email, "Mary.Major@Example.com", "")
	key := pseudo.UserKey("sample-shop", identity.KindAppUserID, "u-123")
	secret := append(append(slices.Clone(personal), other...), strings.ToLower(other[2]), emailHash.String(),
		base64.RawURLEncoding.EncodeToString(emailHash[:]), key)
	for _, tc := range []struct {
		l       ports.DeadLetter
		version string
		users   int // user objects in the record
	}{{v1, `"v": 1`, 1}, {v2, `"v": 2`, 2}} {
		out := h.mustRun(exitOK, "dlq", "show", letterID(tc.l))
		if got := fieldValue(t, out, "replayable"); got != "yes" {
			t.Errorf("%s: replayable = %q, want yes", tc.l.EventID, got)
		}
		wantContains(t, out, tc.version, `"uk": "`+key[:8]+`…"`)
		if n := strings.Count(out, `"client_ip_address": "(redacted)"`); n != tc.users {
			t.Errorf("%s: %d user objects redacted, want %d:\n%s", tc.l.EventID, n, tc.users, out)
		}
		wantNotContains(t, out, secret...)

		h.mustRun(exitOK, "dlq", "show", "--json", letterID(tc.l))
		wantNotContains(t, h.stdout.String(), secret...)
	}

	out := h.mustRun(exitOK, "dlq", "replay", "--all", "--dry-run")
	tableRow(t, out, letterID(v1), "sample-shop", "invalid_parameter", "m-0", "fb_mobile_purchase", "would", "replay")
	tableRow(t, out, letterID(v2), "sample-shop", "invalid_parameter", "m-2", "fb_mobile_purchase", "would", "replay")

	out = h.mustRun(exitOK, "dlq", "replay", "--all")
	wantContains(t, out, "2 letter(s) replayed to stream retarget-events")
	got := streamRecords(t, kin, devStream)
	if len(got) != 2 {
		t.Fatalf("%d records on the stream, want 2", len(got))
	}
	byData := map[string]string{}
	for _, r := range got {
		byData[string(r.Data)] = r.PartitionKey
	}
	for _, l := range []ports.DeadLetter{v1, v2} {
		if pk, ok := byData[string(l.Record)]; !ok || pk != key {
			t.Errorf("letter %s: its record is not on the stream as it was, keyed by the user key (%v, key %q)", l.EventID, ok, pk)
		}
	}
}
