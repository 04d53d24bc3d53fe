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
	pool sync.Pool
}

type macState struct {
	mac hash.Hash
	buf []byte // HMAC input
	sum []byte // HMAC output
}

// NewPseudonymizer returns a Pseudonymizer keyed with pepper.
func NewPseudonymizer(pepper []byte) (*Pseudonymizer, error) {
	if len(pepper) < MinPepperBytes {
		return nil, errors.New("pseudonym pepper: at least 16 bytes required")
	}
	key := append([]byte(nil), pepper...)
	p := &Pseudonymizer{}
	p.pool.New = func() any {
		return &macState{mac: hmac.New(sha256.New, key), buf: make([]byte, 0, 256), sum: make([]byte, 0, 64)}
	}
	return p, nil
}

// UserKey returns the user key of (app, kind, id).
func (p *Pseudonymizer) UserKey(app string, kind IDKind, id string) string {
	st := p.pool.Get().(*macState)
	st.buf = append(append(append(append(append(st.buf[:0], app...), 0), kind...), 0), id...)
	st.mac.Reset()
	st.mac.Write(st.buf)
	st.sum = st.mac.Sum(st.sum[:0])
	n := len(st.sum)
	st.sum = base64.RawURLEncoding.AppendEncode(st.sum, st.sum[:n])
	key := string(st.sum[n:])
	p.pool.Put(st)
	return key
}
