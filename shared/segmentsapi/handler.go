// Package segmentsapi serves GET /v1/users/{app_user_id}/segments: the segments a user is in
// right now, for in-app personalisation and deep-link choice. The user is found through the
// same pseudonymous key the ingest function derives; the rules are evaluated at request time,
// so a time-based transition shows before the sweeper has recorded it.
package segmentsapi

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/retarget-dev/retarget/shared/appconfig"
	"github.com/retarget-dev/retarget/shared/identity"
	"github.com/retarget-dev/retarget/shared/ingestapi"
	"github.com/retarget-dev/retarget/shared/ports"
	"github.com/retarget-dev/retarget/shared/segments"
)

// Route is the API route this handler serves.
const Route = "/v1/users/{app_user_id}/segments"

// Config wires a Handler.
type Config struct {
	Apps    *appconfig.Config
	Rules   map[string]*segments.AppRules
	Store   ports.SegmentStore
	Pseudo  *identity.Pseudonymizer
	KeyIDs  map[string]string // as for the ingest function
	DevKeys map[string]string
	Logger  *slog.Logger
	Now     func() time.Time
}

// Handler serves the read route.
type Handler struct{ cfg Config }

// New returns a Handler.
func New(cfg Config) (*Handler, error) {
	if cfg.Apps == nil || cfg.Rules == nil || cfg.Store == nil || cfg.Pseudo == nil {
		return nil, errors.New("segmentsapi: Apps, Rules, Store and Pseudo are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Handler{cfg: cfg}, nil
}

// Response is the body of a 200.
type Response struct {
	AppUserID string   `json:"app_user_id"`
	Segments  []string `json:"segments"`
}

// Handle serves one API Gateway REST proxy request.
func (h *Handler) Handle(ctx context.Context, req events.APIGatewayProxyRequest) (events.APIGatewayProxyResponse, error) {
	if req.HTTPMethod != http.MethodGet {
		r := ingestapi.ErrorResponse(http.StatusMethodNotAllowed, "method not allowed; use GET")
		r.Headers["Allow"] = "GET"
		return r, nil
	}
	app, ok := ingestapi.Authenticate(req, h.cfg.Apps, h.cfg.KeyIDs, h.cfg.DevKeys)
	if !ok {
		return ingestapi.ErrorResponse(http.StatusUnauthorized, "missing or unknown API key (header x-api-key)"), nil
	}
	userID := req.PathParameters["app_user_id"]
	if userID == "" || len(userID) > 256 {
		return ingestapi.ErrorResponse(http.StatusBadRequest, "app_user_id: 1 to 256 characters"), nil
	}
	key := h.cfg.Pseudo.UserKey(app.ID, identity.KindAppUserID, userID)
	rec, found, err := h.cfg.Store.GetUser(ctx, app.ID, key)
	if err != nil {
		h.cfg.Logger.Error("read user state", "app", app.ID, "error", err.Error())
		return ingestapi.ErrorResponse(http.StatusServiceUnavailable, "segment state unavailable, retry"), nil
	}
	if !found {
		return ingestapi.ErrorResponse(http.StatusNotFound, "unknown user"), nil
	}
	var state segments.State
	if err := json.Unmarshal(rec.State, &state); err != nil {
		h.cfg.Logger.Error("stored state does not decode", "app", app.ID, "error", err.Error())
		return ingestapi.ErrorResponse(http.StatusInternalServerError, "internal error"), nil
	}
	segs, _ := h.cfg.Rules[app.ID].Evaluate(&state, h.cfg.Now())
	if segs == nil {
		segs = []string{}
	}
	return ingestapi.JSONResponse(http.StatusOK, Response{AppUserID: userID, Segments: segs}), nil
}
