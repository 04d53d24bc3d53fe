// Package endusertest is a fake ports.EndUserVerifier for handler tests: tokens are plain
// strings registered with the user they name, so a test can hold a valid token, another
// user's, an invalid one and one whose keys cannot be fetched without any cryptography. The
// real verifier's token checks are tested with the verifier itself.
package endusertest

import (
	"context"
	"fmt"
	"sync"

	"github.com/retarget-dev/retarget/shared/domain/appconfig"
	"github.com/retarget-dev/retarget/shared/ports"
)

// Tokens with a fixed answer.
const (
	// Invalid is refused as a bad token (ports.ErrTokenInvalid).
	Invalid = "invalid-token"
	// Unverifiable fails as if the issuer's keys could not be fetched (ports.ErrTokenUnverifiable).
	Unverifiable = "unverifiable-token"
)

// Verifier is the fake. The zero value knows no token; it is safe for concurrent use.
type Verifier struct {
	mu     sync.Mutex
	tokens map[string]token
	calls  []Call
}

type token struct{ app, user string }

// Call is one Verify call as the fake saw it.
type Call struct {
	App    string
	Issuer string // the issuer of the configuration the handler passed
	Token  string
}

var _ ports.EndUserVerifier = (*Verifier)(nil)

// Token registers a token of app naming user and returns it.
func (v *Verifier) Token(app, user string) string {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.tokens == nil {
		v.tokens = map[string]token{}
	}
	t := fmt.Sprintf("token-%d-%s-%s", len(v.tokens), app, user)
	v.tokens[t] = token{app, user}
	return t
}

// Verify returns the user of a registered token of app; a token of another app is invalid, as
// its audience would be.
func (v *Verifier) Verify(_ context.Context, app string, cfg *appconfig.EndUserAuth, tok string) (string, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.calls = append(v.calls, Call{App: app, Issuer: cfg.Issuer, Token: tok})
	if tok == Unverifiable {
		return "", fmt.Errorf("fetch keys of %s: %w", cfg.Issuer, ports.ErrTokenUnverifiable)
	}
	t, ok := v.tokens[tok]
	if !ok || t.app != app {
		return "", fmt.Errorf("unknown token: %w", ports.ErrTokenInvalid)
	}
	return t.user, nil
}

// Calls returns the Verify calls so far.
func (v *Verifier) Calls() []Call {
	v.mu.Lock()
	defer v.mu.Unlock()
	return append([]Call(nil), v.calls...)
}
