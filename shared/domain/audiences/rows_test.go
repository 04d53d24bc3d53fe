package audiences

import (
	"crypto/sha256"
	"encoding/hex"
	"reflect"
	"testing"

	"github.com/retarget-dev/retarget/shared/domain/appconfig"
	"github.com/retarget-dev/retarget/shared/domain/identity"
	"github.com/retarget-dev/retarget/shared/domain/segments"
)

// Hashes from Meta's documentation (reference/meta-api.md section 3).
const (
	maryEmailHash = "f1904cf1a9d73a55fa5de0ac823c4403ded71afd4c3248d00bdcd0866552bb79" // mary@example.com
	maryPhoneHash = "1ef970831d7963307784fa8688e8fce101a15685d62aa765fed23f3a2c576a4e" // 15559876543
	userKey       = "Qm9vdHN0cmFwLXVzZXIta2V5LWZvci10ZXN0cy0xMjM"                      // a 43-character user key
	idfa          = "6D92078A-8246-4BA4-AE5B-76104861E7DC"
)

// hashAtIngest hashes a raw value the way the ingest API does before it is stored.
func hashAtIngest(t *testing.T, f identity.Field, raw, country string) identity.Hash {
	t.Helper()
	h, err := identity.NewNormalizer().HashField(f, raw, country)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func consented() segments.State {
	return segments.State{FirstSeen: 1, LastSeen: 1, Consent: segments.Consent{At: 1}}
}

func TestRowCells(t *testing.T) {
	a := sample(t)
	cart, _ := a.Audience("cart_abandoner") // EXTERN_ID, EMAIL, PHONE, MADID
	vip, _ := a.Audience("vip")             // ... + LOOKALIKE_VALUE

	mary := consented()
	mary.Email = segments.HashedID{Hash: hashAtIngest(t, identity.Email, "  Mary@Example.com", ""), At: 1}
	mary.Phone = segments.HashedID{Hash: hashAtIngest(t, identity.Phone, "+1 (555) 987-6543", ""), At: 1}
	mary.MADID = segments.AdvertisingID{ID: idfa, At: 1}
	mary.ValueMicros = 250_000_000

	denied := mary
	denied.MADID = segments.AdvertisingID{At: 2} // the latest event denied tracking

	emailOnly := consented()
	emailOnly.Email = mary.Email
	emailOnly.ValueMicros = 12_500_000

	madidOnly := consented()
	madidOnly.MADID = segments.AdvertisingID{ID: idfa, At: 1}

	tests := []struct {
		name string
		au   *Audience
		st   segments.State
		want []string
	}{
		{"every identifier", cart, mary, []string{userKey, maryEmailHash, maryPhoneHash, "6d92078a-8246-4ba4-ae5b-76104861e7dc"}},
		{"value-based", vip, mary, []string{userKey, maryEmailHash, maryPhoneHash, "6d92078a-8246-4ba4-ae5b-76104861e7dc", "250"}},
		{"tracking denied: no MADID", cart, denied, []string{userKey, maryEmailHash, maryPhoneHash, ""}},
		{"unknown cells empty, fractional value", vip, emailOnly, []string{userKey, maryEmailHash, "", "", "12.5"}},
		{"MADID alone matches", cart, madidOnly, []string{userKey, "", "", "6d92078a-8246-4ba4-ae5b-76104861e7dc"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := tt.au.Row(userKey, &tt.st)
			if !ok || !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("Row = %q, %v; want %q", got, ok, tt.want)
			}
			if len(got) != len(tt.au.Schema()) {
				t.Fatalf("%d cells for schema %v", len(got), tt.au.Schema())
			}
		})
	}
}

func TestRowNeverHashesTwice(t *testing.T) {
	cart, _ := sample(t).Audience("cart_abandoner")
	st := consented()
	h, _ := identity.ParseHash(maryEmailHash)
	st.Email = segments.HashedID{Hash: h, At: 1}
	row, _ := cart.Row(userKey, &st)
	twice := sha256.Sum256([]byte(maryEmailHash))
	if row[1] != maryEmailHash || row[1] == hex.EncodeToString(twice[:]) {
		t.Fatalf("EMAIL cell %q", row[1])
	}
	if row[0] != userKey {
		t.Fatalf("EXTERN_ID cell %q: the user key is sent as is", row[0])
	}
}

func TestRowSkipsUnmatchableUsers(t *testing.T) {
	a := sample(t)
	cart, _ := a.Audience("cart_abandoner")
	emailOnly, err := Compile(app([]appconfig.Audience{{Segment: "a", Name: "A", Create: true, Columns: []string{"EXTERN_ID", "EMAIL"}}}, nil, appconfig.AudienceSync{}))
	if err != nil {
		t.Fatal(err)
	}
	emailAudience, _ := emailOnly.Audience("a")

	phone := hashAtIngest(t, identity.Phone, "15559876543", "")
	withPhone := consented()
	withPhone.Phone = segments.HashedID{Hash: phone, At: 1}
	deniedOnly := consented()
	deniedOnly.MADID = segments.AdvertisingID{At: 5}
	withdrawn := withPhone
	withdrawn.Consent = segments.Consent{At: 2, Withdrawn: true}
	valueOnly := consented()
	valueOnly.ValueMicros = 500_000_000

	tests := []struct {
		name string
		au   *Audience
		key  string
		st   *segments.State
	}{
		{"no identifier at all", cart, userKey, new(consented())},
		{"advertising id denied, nothing else", cart, userKey, &deniedOnly},
		{"value but no identifier", cart, userKey, &valueOnly},
		{"identifier outside the audience's columns", emailAudience, userKey, &withPhone},
		{"consent withdrawn", cart, userKey, &withdrawn},
		{"no user key", cart, "", &withPhone},
		{"no state", cart, userKey, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if row, ok := tt.au.Row(tt.key, tt.st); ok || row != nil {
				t.Fatalf("Row = %q, %v; want skipped", row, ok)
			}
		})
	}
	if _, ok := cart.Row(userKey, &withPhone); !ok {
		t.Fatal("a phone alone is matchable")
	}
}

func TestRemovalRow(t *testing.T) {
	vip, _ := sample(t).Audience("vip")
	withdrawn := consented()
	withdrawn.Consent = segments.Consent{At: 9, Withdrawn: true}
	withdrawn.Email = segments.HashedID{Hash: hashAtIngest(t, identity.Email, "mary@example.com", ""), At: 1}
	withdrawn.MADID = segments.AdvertisingID{At: 9}
	withdrawn.ValueMicros = 300_000_000

	tests := []struct {
		name string
		st   *segments.State
		want []string
	}{
		{"consent withdrawn: identifiers kept, denied MADID not", &withdrawn, []string{userKey, maryEmailHash, "", "", "300"}},
		{"erased user: EXTERN_ID alone", nil, []string{userKey, "", "", "", "0"}},
		{"no identifier: EXTERN_ID still matches the add", new(consented()), []string{userKey, "", "", "", "0"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := vip.RemovalRow(userKey, tt.st)
			if !ok || !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("RemovalRow = %q, %v; want %q", got, ok, tt.want)
			}
		})
	}
	if _, ok := vip.RemovalRow("", &withdrawn); ok {
		t.Fatal("a removal without user key")
	}
}

func TestFormatValue(t *testing.T) {
	tests := []struct {
		micros int64
		want   string
	}{
		{250_000_000, "250"},
		{12_500_000, "12.5"},
		{13_327_200, "13.3272"},
		{1, "0.000001"},
		{999_999, "0.999999"},
		{100_050_000, "100.05"},
		{0, "0"},
		{-4_000_000, "0"},
		{9_223_372_036_854_775_807, "9223372036854.775807"},
	}
	for _, tt := range tests {
		if got := FormatValue(tt.micros); got != tt.want {
			t.Errorf("FormatValue(%d) = %q, want %q", tt.micros, got, tt.want)
		}
	}
}
