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

// checkMixed reports a stream that was not mixed as the run meant it, from the records
// themselves.
func TestCheckMixedReportsAStreamNotMixed(t *testing.T) {
	rec := func(uk, id string) envelope.Record {
		return envelope.Record{App: "sample-shop", UserKey: uk, ReceivedAt: 1, Event: envelope.Event{ID: id, Name: "fb_mobile_activate_app", Time: 1}}
	}
	a1, a2, b1 := rec("a", "a1"), rec("a", "a2"), rec("b", "b1")
	view := func(datas ...[]byte) streamView {
		var v streamView
		for _, d := range datas {
			v.add(d)
		}
		return v
	}
	spanned := directStats{spanned: 1}
	mixed := view(envelope.AppendV1(nil, &a1), envelope.AppendGroup(nil, []envelope.Record{a1, a2}), envelope.Append(nil, &b1), []byte(`{"v":1}`))
	if mixed.v1 != 1 || mixed.v2 != 2 || mixed.v2Multi != 1 || mixed.undecodable != 1 || mixed.bothVersions() != 1 {
		t.Errorf("view %+v", mixed)
	}
	expect(t, "mixed", checkMixed(mixed, spanned), "")
	expect(t, "no v1", checkMixed(view(envelope.AppendGroup(nil, []envelope.Record{a1, a2})), spanned), "no version 1 record")
	expect(t, "no multi-event v2", checkMixed(view(envelope.AppendV1(nil, &a1), envelope.Append(nil, &a2)), spanned), "no version 2 record with several events")
	expect(t, "no user of both", checkMixed(view(envelope.AppendV1(nil, &b1), envelope.AppendGroup(nil, []envelope.Record{a1, a2})), spanned), "no user has records of both versions")
	expect(t, "nothing spanned", checkMixed(mixed, directStats{}), "no request's events spanned")
}

// The generated input routes users and requests as mixed_test.go says: every kind of user and
// route, a mixed user's requests by both versions, the big user's events in one request whose
// version 2 records are several, and a poison event of every kind of user.
func TestGeneratedInputIsMixed(t *testing.T) {
	in := generate(defaultScale, defaultSeed, time.Now())
	kinds := map[userKind]int{}
	for _, u := range in.users {
		kinds[u.kind]++
	}
	for _, k := range userKinds {
		if kinds[k] == 0 {
			t.Errorf("no user of kind %s", k)
		}
	}
	routesOf := map[string]map[route]bool{}
	var big []request
	for _, r := range in.pending {
		u := in.byID[r.events[0].id()]
		if routesOf[u.appUserID] == nil {
			routesOf[u.appUserID] = map[route]bool{}
		}
		routesOf[u.appUserID][r.route] = true
		if u == in.users[bigUser] {
			big = append(big, r)
		}
	}
	both := 0
	for _, rs := range routesOf {
		if rs[directV1] && rs[directV2] {
			both++
		}
	}
	if both == 0 {
		t.Error("no user sends requests as both version 1 and version 2 records")
	}
	if len(big) != 1 || big[0].route != directV2 {
		t.Fatalf("the big user's requests: %d, want one of route v2", len(big))
	}
	apps, err := env.LoadApps(filepath.Join(ingesttest.RepoRoot(t), "infra", "config", "apps.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := in.resolve(&apps.Apps[0], time.Now()); err != nil {
		t.Fatal(err)
	}
	var recs []envelope.Record
	for _, e := range big[0].events {
		recs = append(recs, envelope.Record{App: "sample-shop", UserKey: in.users[bigUser].userKey, ReceivedAt: 1, Event: *in.users[bigUser].byID[e.id()]})
	}
	if n := len(envelope.Pack(recs)); n < 2 {
		t.Errorf("the big user's %d events take %d version 2 record(s), want several", len(recs), n)
	}
	poisoned := map[userKind]bool{}
	for _, id := range in.poison {
		poisoned[in.byID[id].kind] = true
	}
	for _, k := range userKinds {
		if !poisoned[k] {
			t.Errorf("no poison event of a user of kind %s", k)
		}
	}
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
