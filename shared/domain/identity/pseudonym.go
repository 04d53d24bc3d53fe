package identity

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"hash"
	"sync"
)

// IDKind names which identifier a pseudonymous key was derived from. It is part of the HMAC
// input so that an app_user_id and an anon_id with the same text never share a key.
type IDKind string

// The identifiers a user key can be derived from, in order of preference.
const (
	KindAppUserID IDKind = "app_user_id"
	KindAnonID    IDKind = "anon_id"
	KindMADID     IDKind = "madid"
)

// MinPepperBytes is the shortest pepper accepted: the key must not be guessable.
const MinPepperBytes = 16

// UserKeyLen is the length of a user key: unpadded base64url of an HMAC-SHA256.
var UserKeyLen = base64.RawURLEncoding.EncodedLen(sha256.Size)

// Pseudonymizer derives pseudonymous user keys: base64url(HMAC-SHA256(pepper, app \x00 kind \x00
// id)). Without the pepper (a secret in Secrets Manager) the key cannot be linked back to the
// identifier, even by someone who can enumerate likely user ids. Safe for concurrent use.
type Pseudonymizer struct {
	pepper []byte
	pool   sync.Pool // of *Keyer
}

// Keyer derives user keys as its Pseudonymizer does, with its own HMAC state: not safe for
// concurrent use. A goroutine that derives many keys (the ingest parser, per request) holds
// one instead of borrowing one from the Pseudonymizer's pool for every key.
type Keyer struct {
	mac hash.Hash
	buf []byte // HMAC input
	sum []byte // HMAC output
}

// NewPseudonymizer returns a Pseudonymizer keyed with pepper.
func NewPseudonymizer(pepper []byte) (*Pseudonymizer, error) {
	if len(pepper) < MinPepperBytes {
		return nil, errors.New("pseudonym pepper: at least 16 bytes required")
	}
	p := &Pseudonymizer{pepper: append([]byte(nil), pepper...)}
	p.pool.New = func() any { return p.Keyer() }
	return p, nil
}

// Keyer returns a new Keyer of p.
func (p *Pseudonymizer) Keyer() *Keyer {
	return &Keyer{mac: hmac.New(sha256.New, p.pepper), buf: make([]byte, 0, 256), sum: make([]byte, 0, 64)}
}

// UserKey returns the user key of (app, kind, id).
func (p *Pseudonymizer) UserKey(app string, kind IDKind, id string) string {
	k := p.pool.Get().(*Keyer)
	key := k.UserKey(app, kind, id)
	p.pool.Put(k)
	return key
}

// UserKey returns the user key of (app, kind, id).
func (k *Keyer) UserKey(app string, kind IDKind, id string) string {
	k.buf = append(append(append(append(append(k.buf[:0], app...), 0), kind...), 0), id...)
	k.mac.Reset()
	k.mac.Write(k.buf)
	k.sum = k.mac.Sum(k.sum[:0])
	n := len(k.sum)
	k.sum = base64.RawURLEncoding.AppendEncode(k.sum, k.sum[:n])
	return string(k.sum[n:])
}
