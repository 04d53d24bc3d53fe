// Package usersapi serves the /v1/users routes: GET .../segments, the segments a user is in
// right now, for in-app personalisation and deep-link choice (the rules are evaluated at request
// time, so a time-based transition shows before the sweeper has recorded it); PUT .../consent,
// an explicit consent decision; DELETE /v1/users/{app_user_id}, an erasure (users.go). The user
// is found through the same pseudonymous key the ingest function derives.
package usersapi

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/retarget-dev/retarget/shared/adapters/apigw"
	"github.com/retarget-dev/retarget/shared/domain/appconfig"
	"github.com/retarget-dev/retarget/shared/domain/audiences"
	"github.com/retarget-dev/retarget/shared/domain/identity"
	"github.com/retarget-dev/retarget/shared/domain/segments"
	"github.com/retarget-dev/retarget/shared/ports"
)

// Routes this handler serves (API Gateway resource templates).
const (
	Route        = "/v1/users/{app_user_id}/segments"
	RouteUser    = "/v1/users/{app_user_id}"
	RouteConsent = "/v1/users/{app_user_id}/consent"
)

// Routes lists every route of the handler with its method.
var Routes = map[string]string{Route: http.MethodGet, RouteUser: http.MethodDelete, RouteConsent: http.MethodPut}

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
	// Consents keeps explicit decisions and erasure audit records; without it the consent and
	// erasure routes answer 501.
	Consents ports.ConsentStore
	// Audiences are the apps' audience mappings (for the erasure audit); may be nil.
	Audiences map[string]*audiences.AppAudiences
	// UserTTL is how long an inactive user's state is kept (the updater's setting).
	UserTTL time.Duration
	// TombstoneTTL is how long an erased user's removal identifiers are kept for the audience
	// sync (default DefaultTombstoneTTL); AuditRetention how long erasure audit records are
	// kept (default DefaultAuditRetention).
	TombstoneTTL, AuditRetention time.Duration
}

// Handler serves the read route.
type Handler struct{ cfg Config }

// New returns a Handler.
func New(cfg Config) (*Handler, error) {
	if cfg.Apps == nil || cfg.Rules == nil || cfg.Store == nil || cfg.Pseudo == nil {
		return nil, errors.New("usersapi: Apps, Rules, Store and Pseudo are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.UserTTL <= 0 {
		cfg.UserTTL = segments.DefaultUserTTL
	}
	if cfg.TombstoneTTL <= 0 {
		cfg.TombstoneTTL = DefaultTombstoneTTL
	}
	if cfg.AuditRetention <= 0 {
		cfg.AuditRetention = DefaultAuditRetention
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
	resource := req.Resource
	if _, known := Routes[resource]; !known {
		resource = Route // called directly (tests, older wiring): the read route
	}
	if method := Routes[resource]; req.HTTPMethod != method {
		return apigw.MethodNotAllowed(method), nil
	}
	app, ok := apigw.Authenticate(req, h.cfg.Apps, h.cfg.KeyIDs, h.cfg.DevKeys)
	if !ok {
		return apigw.Error(http.StatusUnauthorized, "missing or unknown API key (header x-api-key)"), nil
	}
	// Trimmed as the ingest function trims it before keying: " u-1" and "u-1" are one user.
	userID := strings.TrimSpace(req.PathParameters["app_user_id"])
	if userID == "" || len(userID) > 256 {
		return apigw.Error(http.StatusBadRequest, "app_user_id: 1 to 256 characters"), nil
	}
	key := h.cfg.Pseudo.UserKey(app.ID, identity.KindAppUserID, userID)
	switch resource {
	case RouteUser:
		return h.erase(ctx, app, key), nil
	case RouteConsent:
		return h.consent(ctx, app, userID, key, req.Body), nil
	}
	rec, found, err := h.cfg.Store.GetUser(ctx, app.ID, key)
	if err != nil {
		h.cfg.Logger.Error("read user state", "app", app.ID, "error", err.Error())
		return apigw.Error(http.StatusServiceUnavailable, "segment state unavailable, retry"), nil
	}
	if !found {
		return apigw.Error(http.StatusNotFound, "unknown user"), nil
	}
	var state segments.State
	if err := json.Unmarshal(rec.State, &state); err != nil {
		h.cfg.Logger.Error("stored state does not decode", "app", app.ID, "error", err.Error())
		return apigw.Error(http.StatusInternalServerError, "internal error"), nil
	}
	segs, _ := h.cfg.Rules[app.ID].Evaluate(&state, h.cfg.Now())
	if segs == nil {
		segs = []string{}
	}
	return apigw.JSON(http.StatusOK, Response{AppUserID: userID, Segments: segs}), nil
}
