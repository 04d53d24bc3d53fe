package appevent

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/retarget-dev/retarget/shared/domain/envelope"
	"github.com/retarget-dev/retarget/shared/domain/identity"
)

// userEvent is validEvent for user u (its app_user_id and email) with the given id.
func userEvent(u, id string) map[string]any {
	e := set(validEvent(), "user.app_user_id", u)
	set(e, "user.email", u+"@example.com")
	return set(e, "event_id", id)
}

// recordIDs lists the event ids of each record of b, in record order.
func recordIDs(t *testing.T, b *Batch) [][]string {
	t.Helper()
	recs := eventRecords(t, b) // checks the records carry exactly the events that name them
	out := make([][]string, len(b.Records))
	for i, a := range b.Accepted {
		out[a.Record] = append(out[a.Record], recs[i].Event.ID)
	}
	return out
}

// A request of N events of K users makes one record per user, users in the order of their
// first accepted event, each user's events in request order; rejected events are in none.
func TestRecordsGroupEventsByUser(t *testing.T) {
	evs := []any{
		set(userEvent("d", "d-0"), "user.email", "not-an-email"), // rejected: d has no record
		userEvent("a", "a-1"), userEvent("b", "b-2"), userEvent("a", "a-3"), userEvent("c", "c-4"),
		userEvent("b", "b-5"), userEvent("a", "a-6"), userEvent("d", "d-7"),
		// Another object of user a (no email): same key, same record, its own user object.
		set(userEvent("a", "a-8"), "user.email", nil),
	}
	b := parse(t, body(evs...))
	if len(b.Rejected) != 1 || b.Rejected[0].Index != 0 || len(b.Accepted) != 8 {
		t.Fatalf("accepted %d, rejected %+v", len(b.Accepted), b.Rejected)
	}
	want := [][]string{{"a-1", "a-3", "a-6", "a-8"}, {"b-2", "b-5"}, {"c-4"}, {"d-7"}}
	if got := recordIDs(t, b); !slices.EqualFunc(got, want, slices.Equal) {
		t.Fatalf("records %v, want %v", got, want)
	}
	for i, u := range []string{"a", "b", "c", "d"} {
		if key := testPeps.UserKey("sample-shop", identity.KindAppUserID, u); b.Records[i].PartitionKey != key {
			t.Errorf("record %d partition key %s, want user %s's", i, b.Records[i].PartitionKey, u)
		}
	}
	// The user and device are written once per record, where every event shares them.
	if data := string(b.Records[1].Data); strings.Count(data, `"user":`) != 1 || strings.Count(data, `"device":`) != 1 {
		t.Errorf("record of b repeats its user or device: %s", data)
	}
	recs := eventRecords(t, b)
	if recs[7].Event.User.Email != (identity.Hash{}) || recs[0].Event.User.Email == (identity.Hash{}) {
		t.Errorf("a-8 must keep its own user object (no email), a-1 its email")
	}
}

// A user whose events pass envelope.MaxRecordBytes gets several records, each as full as the
// next event allows, in request order; an event too large for any record gets one of its own.
func TestRecordsSplitAtMaxRecordBytes(t *testing.T) {
	big := func(u, id string) map[string]any {
		e := userEvent(u, id)
		set(e, "custom_data.description", strings.Repeat("d", 1000))
		return set(e, "custom_data.search_string", strings.Repeat("s", 1000))
	}
	huge := userEvent("a", "a-huge")
	items := make([]any, 1000)
	for i := range items {
		items[i] = map[string]any{"id": fmt.Sprintf("sku-%04d", i), "quantity": 1, "item_price": 12.5}
	}
	set(huge, "custom_data.contents", items)
	var evs []any
	var wantA []string
	for i := range 30 {
		id := fmt.Sprintf("a-%02d", i)
		evs = append(evs, big("a", id))
		wantA = append(wantA, id)
		if i == 12 {
			evs = append(evs, huge, userEvent("b", "b-1"))
			wantA = append(wantA, "a-huge")
		}
	}
	b := parse(t, body(evs...))
	if len(b.Rejected) != 0 {
		t.Fatalf("rejected %+v", b.Rejected)
	}
	got := recordIDs(t, b)
	var a []string
	var aRecords []int
	for i, ids := range got {
		if b.Records[i].PartitionKey == b.Records[0].PartitionKey {
			a = append(a, ids...)
			aRecords = append(aRecords, i)
		}
	}
	if !slices.Equal(a, wantA) {
		t.Fatalf("user a's events over its records %v, want %v", a, wantA)
	}
	if len(aRecords) < 4 || aRecords[len(aRecords)-1] != len(aRecords)-1 || got[len(got)-1][0] != "b-1" {
		t.Fatalf("records %v: want user a's (at least 3 of 30 big events and the huge one alone), then b's", got)
	}
	for _, i := range aRecords {
		r := b.Records[i]
		switch {
		case slices.Equal(got[i], []string{"a-huge"}):
			if len(r.Data) <= envelope.MaxRecordBytes {
				t.Errorf("the huge event takes %d bytes: the test needs one over the limit", len(r.Data))
			}
		case len(r.Data) > envelope.MaxRecordBytes:
			t.Errorf("record %d: %d bytes, over %d", i, len(r.Data), envelope.MaxRecordBytes)
		case i+1 < len(aRecords) && !slices.Equal(got[i+1], []string{"a-huge"}) &&
			len(r.Data)+len(b.Records[i+1].Data)/len(got[i+1]) < envelope.MaxRecordBytes:
			t.Errorf("record %d (%d bytes) was split early: the next event would have fit", i, len(r.Data))
		}
	}
}

// Options{Format: V1} writes one version 1 record per event, in request order.
func TestRecordsV1(t *testing.T) {
	p := NewParserWith(testPeps, Options{Format: V1})
	b, err := p.Parse(testApp, body(userEvent("a", "a-1"), userEvent("b", "b-2"), userEvent("a", "a-3")), testNow)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Release()
	if got := recordIDs(t, b); !slices.EqualFunc(got, [][]string{{"a-1"}, {"b-2"}, {"a-3"}}, slices.Equal) {
		t.Fatalf("records %v", got)
	}
	for i, r := range b.Records {
		rec, err := envelope.DecodeOne(r.Data)
		if err != nil || rec.V != 1 || b.Accepted[i].Record != i {
			t.Fatalf("record %d: version %d, %v: %s", i, rec.V, err, r.Data)
		}
	}
	// The same events as version 2 writes them.
	v2 := parse(t, body(userEvent("a", "a-1"), userEvent("b", "b-2"), userEvent("a", "a-3")))
	r1, r2 := eventRecords(t, b), eventRecords(t, v2)
	for i := range r1 {
		r1[i].V, r2[i].V = 0, 0
		if fmt.Sprint(r1[i]) != fmt.Sprint(r2[i]) {
			t.Errorf("event %d: v1 %+v, v2 %+v", i, r1[i], r2[i])
		}
	}
	if f, err := ParseFormat("v3"); err == nil || f != V2 {
		t.Errorf("ParseFormat(v3) = %v, %v", f, err)
	}
}

// A user object read earlier in the request (not only by the event before) is reused only when
// the event carries exactly its text: objects that share a long prefix, hold '}' in a string or
// a nested unknown member, or come back under another consent or with a member repeated, give
// each event what it gives alone.
func TestReusedUserObjectsAsAlone(t *testing.T) {
	user := func(extra string) string {
		return `{"app_user_id":"u}1","x":{"y":[1,{}]},"email":"a@example.com"` + extra + `}`
	}
	ev := func(id, user, consent string) string {
		return `{"event_id":"` + id + `","event_name":"fb_mobile_activate_app","event_time":` +
			fmt.Sprint(testNow.Unix()-60) + `,"device":{"platform":"android","os_version":"14"},"user":` + user +
			`,"consent":` + consent + `}`
	}
	yes, no := `{"ads_personalization":true}`, `{"ads_personalization":false}`
	in := `{"events":[` + strings.Join([]string{
		ev("a", user(""), yes),
		ev("b", user(`,"first_name":"Ann"`), yes),
		ev("c", user(""), yes), // a's object again
		ev("d", user(`,"first_name":"Ann"`), no),
		ev("e", user(""), `{"ads_personalization":true,"ads_personalization":false}`),
		ev("e2", user(""), `{"application_tracking_enabled":true},"consent":{"ads_personalization":true}`), // the last one counts
		ev("f", user(`,"first_name":"Ann"`), yes),
		ev("g", user(`,"first_name":"Bob"`), yes),
		ev("h", user(`,"email":"b@example.com"`), yes),
		ev("i", user(""), yes),
	}, ",") + `]}`
	p := NewParser(testPeps)
	b, err := p.Parse(testApp, in, testNow)
	if err != nil || len(b.Accepted) != 10 {
		t.Fatalf("Parse: %v %+v", err, b)
	}
	recs := eventRecords(t, b)
	checkSameAsAlone(t, p, in, b, recs)
	if recs[1].Event.User.FirstName == (identity.Hash{}) || recs[3].Event.User.FirstName != (identity.Hash{}) ||
		recs[7].Event.User.FirstName == recs[1].Event.User.FirstName || recs[8].Event.User.Email == recs[0].Event.User.Email {
		t.Fatalf("identities mixed up: %+v", recs)
	}
	if c := recs[5].Event.Consent; c.ApplicationTracking != envelope.Unset || !c.AdsPersonalization.IsTrue() {
		t.Fatalf("a repeated consent member replaces the earlier one: %+v", c)
	}
}

// An event repeating its "user" member many times (each object different and valid) is read in
// bounded memory and time, and the last object counts.
func TestManyUserMembersInOneEvent(t *testing.T) {
	ev := set(validEvent(), "user", nil)
	raw, _ := json.Marshal(ev)
	var users strings.Builder
	for i := range 5000 {
		fmt.Fprintf(&users, `"user":{"app_user_id":"u-%d"},`, i)
	}
	users.WriteString(`"user":{"app_user_id":"u-0","email":""},"user":{"app_user_id":"u-1"},"user":{"app_user_id":"last"},`)
	in := `{"events":[{` + users.String() + string(raw[1:]) + `]}`
	b := parse(t, in)
	if len(b.Accepted) != 1 {
		t.Fatalf("accepted %d, rejected %+v", len(b.Accepted), b.Rejected)
	}
	if want := testPeps.UserKey("sample-shop", identity.KindAppUserID, "last"); b.Accepted[0].UserKey != want {
		t.Fatalf("user key %s, want the last object's %s", b.Accepted[0].UserKey, want)
	}
}

// Currency codes and countries that follow each other in a request are each normalised as if
// read alone (the parser remembers the last one read).
func TestCurrencyAndCountryPerEvent(t *testing.T) {
	evs := []any{
		set(set(userEvent("a", "e-0"), "custom_data.currency", "usd"), "user.country", "US"),
		set(set(userEvent("b", "e-1"), "custom_data.currency", "eur"), "user.country", "de"),
		set(set(userEvent("c", "e-2"), "custom_data.currency", "usd"), "user.country", "US"),
		set(set(userEvent("d", "e-3"), "custom_data.currency", "xyz"), "user.country", "US"),
		set(set(userEvent("e", "e-4"), "custom_data.currency", "eur"), "user.country", "Narnia"),
		set(set(userEvent("f", "e-5"), "custom_data.currency", "EUR"), "user.country", "Germany"),
	}
	b := parse(t, body(evs...))
	if len(b.Rejected) != 2 || b.Rejected[0].Index != 3 || b.Rejected[1].Index != 4 {
		t.Fatalf("rejected %+v, want events 3 (currency) and 4 (country)", b.Rejected)
	}
	recs := eventRecords(t, b)
	us, _ := identity.CountryHash("us")
	de, _ := identity.CountryHash("de")
	for i, want := range []struct {
		cur     string
		country identity.Hash
	}{{"USD", us}, {"EUR", de}, {"USD", us}, {"EUR", de}} {
		if e := recs[i].Event; e.Custom.Currency != want.cur || e.User.Country != want.country {
			t.Errorf("accepted event %d: currency %q country %x, want %q %x", i, e.Custom.Currency, e.User.Country, want.cur, want.country)
		}
	}
}

// Member names are guessed from the order of the previous object (scanner.memberOf): a wrong
// guess, whitespace around names, escaped names and unknown members read as they would alone.
func TestMemberNamesInAnyOrderAndSpelling(t *testing.T) {
	compact := body(userEvent("a", "e-0"), userEvent("b", "e-1"), userEvent("a", "e-2"))
	want := parse(t, compact)
	if len(want.Accepted) != 3 {
		t.Fatalf("accepted %d of 3: %+v", len(want.Accepted), want.Rejected)
	}
	var v any
	if err := json.Unmarshal([]byte(compact), &v); err != nil {
		t.Fatal(err)
	}
	indented, _ := json.MarshalIndent(v, " ", "\t")
	// The second event's members in another order, one name escaped, an unknown member first.
	second := strings.Index(compact, `"event_id":"e-1"`)
	reordered := compact[:second] + `"zz":[1,{"a":2}],"event_id" : "e-1" ,` + compact[second+len(`"event_id":"e-1",`):]
	reordered = strings.Replace(reordered, `"event_name"`, `"event\u005fname"`, 1)
	reordered = strings.Replace(reordered, `"currency":"usd"`, `"currency" :"usd"`, 1)
	for _, in := range []string{string(indented), reordered, compact} {
		p := NewParser(testPeps)
		for range 2 { // the second parse starts from the first's guesses
			got, err := p.Parse(testApp, in, testNow)
			if err != nil || len(got.Records) != len(want.Records) || len(got.Accepted) != 3 {
				t.Fatalf("%v, %+v\n%s", err, got, in)
			}
			for i := range got.Records {
				if !bytes.Equal(got.Records[i].Data, want.Records[i].Data) {
					t.Fatalf("record %d:\n%s\nwant\n%s\ninput %s", i, got.Records[i].Data, want.Records[i].Data, in)
				}
			}
		}
	}
}
