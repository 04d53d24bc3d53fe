package envelope

import (
	"crypto/sha256"
	"encoding/base64"
	"strconv"
	"testing"

	"github.com/retarget-dev/retarget/shared/domain/identity"
)

// The table-driven digest writer writes exactly what encoding/base64 writes.
func TestAppendDigestB64MatchesEncodingBase64(t *testing.T) {
	digests := []identity.Hash{{}, {0xff, 0xff, 0xff}}
	var all identity.Hash
	for i := range all {
		all[i] = 0xff
	}
	digests = append(digests, all)
	for i := range 1000 {
		digests = append(digests, sha256.Sum256([]byte(strconv.Itoa(i))))
	}
	for _, h := range digests {
		got := appendDigestB64([]byte("x"), &h)
		if want := "x" + base64.RawURLEncoding.EncodeToString(h[:]); string(got) != want {
			t.Fatalf("digest %x:\n got %s\nwant %s", h, got, want)
		}
	}
}

// AppendHeadOf and AppendEventOf write what AppendGroup writes for the same events, when each
// event's user and device are passed apart (shared by pointer or equal by value).
func TestAppendOfMatchesAppendGroup(t *testing.T) {
	a, b, c := fullRecord(), fullRecord(), fullRecord()
	b.Event.ID = "9f1c-2"
	c.Event.ID, c.Event.User.Email, c.Event.Device = "9f1c-3", identity.Hash{}, Device{}
	want := AppendGroup(nil, []Record{*a, *b, *c})
	user, device := a.Event.User, a.Event.Device
	head := Head{App: a.App, UserKey: a.UserKey, ReceivedAt: a.ReceivedAt, Server: a.Event.Server, User: &user, Device: &device}
	got := AppendHeadOf(nil, &head)
	got = AppendEventOf(got, &head, &a.Event, &user, &device, true)
	userCopy := user
	got = AppendEventOf(got, &head, &b.Event, &userCopy, &device, false)
	got = AppendEventOf(got, &head, &c.Event, &c.Event.User, nil, false)
	got = CloseGroup(got)
	if string(got) != string(want) {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
}
