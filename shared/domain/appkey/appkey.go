// Package appkey maps publishable app keys (x-api-key) to their app without API Gateway's API
// keys: the HTTP API front door (infra/docs/front-door.md) keeps each app's accepted keys as
// SHA-256 digests in a Secrets Manager secret, and the key authorizer, the ingest function and
// the users function look a request's key up in a Ring built from them.
//
// A lookup hashes the presented key and compares the digest with every accepted one in
// constant time, without stopping at a match: how long it takes says nothing about which
// digest, or how much of one, matched. No function here returns, logs or quotes a key.
package appkey

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// MaxKeyBytes bounds a key that is hashed at all; real keys are 20 to 64 characters.
const MaxKeyBytes = 256

// compare is subtle.ConstantTimeCompare; a test counts its calls.
var compare = subtle.ConstantTimeCompare

// Digest is the SHA-256 of a key.
type Digest [sha256.Size]byte

// Sum returns the digest of key.
func Sum(key string) Digest { return sha256.Sum256([]byte(key)) }

// Ring is the accepted keys of every app. The zero value accepts nothing. Build it before
// sharing it: lookups do not lock.
type Ring struct {
	digests []Digest
	apps    []string
}

// Add accepts the key with digest d for app. A digest already accepted for another app is an
// error: one key names exactly one app.
func (r *Ring) Add(app string, d Digest) error {
	if app == "" {
		return errors.New("appkey: empty app id")
	}
	for i, have := range r.digests {
		if have == d {
			if r.apps[i] == app {
				return nil
			}
			return fmt.Errorf("appkey: apps %s and %s accept the same key", r.apps[i], app)
		}
	}
	r.digests = append(r.digests, d)
	r.apps = append(r.apps, app)
	return nil
}

// AddKey accepts the literal key for app (make dev's dev keys).
func (r *Ring) AddKey(app, key string) error {
	if key == "" {
		return fmt.Errorf("appkey: app %s: empty key", app)
	}
	return r.Add(app, Sum(key))
}

// Len is the number of accepted digests.
func (r *Ring) Len() int { return len(r.digests) }

// App returns the app whose key key is. An empty key, an oversized one and an unknown one all
// give ok false.
func (r *Ring) App(key string) (app string, ok bool) {
	if r == nil || key == "" || len(key) > MaxKeyBytes {
		return "", false
	}
	sum := Sum(key)
	found := -1
	for i := range r.digests {
		// Every digest is compared, match or not; the index is picked without a branch on
		// the comparison.
		eq := compare(sum[:], r.digests[i][:])
		found = subtle.ConstantTimeSelect(eq, i, found)
	}
	if found < 0 {
		return "", false
	}
	return r.apps[found], true
}

// Secret is the JSON value of an app's key secret:
//
//	{"key": "<the publishable key>", "sha256": ["<hex digest of another accepted key>", ...]}
//
// The stack creates it with a generated "key"; "sha256" lists further accepted keys by digest
// only (the next key during a rotation, or the only ones when the plain key is not to be kept
// at all). At least one of the two must be set.
type Secret struct {
	Key    string   `json:"key,omitempty"`
	SHA256 []string `json:"sha256,omitempty"`
}

// ParseSecret reads an app's key secret into its accepted digests. Errors name the field that
// is wrong, never its value.
func ParseSecret(value string) ([]Digest, error) {
	var s Secret
	dec := json.NewDecoder(strings.NewReader(value))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		return nil, errors.New(`app key secret: want a JSON object {"key": "...", "sha256": ["<64 hex digits>", ...]}`)
	}
	var out []Digest
	if s.Key != "" {
		if len(s.Key) > MaxKeyBytes {
			return nil, fmt.Errorf("app key secret: key is longer than %d bytes", MaxKeyBytes)
		}
		out = append(out, Sum(s.Key))
	}
	for i, h := range s.SHA256 {
		var d Digest
		b, err := hex.DecodeString(strings.TrimSpace(h))
		if err != nil || len(b) != len(d) {
			return nil, fmt.Errorf("app key secret: sha256[%d] is not 64 hex digits", i)
		}
		copy(d[:], b)
		out = append(out, d)
	}
	if len(out) == 0 {
		return nil, errors.New(`app key secret: neither "key" nor "sha256" is set: the app would accept no key`)
	}
	return out, nil
}
