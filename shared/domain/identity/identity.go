// Package identity turns the personal data an app sends into what may leave the ingest function:
// Meta's normalised-then-SHA-256 form for every field Meta wants hashed, validated device ids,
// and a pseudonymous user key (keyed HMAC) that stands for the user everywhere downstream.
//
// The rules follow Meta's customer-information parameters, field by field (see the project's
// reference/meta-api.md, section 3): trim, lowercase, strip what Meta strips, Unicode NFC, then
// SHA-256 as lowercase hex. A value that already is 64 hex characters is taken as a hash and only
// lowercased (never hashed twice); a value that is empty after normalisation is omitted.
package identity

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"hash"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// Field is a user field Meta wants normalised and hashed.
type Field uint8

// The hashed fields, named after their CAPI keys.
const (
	Email       Field = iota // em
	Phone                    // ph
	FirstName                // fn
	LastName                 // ln
	Gender                   // ge
	DateOfBirth              // db
	City                     // ct
	State                    // st
	Zip                      // zp
	Country                  // country
	ExternalID               // external_id (the app's own user id, hashed)
	numFields
)

// NumFields is the number of hashed fields.
const NumFields = int(numFields)

// Error is a validation failure of one field. Code is a short stable identifier fit for metric
// dimensions; Reason is the message shown to the client.
type Error struct {
	Code   string
	Reason string
}

func (e *Error) Error() string { return e.Reason }

// ErrEmpty reports a value that is empty after normalisation; callers omit the field.
var ErrEmpty = errors.New("empty after normalisation")

// Validation errors. They are values so that reporting one costs no allocation.
var (
	ErrNotEmail     = &Error{"invalid_email", "not an email address"}
	ErrPhoneDigits  = &Error{"invalid_phone", "not a phone number: expected 7 to 15 digits including the country code"}
	ErrGender       = &Error{"invalid_gender", "must be f or m (female/male also accepted)"}
	ErrDateOfBirth  = &Error{"invalid_date_of_birth", "not a date of birth: use YYYY-MM-DD (YYYYMMDD, MM/DD/YYYY and DD.MM.YYYY are accepted)"}
	ErrCountry      = &Error{"invalid_country", "unknown country: use an ISO 3166-1 alpha-2 code such as \"us\""}
	ErrUSState      = &Error{"invalid_state", "not a US state: use the 2-letter code such as \"ca\""}
	ErrUSZip        = &Error{"invalid_zip", "not a US ZIP code: expected 5 digits (ZIP+4 accepted)"}
	ErrTooLong      = &Error{"too_long", "too long: at most 256 characters"}
	ErrInvalidUTF8  = &Error{"invalid_utf8", "not valid UTF-8"}
	ErrControlChars = &Error{"invalid_characters", "contains control characters"}
)

// maxFieldBytes bounds every raw personal-data value; longer values are not names or addresses.
const maxFieldBytes = 256

// Hash is a SHA-256 digest. The zero value means "absent".
type Hash [sha256.Size]byte

// IsZero reports whether h is absent.
func (h Hash) IsZero() bool { return h == Hash{} }

// AppendHex appends h as 64 lowercase hex characters.
func (h *Hash) AppendHex(dst []byte) []byte { return hex.AppendEncode(dst, h[:]) }

// String returns h as lowercase hex.
func (h Hash) String() string { return hex.EncodeToString(h[:]) }

// ParseHash reads a 64-character hex digest (either case).
func ParseHash(s string) (Hash, bool) {
	var h Hash
	if len(s) != 2*sha256.Size {
		return h, false
	}
	if _, err := hex.Decode(h[:], []byte(s)); err != nil {
		return Hash{}, false
	}
	return h, true
}

// Normalizer normalises and hashes user fields. It owns scratch space and is not safe for
// concurrent use: use one per goroutine (the ingest function uses one per request).
type Normalizer struct {
	scratch []byte
	nfc     []byte
	sha     hash.Hash // reset for every field: sha256.Sum256 sets a digest up afresh each call
	sum     Hash
}

// NewNormalizer returns a Normalizer with scratch space for typical values.
func NewNormalizer() *Normalizer {
	return &Normalizer{scratch: make([]byte, 0, 512), nfc: make([]byte, 0, 512), sha: sha256.New()}
}

// HashField normalises raw as field f and returns its SHA-256. country is the user's country as
// a lowercase ISO alpha-2 code or "" (phone numbers, states and ZIP codes depend on it).
// It returns ErrEmpty when nothing is left after normalisation, or an *Error.
func (n *Normalizer) HashField(f Field, raw, country string) (Hash, error) {
	s := trimSpace(raw)
	if s == "" {
		return Hash{}, ErrEmpty
	}
	if len(s) > maxFieldBytes {
		return Hash{}, ErrTooLong
	}
	if h, ok := ParseHash(s); ok {
		return h, nil
	}
	if !utf8.ValidString(s) {
		return Hash{}, ErrInvalidUTF8
	}
	if f == Gender {
		g, err := NormalizeGender(s)
		if err != nil {
			return Hash{}, err
		}
		return genderHashes[g], nil
	}
	if f == Country {
		c, err := NormalizeCountry(s)
		if err != nil {
			return Hash{}, err
		}
		return codeHashes[c], nil
	}
	if f == State && (country == "us" || country == "") && len(s) <= 64 {
		var buf [64]byte
		if code, ok := usStates[string(foldLetters(buf[:0], s))]; ok {
			return codeHashes[code], nil // what normalizeState gives, hashed once at start-up
		}
	}
	b, err := n.normalize(f, s, country)
	if err != nil {
		return Hash{}, err
	}
	if len(b) == 0 {
		return Hash{}, ErrEmpty
	}
	if n.sha == nil { // a zero Normalizer
		n.sha = sha256.New()
	}
	n.sha.Reset()
	n.sha.Write(b)
	return Hash(n.sha.Sum(n.sum[:0])), nil
}

// Normalize returns the normalised form of raw as field f (before hashing), for tests, docs and
// tools. Already-hashed input is returned lowercased.
func (n *Normalizer) Normalize(f Field, raw, country string) (string, error) {
	s := trimSpace(raw)
	if s == "" {
		return "", ErrEmpty
	}
	if len(s) > maxFieldBytes {
		return "", ErrTooLong
	}
	if _, ok := ParseHash(s); ok {
		return string(lowerASCII(nil, s)), nil
	}
	if !utf8.ValidString(s) {
		return "", ErrInvalidUTF8
	}
	switch f {
	case Gender:
		g, err := NormalizeGender(s)
		if err != nil {
			return "", err
		}
		return string(g), nil
	case Country:
		return NormalizeCountry(s)
	}
	b, err := n.normalize(f, s, country)
	if err != nil {
		return "", err
	}
	if len(b) == 0 {
		return "", ErrEmpty
	}
	return string(b), nil
}

func (n *Normalizer) normalize(f Field, s, country string) ([]byte, error) {
	b := n.scratch[:0]
	var err error
	switch f {
	case Email:
		b, err = normalizeEmail(b, s)
	case Phone:
		b, err = normalizePhone(b, s, country)
	case FirstName, LastName:
		b = keepLetters(b, s, true)
	case DateOfBirth:
		b, err = normalizeDate(b, s)
	case City:
		b = keepLetters(b, s, false)
	case State:
		b, err = normalizeState(b, s, country)
	case Zip:
		b, err = normalizeZip(b, s, country)
	case ExternalID:
		if hasControl(s) {
			return nil, ErrControlChars
		}
		b = append(b, s...)
	}
	n.scratch = b[:0]
	if err != nil {
		return nil, err
	}
	return n.toNFC(b), nil
}

// toNFC returns b in Unicode normalisation form C. ASCII (the common case) is returned as is.
func (n *Normalizer) toNFC(b []byte) []byte {
	for _, c := range b {
		if c >= utf8.RuneSelf {
			if norm.NFC.IsNormal(b) {
				return b
			}
			n.nfc = norm.NFC.Append(n.nfc[:0], b...)
			return n.nfc
		}
	}
	return b
}

func normalizeEmail(b []byte, s string) ([]byte, error) {
	at := -1
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '@':
			if at >= 0 {
				return nil, ErrNotEmail
			}
			at = i
		case c <= ' ' || c == 0x7f || c == '"' || c == '(' || c == ')' || c == ',' || c == ':' || c == ';' || c == '<' || c == '>' || c == '[' || c == '\\' || c == ']':
			return nil, ErrNotEmail
		}
	}
	if at <= 0 || at == len(s)-1 || len(s) > 254 {
		return nil, ErrNotEmail
	}
	domain := s[at+1:]
	dot := false
	for i := 0; i < len(domain); i++ {
		if domain[i] == '.' {
			if i == 0 || i == len(domain)-1 || domain[i-1] == '.' {
				return nil, ErrNotEmail
			}
			dot = true
		}
	}
	if !dot || domain[0] == '-' || domain[len(domain)-1] == '-' {
		return nil, ErrNotEmail
	}
	return lowerUnicode(b, s), nil
}

// normalizePhone keeps digits and makes sure the number carries its country calling code.
// "+" or "00" marks an international number. A national number (no prefix) loses its trunk
// zeros and gets the calling code of the user's country, unless it already starts with that code
// and is long enough to hold it (national significant numbers are 8+ digits in most plans).
func normalizePhone(b []byte, s, country string) ([]byte, error) {
	international := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '+' {
			international = true
			break
		}
		if c >= '0' && c <= '9' {
			international = c == '0' && i+1 < len(s) && s[i+1] == '0'
			break
		}
	}
	start := len(b)
	for i := 0; i < len(s); i++ {
		if international && s[i] == '(' && i+2 < len(s) && s[i+1] == '0' && s[i+2] == ')' {
			i += 2 // "+33 (0)6...": the bracketed trunk zero is not dialled from abroad
			continue
		}
		if c := s[i]; c >= '0' && c <= '9' {
			if len(b) == start && c == '0' {
				continue // leading zeros: international "00" or a national trunk prefix
			}
			b = append(b, c)
		}
	}
	digits := len(b) - start
	if digits == 0 {
		return b, nil // nothing left: omitted
	}
	if !international && country != "" {
		if cc, ok := countryCodes[country]; ok {
			nat := b[start:]
			hasCode := len(nat) >= len(cc)+8 && string(nat[:len(cc)]) == cc
			if cc == "1" { // NANP: 10-digit national numbers, 11 with the leading 1
				hasCode = len(nat) == 11 && nat[0] == '1'
			}
			if !hasCode {
				b = append(b, cc...)
				copy(b[start+len(cc):], b[start:len(b)-len(cc)])
				copy(b[start:], cc)
				digits += len(cc)
			}
		}
	}
	if digits < 7 || digits > 15 {
		return nil, ErrPhoneDigits
	}
	return b, nil
}

// keepLetters lowercases s and keeps only letters (any script) and combining marks, plus digits
// when withDigits is set. Spaces and punctuation are dropped.
func keepLetters(b []byte, s string, withDigits bool) []byte {
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			i++
			switch {
			case c >= 'a' && c <= 'z':
				b = append(b, c)
			case c >= 'A' && c <= 'Z':
				b = append(b, c+'a'-'A')
			case withDigits && c >= '0' && c <= '9':
				b = append(b, c)
			}
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		i += size
		if unicode.IsLetter(r) || unicode.IsMark(r) || (withDigits && unicode.IsDigit(r)) {
			b = utf8.AppendRune(b, unicode.ToLower(r))
		}
	}
	return b
}

// NormalizeGender maps f/m/female/male (any case) to 'f' or 'm'.
func NormalizeGender(s string) (byte, error) {
	var buf [8]byte
	if len(s) > len(buf) {
		return 0, ErrGender
	}
	switch string(lowerASCII(buf[:0], s)) {
	case "f", "female", "w", "woman":
		return 'f', nil
	case "m", "male", "man":
		return 'm', nil
	}
	return 0, ErrGender
}

var genderHashes = map[byte]Hash{'f': sha256.Sum256([]byte("f")), 'm': sha256.Sum256([]byte("m"))}

// codeHashes holds the digest of every country and US state code, computed once: a user's
// country and state are one of a few hundred values.
var codeHashes = func() map[string]Hash {
	m := map[string]Hash{}
	for _, table := range []map[string]string{countryNames, usStates} {
		for _, code := range table {
			if _, ok := m[code]; !ok {
				m[code] = sha256.Sum256([]byte(code))
			}
		}
	}
	return m
}()

// CountryHash returns the digest of a country code as NormalizeCountry returns it.
func CountryHash(code string) (Hash, bool) {
	h, ok := codeHashes[code]
	return h, ok
}

// NormalizeCountry maps an ISO 3166-1 alpha-2 or alpha-3 code or a common English or native
// country name to a lowercase alpha-2 code.
func NormalizeCountry(s string) (string, error) {
	var buf [64]byte
	if len(s) > 128 {
		return "", ErrCountry
	}
	k := foldLetters(buf[:0], s)
	if c, ok := countryNames[string(k)]; ok {
		return c, nil
	}
	return "", ErrCountry
}

func normalizeState(b []byte, s, country string) ([]byte, error) {
	if country == "us" || country == "" {
		var buf [64]byte
		if len(s) <= 64 {
			if code, ok := usStates[string(foldLetters(buf[:0], s))]; ok {
				return append(b, code...), nil
			}
		}
		if country == "us" {
			return nil, ErrUSState
		}
	}
	return keepLetters(b, s, true), nil
}

func normalizeZip(b []byte, s, country string) ([]byte, error) {
	start := len(b)
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == ' ' || c == '-':
		case c >= 'A' && c <= 'Z':
			b = append(b, c+'a'-'A')
		default:
			b = append(b, c)
		}
	}
	z := b[start:]
	usShape := len(z) == 5 || len(z) == 9
	for _, c := range z {
		usShape = usShape && c >= '0' && c <= '9'
	}
	switch {
	case country == "us" && !usShape:
		return nil, ErrUSZip
	case country == "us" || (country == "" && usShape && len(z) == 9 && len(s) == 10 && s[5] == '-'):
		return b[:start+5], nil // US: the first 5 digits (ZIP+4 dropped)
	}
	return b, nil
}

// foldLetters lowercases s, folds accents away and keeps ASCII letters only: the lookup key of
// the country and US state tables.
func foldLetters(b []byte, s string) []byte {
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			i++
			if c >= 'A' && c <= 'Z' {
				c += 'a' - 'A'
			}
			if c >= 'a' && c <= 'z' {
				b = append(b, c)
			}
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		i += size
		if f, ok := latinFold[unicode.ToLower(r)]; ok {
			b = append(b, f)
		}
	}
	return b
}

// latinFold folds the accented Latin letters that appear in country and state names.
var latinFold = func() map[rune]byte {
	m := map[rune]byte{}
	for base, accented := range map[byte]string{
		'a': "àáâãäåāăą", 'c': "çćč", 'e': "èéêëēėęě", 'i': "ìíîïīį", 'n': "ñńň", 'o': "òóôõöøō",
		'u': "ùúûüūůű", 'y': "ýÿ", 's': "śšș", 'z': "źżž", 'r': "ř", 't': "țť", 'd': "ď", 'l': "ł",
	} {
		for _, r := range accented {
			m[r] = base
		}
	}
	return m
}()

func lowerASCII(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		b = append(b, c)
	}
	return b
}

func lowerUnicode(b []byte, s string) []byte {
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 'A' && c <= 'Z' {
				c += 'a' - 'A'
			}
			b = append(b, c)
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		i += size
		b = utf8.AppendRune(b, unicode.ToLower(r))
	}
	return b
}

func trimSpace(s string) string {
	for len(s) > 0 && isSpace(s[0]) {
		s = s[1:]
	}
	for len(s) > 0 && isSpace(s[len(s)-1]) {
		s = s[:len(s)-1]
	}
	return s
}

func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'
}

func hasControl(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < ' ' || s[i] == 0x7f {
			return true
		}
	}
	return false
}

// Currency returns the ISO 4217 alphabetic code written in any case as its canonical upper-case
// string, without allocating.
func Currency(code string) (string, bool) {
	if len(code) != 3 {
		return "", false
	}
	var up [3]byte
	for i := range up {
		c := code[i]
		if c >= 'a' && c <= 'z' {
			c -= 'a' - 'A'
		}
		up[i] = c
	}
	canonical, ok := currencyCodes[string(up[:])]
	return canonical, ok
}

// currencyCodes maps each code to itself: the map's string is the one Currency returns.
var currencyCodes = func() map[string]string {
	m := make(map[string]string, len(currencies))
	for c := range currencies {
		m[c] = c
	}
	return m
}()

// MarshalText encodes h as lowercase hex.
func (h Hash) MarshalText() ([]byte, error) { return h.AppendHex(nil), nil }

// UnmarshalText decodes a 64-character hex digest.
func (h *Hash) UnmarshalText(b []byte) error {
	v, ok := ParseHash(string(b))
	if !ok {
		return errors.New("not a SHA-256 hex digest")
	}
	*h = v
	return nil
}
