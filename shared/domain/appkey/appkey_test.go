package appkey

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"
)

func ring(t *testing.T) *Ring {
	t.Helper()
	var r Ring
	for app, key := range map[string]string{"shop": "shop-key-1", "game": "game-key-1"} {
		if err := r.AddKey(app, key); err != nil {
			t.Fatal(err)
		}
	}
	return &r
}

func TestRingApp(t *testing.T) {
	r := ring(t)
	for key, want := range map[string]string{"shop-key-1": "shop", "game-key-1": "game", "": "", "shop-key-2": "", "SHOP-KEY-1": "", "shop-key-1 ": "", strings.Repeat("k", MaxKeyBytes+1): ""} {
		got, ok := r.App(key)
		if got != want || ok != (want != "") {
			t.Errorf("App(%.20q) = %q %v, want %q", key, got, ok, want)
		}
	}
	var zero Ring
	if _, ok := zero.App("shop-key-1"); ok {
		t.Error("the zero Ring accepted a key")
	}
	var nilRing *Ring
	if _, ok := nilRing.App("shop-key-1"); ok {
		t.Error("a nil Ring accepted a key")
	}
}

// Every accepted digest is compared on every lookup, the matching one first or not: no early
// exit whose timing would tell how far down the list a key matched.
func TestRingComparesEveryDigest(t *testing.T) {
	var r Ring
	for i, key := range []string{"a-key", "b-key", "c-key", "d-key"} {
		if err := r.AddKey(string(rune('a'+i)), key); err != nil {
			t.Fatal(err)
		}
	}
	calls := 0
	orig := compare
	compare = func(x, y []byte) int { calls++; return orig(x, y) }
	defer func() { compare = orig }()
	for _, key := range []string{"a-key", "d-key", "unknown"} {
		calls = 0
		r.App(key)
		if calls != r.Len() {
			t.Errorf("App(%q) compared %d digests, want all %d", key, calls, r.Len())
		}
	}
}

func TestRingAdd(t *testing.T) {
	r := ring(t)
	if err := r.AddKey("shop", "shop-key-1"); err != nil {
		t.Errorf("the same key again for the same app: %v", err)
	}
	if err := r.AddKey("game", "shop-key-1"); err == nil || !strings.Contains(err.Error(), "apps shop and game accept the same key") {
		t.Errorf("one key for two apps: %v", err)
	}
	if err := r.AddKey("game", ""); err == nil {
		t.Error("empty key accepted")
	}
	if err := r.Add("", Sum("x")); err == nil {
		t.Error("empty app accepted")
	}
	if r.Len() != 2 {
		t.Errorf("Len %d after refused additions, want 2", r.Len())
	}
}

func TestParseSecret(t *testing.T) {
	other := sha256.Sum256([]byte("next-key"))
	otherHex := hex.EncodeToString(other[:])
	got, err := ParseSecret(`{"key": "current-key", "sha256": ["` + otherHex + `"]}`)
	if err != nil || len(got) != 2 || got[0] != Sum("current-key") || got[1] != Digest(other) {
		t.Fatalf("ParseSecret = %x, %v", got, err)
	}
	if got, err := ParseSecret(`{"sha256": ["` + strings.ToUpper(otherHex) + `"]}`); err != nil || len(got) != 1 || got[0] != Digest(other) {
		t.Errorf("digest only: %x, %v", got, err)
	}
	const secretValue = "s3cr3t-value-never-quoted"
	for in, want := range map[string]string{
		"":                                   "want a JSON object",
		secretValue:                          "want a JSON object",
		`{}`:                                 `neither "key" nor "sha256"`,
		`{"key": ""}`:                        `neither "key" nor "sha256"`,
		`{"sha256": ["abc"]}`:                "sha256[0] is not 64 hex digits",
		`{"sha256": ["` + otherHex + `00"]}`: "sha256[0] is not 64 hex digits",
		`{"key": "` + secretValue + `", "value": 1}`:                          "want a JSON object",
		`{"key": "` + strings.Repeat("k", MaxKeyBytes+1) + `"}`:               "longer than",
		`{"key": "x", "sha256": ["` + otherHex + `", "` + secretValue + `"]}`: "sha256[1]",
	} {
		_, err := ParseSecret(in)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseSecret(%.30q) = %v, want an error with %q", in, err, want)
			continue
		}
		if strings.Contains(err.Error(), secretValue) {
			t.Errorf("error %q quotes the secret", err)
		}
	}
}
