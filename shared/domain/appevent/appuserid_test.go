package appevent

import (
	"bytes"
	"testing"

	"github.com/retarget-dev/retarget/shared/domain/envelope"
)

// Only the records of an app that shares its user ids (share_app_user_id) carry the raw
// app_user_id; every other app's records keep it hashed only, whatever else they carry.
func TestRawAppUserIDOnlyForAppsSharingIt(t *testing.T) {
	sharing := *testApp
	sharing.ShareAppUserID = true
	ev := set(validEvent(), "user.app_user_id", "player-9001")
	withoutConsent := set(set(validEvent(), "user.app_user_id", "player-9002"), "consent.ads_personalization", false)
	anonOnly := set(set(validEvent(), "user.app_user_id", nil), "user.anon_id", "anon-1")
	for _, tc := range []struct {
		name string
		app  bool
		ev   map[string]any
		want string
	}{
		{"sharing app", true, ev, "player-9001"},
		{"other app", false, ev, ""},
		{"sharing app, no consent", true, withoutConsent, ""},
		{"sharing app, no app user id", true, anonOnly, ""},
	} {
		app := testApp
		if tc.app {
			app = &sharing
		}
		b, err := NewParser(testPeps).Parse(app, body(tc.ev), testNow)
		if err != nil || len(b.Accepted) != 1 {
			t.Fatalf("%s: %v %+v", tc.name, err, b.Rejected)
		}
		rec, err := envelope.DecodeOne(b.Records[0].Data)
		if err != nil {
			t.Fatal(err)
		}
		if rec.Event.User.AppUserID != tc.want {
			t.Errorf("%s: app_user_id %q; want %q", tc.name, rec.Event.User.AppUserID, tc.want)
		}
		if tc.want == "" && (bytes.Contains(b.Records[0].Data, []byte("player-")) || bytes.Contains(b.Records[0].Data, []byte(`"app_user_id":`))) {
			t.Errorf("%s: the record carries the raw id: %s", tc.name, b.Records[0].Data)
		}
	}
}
