package envelope

import (
	"crypto/sha256"
	"encoding/base64"
	"math"
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
	// The device encoded once and passed as DeviceJSON gives the same head.
	enc := Head{App: a.App, UserKey: a.UserKey, ReceivedAt: a.ReceivedAt, Server: a.Event.Server, User: &user, Device: &device,
		DeviceJSON: AppendDeviceJSON([]byte{}, &device)}
	if got, want := AppendHeadOf(nil, &enc), AppendHeadOf(nil, &head); string(got) != string(want) {
		t.Fatalf("with DeviceJSON\n%s\nwithout\n%s", got, want)
	}
}

// The short-decimal path writes exactly what strconv writes (as encoding/json does).
func TestAppendFloatMatchesStrconv(t *testing.T) {
	want := func(f float64) string {
		abs := f
		if abs < 0 {
			abs = -abs
		}
		if abs != 0 && (abs < 1e-6 || abs >= 1e21) {
			return strconv.FormatFloat(f, 'e', -1, 64)
		}
		return strconv.FormatFloat(f, 'f', -1, 64)
	}
	vals := []float64{12.5, 0.1, 0.2, 0.3, 1.005, 2.675, 0.000001, 0.0000015, 1e-7, 123456.789, 999999999.999999,
		0.1 + 0.2, 1.0 / 3, 3.14159, 1e15 + 0.5, 4503599627370495.5, 99.99, 19.99, 0.07, -12.5, -0.000001, 5e-324, 1e300}
	r := uint64(1)
	for range 200000 {
		r = r*6364136223846793005 + 1442695040888963407
		k := r >> 61 % 7
		m := float64(r>>11%1_000_000_000_000) / pow10[k]
		if r&1 == 1 {
			m = -m
		}
		vals = append(vals, m, math.Float64frombits(r>>1), math.Nextafter(m, 0), math.Nextafter(m, 1e300))
	}
	for _, f := range vals {
		if math.IsNaN(f) || math.IsInf(f, 0) {
			continue
		}
		if got, w := string(appendFloat(nil, f)), want(f); got != w {
			t.Fatalf("%v (%x): got %s, want %s", f, math.Float64bits(f), got, w)
		}
	}
}
