package chaos

import (
	"bytes"
	"encoding/json"
	"hash/crc32"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/retarget-dev/retarget/shared/domain/audiences"
	"github.com/retarget-dev/retarget/shared/domain/envelope"
	"github.com/retarget-dev/retarget/shared/domain/segments"
	"github.com/retarget-dev/retarget/shared/ports"
	"github.com/retarget-dev/retarget/shared/runtime/env"
	"github.com/retarget-dev/retarget/shared/sandbox/metasandbox"
	"github.com/retarget-dev/retarget/shared/sandbox/streampoller"
	"github.com/retarget-dev/retarget/shared/testkit/ingesttest"
)

// Each check must report what is wrong with a made-up observation, and nothing when it is
// right: a check that cannot fail proves nothing. These run without emulators.
func TestChecksReportProblems(t *testing.T) {
	apps, err := env.LoadApps(filepath.Join(ingesttest.RepoRoot(t), "infra", "config", "apps.json"))
	if err != nil {
		t.Fatal(err)
	}
	app := &apps.Apps[0]
	rules, err := segments.Compile(app)
	if err != nil {
		t.Fatal(err)
	}
	aa, err := audiences.Compile(app)
	if err != nil {
		t.Fatal(err)
	}
	owner := func(string) string { return "u" }

	t.Run("meta", func(t *testing.T) {
		api := []string{"a", "b", "c", "p"}
		for _, tc := range []struct {
			name string
			meta map[string]int
			want string
		}{
			{"exact", map[string]int{"a": 2, "b": 1, "c": 1}, ""},
			{"lost", map[string]int{"a": 1, "c": 1}, "never accepted 1 of the 3"},
			{"poison delivered", map[string]int{"a": 1, "b": 1, "c": 1, "p": 1}, "1 poison events"},
			{"unknown", map[string]int{"a": 1, "b": 1, "c": 1, "x": 1}, "never accepted: x"},
		} {
			expect(t, tc.name, checkMeta(api, []string{"p"}, tc.meta, owner), tc.want)
		}
	})

	t.Run("dead letters", func(t *testing.T) {
		good := ports.DeadLetter{EventID: "p", Reason: "invalid_parameter", Meta: &ports.MetaError{Code: 100}, Record: []byte("{}")}
		expect(t, "exact", checkDeadLetters([]string{"p"}, []ports.DeadLetter{good, good}), "")
		expect(t, "missing", checkDeadLetters([]string{"p"}, nil), "not in the dead letters")
		noReason := good
		noReason.Reason = ""
		expect(t, "no reason", checkDeadLetters([]string{"p"}, []ports.DeadLetter{noReason}), "lacks its reason")
		other := good
		other.EventID = "a"
		expect(t, "other", checkDeadLetters([]string{"p"}, []ports.DeadLetter{good, other}), "not poison were dead-lettered")
	})

	now := time.Now()
	purchase := func(id string, v float64) *envelope.Event {
		return &envelope.Event{ID: id, Name: "fb_mobile_purchase", Time: now.Add(-time.Hour).Unix(),
			User:    envelope.User{Email: [32]byte{1}},
			Consent: envelope.Consent{AdsPersonalization: envelope.True},
			Custom:  envelope.CustomData{Value: envelope.OptFloat{V: v, Set: true}, Currency: "USD"}}
	}
	refOf := func(evs ...*envelope.Event) *refUser {
		st := &segments.State{}
		for _, e := range evs {
			st.Apply(e, rules)
		}
		segs, _ := rules.Evaluate(st, now)
		return &refUser{appUserID: "u-1", userKey: "key-1", events: len(evs), state: st, segsStart: segs, segsEnd: segs}
	}
	ref := refOf(purchase("e1", 150), purchase("e2", 100))
	record := func(r *refUser) ports.UserRecord {
		b, _ := json.Marshal(r.state)
		return ports.UserRecord{State: b, Segments: r.segsEnd}
	}

	t.Run("state", func(t *testing.T) {
		expect(t, "exact", checkStates([]*refUser{ref}, map[string]ports.UserRecord{"key-1": record(ref)}), "")
		expect(t, "missing", checkStates([]*refUser{ref}, nil), "no state in DynamoDB")
		double := refOf(purchase("e1", 150), purchase("e2", 100), purchase("e2", 100))
		expect(t, "double count", checkStates([]*refUser{ref}, map[string]ports.UserRecord{"key-1": record(double)}),
			"purchases stored 3, reference 2")
		wrongSegs := record(ref)
		wrongSegs.Segments = nil
		expect(t, "segments", checkStates([]*refUser{ref}, map[string]ports.UserRecord{"key-1": wrongSegs}), "stored segments []")
	})

	t.Run("cohorts", func(t *testing.T) {
		withCohorts := func(cs ...segments.Cohort) map[string]ports.UserRecord {
			st := *ref.state
			st.Cohorts = cs
			b, _ := json.Marshal(&st)
			return map[string]ports.UserRecord{"key-1": {State: b, Segments: ref.segsEnd}}
		}
		var good []segments.Cohort
		for _, seg := range ref.segsEnd {
			if _, ok := aa.Audience(seg); ok {
				good = append(good, segments.Cohort{Segment: seg, JoinedAt: ref.state.FirstSeen, Arm: aa.Assigner(seg).Arm("key-1")})
			}
		}
		expect(t, "exact", checkCohorts(aa, []*refUser{ref}, withCohorts(good...)), "")
		expect(t, "a state with cohorts is still the reference", checkStates([]*refUser{ref}, withCohorts(good...)), "")
		expect(t, "not followed", checkCohorts(aa, []*refUser{ref}, withCohorts()), "but in no cohort of it")
		wrong := slices.Clone(good)
		wrong[0].Arm = 1 - wrong[0].Arm
		expect(t, "wrong arm", checkCohorts(aa, []*refUser{ref}, withCohorts(wrong...)), "the assignment says")
	})

	t.Run("audiences", func(t *testing.T) {
		if !strings.Contains(strings.Join(ref.segsEnd, ","), "vip") {
			t.Fatalf("reference user not vip: %v", ref.segsEnd)
		}
		want := map[string]map[string]bool{}
		for _, seg := range aa.Desired(ref.segsEnd) {
			want[aa.KeyFor("key-1", seg)] = map[string]bool{"key-1": true}
		}
		expect(t, "exact", checkAudiences(aa, []*refUser{ref}, want, nil), "")
		expect(t, "missing", checkAudiences(aa, []*refUser{ref}, map[string]map[string]bool{}, nil), `not in audience "`+aa.KeyFor("key-1", "vip")+`"`)
		extra := map[string]map[string]bool{aa.KeyFor("key-1", "engaged"): {"key-1": true}}
		for k, v := range want {
			extra[k] = v
		}
		expect(t, "extra", checkAudiences(aa, []*refUser{ref}, extra, nil), `is in audience "`+aa.KeyFor("key-1", "engaged")+`"`)
		stranger := map[string]map[string]bool{"vip": {"key-1": true, "key-9": true}}
		for k, v := range want {
			if k != "vip" {
				stranger[k] = v
			}
		}
		expect(t, "unknown member", checkAudiences(aa, []*refUser{ref}, stranger, nil), `member "key-9"`)
	})

	t.Run("pending", func(t *testing.T) {
		expect(t, "nothing", checkNothingPending(pendingView{}, owner), "")
		expect(t, "change", checkNothingPending(pendingView{changes: map[string][]ports.PendingChange{
			"vip": {{MembershipChange: ports.MembershipChange{UserKey: "k", Joined: true, At: now.UnixMilli()}}}}}, owner), "1 membership changes still pending")
		expect(t, "checkpoint", checkNothingPending(pendingView{states: map[string]ports.AudienceSyncState{
			"vip": {SessionID: 7, Op: "add", BatchesDone: 1}}}, owner), "still holds add session 7")
		expect(t, "meta session", checkNothingPending(pendingView{sessions: map[string][]metasandbox.AudienceSession{
			"vip": {{SessionID: 8, Operation: "add", LastBatchSeq: 1}}}}, owner), "add session 8 at Meta left open")
		expect(t, "replace", checkNothingPending(pendingView{infos: []metasandbox.AudienceInfo{{ID: "1", ReplaceInProgress: true}}}, owner), "replace session is open")
	})

	t.Run("stream", func(t *testing.T) {
		last := map[string]string{"shardId-000000000000": "49", "shardId-000000000001": "51"}
		done := streampoller.Stats{Shards: map[string]streampoller.ShardStats{
			"shardId-000000000000": {Checkpoint: "49"}, "shardId-000000000001": {Checkpoint: "51"}}}
		expect(t, "caught up", checkStream("m", last, done, nil), "")
		behind := streampoller.Stats{Shards: map[string]streampoller.ShardStats{
			"shardId-000000000000": {Checkpoint: "49"}, "shardId-000000000001": {Checkpoint: "50"}}}
		expect(t, "behind", checkStream("m", last, behind, nil), "records left unprocessed")
		gaveUp := done
		gaveUp.RecordsToOnFailure = 3
		expect(t, "gave up", checkStream("m", last, gaveUp, map[string]int{"m: x": 3}), "gave up on 3 records")
	})
}

// expect fails unless problems is empty (want "") or one problem contains want.
func expect(t *testing.T, name string, problems []string, want string) {
	t.Helper()
	joined := strings.Join(problems, "\n")
	switch {
	case want == "" && len(problems) > 0:
		t.Errorf("%s: unexpected problems:\n%s", name, joined)
	case want != "" && !strings.Contains(joined, want):
		t.Errorf("%s: problems %q do not mention %q", name, joined, want)
	}
}

// The splicer leaves items unprocessed as DynamoDB does: they are not sent upstream, they come
// back in UnprocessedItems next to what upstream left, and the CRC32 matches the new body.
func TestDynamoProxySplicesBatchWriteItem(t *testing.T) {
	var upstreamBody []byte
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		upstreamBody, _ = io.ReadAll(r.Body)
		w.Header().Set("X-Amz-Crc32", "1")
		w.Write([]byte(`{"UnprocessedItems":{"t":[{"PutRequest":{"Item":{"pk":{"S":"upstream"}}}}]}}`))
	}))
	defer upstream.Close()
	p := startDynamoProxy(upstream.URL, newRNG(1))
	defer p.Close()
	p.rate.set(0.5)

	var items []string
	for i := range 40 {
		items = append(items, `{"PutRequest":{"Item":{"pk":{"S":"i`+string(rune('A'+i%26))+string(rune('a'+i/26))+`"}}}}`)
	}
	body := `{"RequestItems":{"t":[` + strings.Join(items, ",") + `]}}`
	req, _ := http.NewRequest(http.MethodPost, p.URL(), strings.NewReader(body))
	req.Header.Set("X-Amz-Target", dynamoBatchWriteItem)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()

	var sent, answered struct {
		RequestItems, UnprocessedItems map[string][]json.RawMessage
	}
	json.Unmarshal(upstreamBody, &sent)
	json.Unmarshal(raw, &answered)
	held := answered.UnprocessedItems["t"]
	if len(sent.RequestItems["t"]) == 0 || len(held) < 2 || len(sent.RequestItems["t"])+len(held) != 41 {
		t.Fatalf("sent %d upstream, %d unprocessed (with upstream's 1), want 40 + 1 in all", len(sent.RequestItems["t"]), len(held))
	}
	for _, h := range held {
		if bytes.Contains(upstreamBody, h) {
			t.Errorf("unprocessed item %s was sent upstream", h)
		}
	}
	if got, want := resp.Header.Get("X-Amz-Crc32"), crcOf(raw); got != want {
		t.Errorf("X-Amz-Crc32 %s, want %s", got, want)
	}
	if p.injected.Load() != int64(len(held)-1) {
		t.Errorf("injected %d, want %d", p.injected.Load(), len(held)-1)
	}
}

func crcOf(b []byte) string { return strconv.FormatUint(uint64(crc32.ChecksumIEEE(b)), 10) }
