package usersapi

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"github.com/aws/aws-lambda-go/events"

	"github.com/retarget-dev/retarget/shared/adapters/apigw"
	"github.com/retarget-dev/retarget/shared/domain/appconfig"
	"github.com/retarget-dev/retarget/shared/ports"
)

// endUser finds the user of a /v1/me request: the one the request's token names, once the
// token checks out against the app's identity provider. It returns the answer to give instead
// when there is no such user:
//   - 404 (the unknown user's answer) when the app has no end-user tokens (auth.end_user);
//   - 401 with WWW-Authenticate: Bearer for a missing, malformed or invalid token;
//   - 503 with Retry-After when the issuer's keys cannot be fetched (the token may be fine).
func (h *Handler) endUser(ctx context.Context, app *appconfig.App, req events.APIGatewayProxyRequest) (string, *events.APIGatewayProxyResponse) {
	issuer := app.Auth.EndUser
	if issuer == nil {
		r := notFound()
		return "", &r
	}
	if h.cfg.DevEndUser != nil {
		// The dev issuer mints tokens for every app, with the app's id as their audience.
		dev := *h.cfg.DevEndUser
		dev.Audiences = []string{app.ID}
		issuer = &dev
	}
	token, ok := apigw.BearerToken(req)
	if !ok {
		return "", bearerChallenge("", "missing or malformed end-user token (header Authorization: Bearer <token>)")
	}
	if h.cfg.Verifier == nil {
		r := apigw.Error(http.StatusNotImplemented, "end-user tokens are not configured on this deployment")
		return "", &r
	}
	userID, err := h.cfg.Verifier.Verify(ctx, app.ID, issuer, token)
	switch {
	case errors.Is(err, ports.ErrTokenUnverifiable):
		h.cfg.Logger.Warn("end-user token keys unavailable", "app", app.ID, "error", err.Error())
		r := apigw.Error(http.StatusServiceUnavailable, "the identity provider's keys are unavailable, retry")
		r.Headers["Retry-After"] = "5"
		return "", &r
	case err != nil:
		// The reason stays in the log: telling the client which check failed helps forgers more
		// than it helps apps.
		h.cfg.Logger.Info("end-user token refused", "app", app.ID, "error", err.Error())
		return "", bearerChallenge("invalid_token", "invalid end-user token")
	}
	// Keyed as the ingest function keys app_user_id: trimmed, 1 to 256 characters.
	userID = strings.TrimSpace(userID)
	if userID == "" || len(userID) > maxUserID {
		h.cfg.Logger.Info("end-user token names no usable user", "app", app.ID, "length", len(userID))
		return "", bearerChallenge("invalid_token", "invalid end-user token: its user claim is not an app_user_id of 1 to 256 characters")
	}
	return userID, nil
}

// bearerChallenge is a 401 asking for a bearer token (RFC 6750), with the error code when the
// request carried one that failed.
func bearerChallenge(code, msg string) *events.APIGatewayProxyResponse {
	r := apigw.Error(http.StatusUnauthorized, msg)
	r.Headers["WWW-Authenticate"] = "Bearer"
	if code != "" {
		r.Headers["WWW-Authenticate"] = `Bearer error="` + code + `"`
	}
	return &r
}
