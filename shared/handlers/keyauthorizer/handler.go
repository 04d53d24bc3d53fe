// Package keyauthorizer is the Lambda REQUEST authorizer of the HTTP API front door
// (infra/docs/front-door.md): it checks a request's publishable app key (x-api-key) against the
// apps' accepted keys (appkey.Ring, from their key secrets) and answers API Gateway with the
// simple response format (payload format 2.0): allowed, with the app in the context, or denied.
//
// API Gateway caches the answer by the identity source, the x-api-key header, for
// CacheTTLSeconds: the function runs once per key per cache period, not once per request. A
// request without the header is refused by API Gateway (401) without invoking the function.
package keyauthorizer

import (
	"context"
	"errors"
	"log/slog"

	"github.com/aws/aws-lambda-go/events"

	"github.com/retarget-dev/retarget/shared/adapters/apigw"
	"github.com/retarget-dev/retarget/shared/domain/appkey"
)

// Settings the stack declares the authorizer with.
const (
	// Header is the key's header; IdentitySource is its API Gateway selection expression, the
	// authorizer cache's key.
	Header         = "x-api-key"
	IdentitySource = "$request.header." + Header
	// CacheTTLSeconds is how long API Gateway reuses an answer for the same key. A key taken
	// out of the secret keeps opening the API for at most this long (plus the functions'
	// cold-start cache, see infra/docs/front-door.md).
	CacheTTLSeconds = 300
	// ContextApp is the context key of the app id: the functions read
	// requestContext.authorizer.app (integration payload 1.0).
	ContextApp = apigw.AuthorizerContextApp
)

// Handler answers API Gateway's authorizer requests.
type Handler struct {
	keys *appkey.Ring
	log  *slog.Logger
}

// New returns a Handler accepting the keys of ring; log receives one line per decision (the app
// or "unknown key", never the key).
func New(ring *appkey.Ring, log *slog.Logger) (*Handler, error) {
	if ring == nil || ring.Len() == 0 {
		return nil, errors.New("keyauthorizer: no accepted key: every request would be refused")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Handler{keys: ring, log: log}, nil
}

// Handle decides one request. It never fails: an unknown, empty or missing key is a denial.
func (h *Handler) Handle(ctx context.Context, req events.APIGatewayV2CustomAuthorizerV2Request) (events.APIGatewayV2CustomAuthorizerSimpleResponse, error) {
	key := presentedKey(req)
	app, ok := h.keys.App(key)
	if !ok {
		h.log.Info("key refused", "has_key", key != "", "route", req.RouteKey)
		return events.APIGatewayV2CustomAuthorizerSimpleResponse{IsAuthorized: false}, nil
	}
	h.log.Debug("key accepted", "app", app, "route", req.RouteKey)
	return events.APIGatewayV2CustomAuthorizerSimpleResponse{
		IsAuthorized: true,
		Context:      map[string]any{ContextApp: app},
	}, nil
}

// presentedKey is the key API Gateway took as the identity source (the header's value), else
// the header itself. Payload 2.0 lower-cases header names.
func presentedKey(req events.APIGatewayV2CustomAuthorizerV2Request) string {
	if len(req.IdentitySource) == 1 {
		return req.IdentitySource[0]
	}
	if len(req.IdentitySource) > 1 {
		return "" // the stack declares one identity source: anything else is not ours to guess
	}
	return req.Headers[Header]
}
