package identity

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
)

func sha(s string) string { h := sha256.Sum256([]byte(s)); return hex.EncodeToString(h[:]) }

// Every example of Meta's documentation quoted in reference/meta-api.md section 3.
func TestMetaDocumentationExamples(t *testing.T) {
	tests := []struct {
		field          Field
		in, country    string
		normal, digest string
	}{
		{Email, "John_Smith@gmail.com", "", "john_smith@gmail.com", "62a14e44f765419d10fea99367361a727c12365e2520f32218d505ed9aa0f62f"},
		{Phone, "(650)555-1212", "us", "16505551212", "e323ec626319ca94ee8bff2e4c87cf613be6ea19919ed1364124e16807ab3176"},
		{FirstName, "Mary", "", "mary", "6915771be1c5aa0c886870b6951b03d7eafc121fea0e80a5ea83beb7c449f4ec"},
		{FirstName, "정", "", "정", "8fa8cd9c440be61d0151429310034083132b35975c4bea67fdd74158eb51db14"},
		{FirstName, "Valéry", "", "valéry", "08e1996b5dd49e62a4b4c010d44e4345592a863bb9f8e3976219bac29417149c"},
		{DateOfBirth, "2/16/1997", "", "19970216", "01acdbf6ec7b4f478a225f1a246e5d6767eeab1a7ffa17f025265b5b94f40f0c"},
		{Gender, "f", "", "f", "252f10c83610ebca1a059c0bae8255eba2f95be4d1d7bcfa89d7248a82d9f111"},
		{Gender, "Male", "", "m", "62c66a7a5dd70c3146618063c344e531e6d4b59e379808443ce962b3abd63c5a"},
		{Country, "United States", "", "us", "79adb2a2fce5c6ba215fe5f27f532d4e7edbac4b6a5e09e1ef3a08084a904621"},
		{Email, "mary@example.com", "", "mary@example.com", "f1904cf1a9d73a55fa5de0ac823c4403ded71afd4c3248d00bdcd0866552bb79"},
		{Phone, "15559876543", "", "15559876543", "1ef970831d7963307784fa8688e8fce101a15685d62aa765fed23f3a2c576a4e"},
	}
	n := NewNormalizer()
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := n.Normalize(tt.field, tt.in, tt.country)
			if err != nil || got != tt.normal {
				t.Fatalf("Normalize(%q) = %q, %v; want %q", tt.in, got, err, tt.normal)
			}
			h, err := n.HashField(tt.field, tt.in, tt.country)
			if err != nil || h.String() != tt.digest {
				t.Fatalf("HashField(%q) = %s, %v; want %s", tt.in, h, err, tt.digest)
			}
		})
	}
}

func TestNormalize(t *testing.T) {
	upperHash := strings.ToUpper(sha("mary@example.com"))
	tests := []struct {
		name        string
		field       Field
		in, country string
		want        string
		err         error
	}{
		// e-mail
		{"email trimmed and lowercased", Email, "  Mary.Major@Example.COM \n", "", "mary.major@example.com", nil},
		{"email plus tag kept", Email, "a+promo@x.io", "", "a+promo@x.io", nil},
		{"email non-ascii lowercased", Email, "ÉLODIE@exemple.fr", "", "élodie@exemple.fr", nil},
		{"email without at", Email, "mary.example.com", "", "", ErrNotEmail},
		{"email two ats", Email, "a@b@c.com", "", "", ErrNotEmail},
		{"email without dot in domain", Email, "mary@localhost", "", "", ErrNotEmail},
		{"email with space", Email, "ma ry@x.com", "", "", ErrNotEmail},
		{"email double dot domain", Email, "m@x..com", "", "", ErrNotEmail},
		{"email already hashed upper case", Email, upperHash, "", sha("mary@example.com"), nil},
		{"email only spaces", Email, "   ", "", "", ErrEmpty},
		// phone
		{"phone US national", Phone, "650 555 1212", "us", "16505551212", nil},
		{"phone US with 1", Phone, "1-650-555-1212", "us", "16505551212", nil},
		{"phone plus international", Phone, "+44 7911 123456", "", "447911123456", nil},
		{"phone 00 international", Phone, "0044 7911 123456", "us", "447911123456", nil},
		{"phone UK national trunk zero", Phone, "07911 123456", "gb", "447911123456", nil},
		{"phone UK already with code", Phone, "447911123456", "gb", "447911123456", nil},
		{"phone DE national", Phone, "0151 2345 6789", "de", "4915123456789", nil},
		{"phone DE number starting like its code", Phone, "0491 23456", "de", "4949123456", nil},
		{"phone FR plus with trunk in brackets", Phone, "+33 (0)6 12 34 56 78", "", "33612345678", nil},
		{"phone IN", Phone, "+91 98765 43210", "in", "919876543210", nil},
		{"phone letters dropped", Phone, "tel: +1 (650) 555-1212 ext", "", "16505551212", nil},
		{"phone no country keeps digits", Phone, "6505551212", "", "6505551212", nil},
		{"phone too short", Phone, "12345", "", "", ErrPhoneDigits},
		{"phone too long", Phone, "+1234567890123456", "", "", ErrPhoneDigits},
		{"phone letters only is empty", Phone, "n/a", "", "", ErrEmpty},
		// names
		{"name accents kept", LastName, "Müller-Lüdenscheidt", "", "müllerlüdenscheidt", nil},
		{"name decomposed accent composed (NFC)", FirstName, "Vale\u0301ry", "", "valéry", nil},
		{"name apostrophe and space dropped", LastName, "O'Brien Smith", "", "obriensmith", nil},
		{"name cyrillic lowercased", FirstName, "Анна", "", "анна", nil},
		{"name japanese kept", LastName, "山田", "", "山田", nil},
		{"name greek final sigma", LastName, "ΣΟΦΟΚΛΗΣ", "", "σοφοκλησ", nil},
		{"name punctuation only is empty", FirstName, "--.", "", "", ErrEmpty},
		// gender
		{"gender female word", Gender, "Female", "", "f", nil},
		{"gender M", Gender, " M ", "", "m", nil},
		{"gender unknown", Gender, "x", "", "", ErrGender},
		// date of birth
		{"dob iso", DateOfBirth, "1997-02-16", "", "19970216", nil},
		{"dob compact", DateOfBirth, "19970216", "", "19970216", nil},
		{"dob rfc3339", DateOfBirth, "1997-02-16T00:00:00Z", "", "19970216", nil},
		{"dob european dots", DateOfBirth, "16.02.1997", "", "19970216", nil},
		{"dob day first when >12", DateOfBirth, "16/02/1997", "", "19970216", nil},
		{"dob US month first", DateOfBirth, "02/03/1997", "", "19970203", nil},
		{"dob impossible day", DateOfBirth, "1997-02-30", "", "", ErrDateOfBirth},
		{"dob future", DateOfBirth, "2999-01-01", "", "", ErrDateOfBirth},
		{"dob words", DateOfBirth, "16 Feb 1997", "", "", ErrDateOfBirth},
		{"dob leap day", DateOfBirth, "2000-02-29", "", "20000229", nil},
		// city, state, zip
		{"city spaces and accents", City, "São Paulo", "", "sãopaulo", nil},
		{"city punctuation", City, "Winston-Salem, NC", "", "winstonsalemnc", nil},
		{"state US name", State, "California", "us", "ca", nil},
		{"state US code", State, "NY", "us", "ny", nil},
		{"state US name without country", State, "new york", "", "ny", nil},
		{"state US unknown", State, "Bavaria", "us", "", ErrUSState},
		{"state elsewhere", State, "Île-de-France", "fr", "îledefrance", nil},
		{"zip US plus4", Zip, "94025-1234", "us", "94025", nil},
		{"zip US plus4 without country", Zip, "94025-1234", "", "94025", nil},
		{"zip US invalid", Zip, "9402A", "us", "", ErrUSZip},
		{"zip UK", Zip, "SW1A 1AA", "gb", "sw1a1aa", nil},
		// country
		{"country alpha2 upper", Country, "DE", "", "de", nil},
		{"country alpha3", Country, "GBR", "", "gb", nil},
		{"country endonym", Country, "Deutschland", "", "de", nil},
		{"country accents", Country, "Côte d'Ivoire", "", "ci", nil},
		{"country alias", Country, "UK", "", "gb", nil},
		{"country unknown", Country, "Atlantis", "", "", ErrCountry},
		// external id
		{"external id trimmed, case kept", ExternalID, " User-42 ", "", "User-42", nil},
		{"external id control characters", ExternalID, "u\x01", "", "", ErrControlChars},
		// limits
		{"too long", City, strings.Repeat("a", 300), "", "", ErrTooLong},
		{"invalid utf8", LastName, "ab\xffc", "", "", ErrInvalidUTF8},
	}
	n := NewNormalizer()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := n.Normalize(tt.field, tt.in, tt.country)
			if !errors.Is(err, tt.err) {
				t.Fatalf("Normalize(%q) error = %v, want %v", tt.in, err, tt.err)
			}
			if got != tt.want {
				t.Fatalf("Normalize(%q) = %q, want %q", tt.in, got, tt.want)
			}
			h, herr := n.HashField(tt.field, tt.in, tt.country)
			if !errors.Is(herr, tt.err) {
				t.Fatalf("HashField(%q) error = %v, want %v", tt.in, herr, tt.err)
			}
			if tt.err == nil {
				want := sha(tt.want)
				if _, isHash := ParseHash(tt.want); isHash {
					want = tt.want
				}
				if h.String() != want {
					t.Fatalf("HashField(%q) = %s, want sha256(%q)", tt.in, h, tt.want)
				}
			}
		})
	}
}

func TestNeverDoubleHashesOrTakesNonHexAsHash(t *testing.T) {
	n := NewNormalizer()
	digest := sha("john_smith@gmail.com")
	h, err := n.HashField(Email, strings.ToUpper(digest), "")
	if err != nil || h.String() != digest {
		t.Fatalf("upper-case digest: got %s, %v", h, err)
	}
	// 64 alphanumeric characters that are not hex are not a hash (Meta's Java SDK gets this wrong).
	notHex := strings.Repeat("z", 64)
	h, err = n.HashField(LastName, notHex, "")
	if err != nil || h.String() != sha(notHex) {
		t.Fatalf("non-hex 64 chars: got %s, %v; want it hashed", h, err)
	}
}

func TestPseudonymizer(t *testing.T) {
	if _, err := NewPseudonymizer([]byte("short")); err == nil {
		t.Fatal("short pepper accepted")
	}
	p, err := NewPseudonymizer([]byte("0123456789abcdef-pepper"))
	if err != nil {
		t.Fatal(err)
	}
	q, _ := NewPseudonymizer([]byte("another pepper of enough length"))
	k := p.UserKey("shop", KindAppUserID, "u-123")
	if len(k) != UserKeyLen || strings.ContainsAny(k, "+/=") {
		t.Fatalf("key %q: want %d base64url characters", k, UserKeyLen)
	}
	for name, other := range map[string]string{
		"same inputs give the same key":  p.UserKey("shop", KindAppUserID, "u-123"),
		"another app":                    p.UserKey("shop2", KindAppUserID, "u-123"),
		"another kind, same text":        p.UserKey("shop", KindAnonID, "u-123"),
		"another pepper":                 q.UserKey("shop", KindAppUserID, "u-123"),
		"no ambiguity across separators": p.UserKey("shop\x00app_user_id", KindAppUserID, "u-123"),
	} {
		if same := other == k; same != (name == "same inputs give the same key") {
			t.Errorf("%s: key equality = %v", name, same)
		}
	}
	if strings.Contains(k, "u-123") {
		t.Fatal("key contains the identifier")
	}
	// The derivation itself (keys are stored: it must never change), through both doors.
	mac := hmac.New(sha256.New, []byte("0123456789abcdef-pepper"))
	mac.Write([]byte("shop\x00app_user_id\x00u-123"))
	want := base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
	keyer := p.Keyer()
	for i := range 3 { // a Keyer's state is reused from key to key
		if got := keyer.UserKey("shop", KindAppUserID, "u-123"); k != want || got != want {
			t.Fatalf("round %d: UserKey %q, Keyer.UserKey %q, want HMAC-SHA256 %q", i, k, got, want)
		}
		keyer.UserKey("other", KindAnonID, "x")
	}
}
