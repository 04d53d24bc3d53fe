// Package usersapi serves the users routes: the segments a user is in right now, for in-app
// personalisation and deep-link choice (the rules are evaluated at request time, so a
// time-based transition shows before the sweeper has recorded it); an explicit consent
// decision; an erasure (users.go). Each is reached two ways (domain/access):
//   - /v1/users/{app_user_id}/..., by the app's backend, operators and the CLI: AWS IAM (SigV4)
//     and the app key, any user of the app;
//   - /v1/me/..., by the signed-in end user: the app key and a token from the app's identity
//     provider (auth.end_user), the token's user only.
//
// Both ways end in the same code for a user. The user is found through the same pseudonymous
// key the ingest function derives.
//
// The function also serves the app's remarketing report, GET /v1/reports/audiences (IAM and
// the app key, reports.go): privileged like the /v1/users routes, and read from the same
// state table.
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
	"github.com/retarget-dev/retarget/shared/domain/access"
	"github.com/retarget-dev/retarget/shared/domain/appconfig"
	"github.com/retarget-dev/retarget/shared/domain/appkey"
	"github.com/retarget-dev/retarget/shared/domain/audiences"
	"github.com/retarget-dev/retarget/shared/domain/identity"
	"github.com/retarget-dev/retarget/shared/domain/segments"
	"github.com/retarget-dev/retarget/shared/ports"
)

// Routes this handler serves (API Gateway resource templates), named as in domain/access.
const (
	Route           = access.PathUserSegments
	RouteUser       = access.PathUser
	RouteConsent    = access.PathUserConsent
	RouteMe         = access.PathMe
	RouteMeSegments = access.PathMeSegments
	RouteMeConsent  = access.PathMeConsent
	RouteReports    = access.PathReportsAudiences
)

// Routes maps every resource the handler serves to its method: the users-api routes of
// access.Routes.
var Routes = func() map[string]string {
	m := map[string]string{}
	for _, r := range access.Routes {
		if r.Function == access.FunctionUsersAPI {
			m[r.Path] = r.Method
		}
	}
	return m
}()

// Config wires a Handler.
type Config struct {
	Apps    *appconfig.Config
	Rules   map[string]*segments.AppRules
	Store   ports.SegmentStore
	Pseudo  *identity.Pseudonymizer
	KeyIDs  map[string]string // as for the ingest function
	DevKeys map[string]string
	// Keys are the apps' accepted keys on the HTTP API front door, whose IAM and end-user
	// routes have no key authorizer (infra/docs/front-door.md); nil on the REST door.
	Keys   *appkey.Ring
	Logger *slog.Logger
	Now    func() time.Time
	// Consents keeps explicit decisions and erasure audit records; without it the consent and
	// erasure routes answer 501.
	Consents ports.ConsentStore
	// Audiences are the apps' audience mappings (for the erasure audit); may be nil.
	Audiences map[string]*audiences.AppAudiences
	// Verifier checks end users' tokens (the /v1/me routes); without it those routes answer 501
	// for an app that has auth.end_user.
	Verifier ports.EndUserVerifier
	// DevEndUser, set by the dev stack only, is the dev token issuer: the /v1/me routes of an
	// app that has auth.end_user verify tokens against it instead of the app's own issuer, with
	// the app's id as the audience. An app without auth.end_user still has no /v1/me routes.
	DevEndUser *appconfig.EndUserAuth
	// UserTTL is how long an inactive user's state is kept (the updater's setting).
	UserTTL time.Duration
	// TombstoneTTL is how long an erased user's removal identifiers are kept for the audience
	// sync (default DefaultTombstoneTTL); AuditRetention how long erasure audit records are
	// kept (default DefaultAuditRetention).
	TombstoneTTL, AuditRetention time.Duration
	// Reports makes the report of GET /v1/reports/audiences; without it the route answers 501.
	Reports ReportFunc
}

// Handler serves the users routes.
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

// Handle serves one API Gateway REST proxy request: it finds the route in the access table,
// checks the route's credential, finds the user (from the path or from the token) and serves
// the route for that user.
func (h *Handler) Handle(ctx context.Context, req events.APIGatewayProxyRequest) (events.APIGatewayProxyResponse, error) {
	method, known := Routes[req.Resource]
	if !known {
		return apigw.Error(http.StatusNotFound, "no route for "+req.HTTPMethod+" "+req.Resource), nil
	}
	route, ok := access.Find(req.HTTPMethod, req.Resource)
	if !ok {
		return apigw.MethodNotAllowed(method), nil
	}
	app, ok := apigw.Authenticate(req, h.cfg.Apps, h.cfg.KeyIDs, h.cfg.DevKeys)
	if !ok {
		app, ok = apigw.KeyRingApp(req, h.cfg.Apps, h.cfg.Keys)
	}
	if !ok {
		return apigw.Error(http.StatusUnauthorized, "missing or unknown API key (header x-api-key)"), nil
	}
	var userID string
	switch route.Credential {
	case access.IAM:
		if _, ok := apigw.IAMCaller(req); !ok {
			h.cfg.Logger.Warn("IAM route without an IAM caller", "app", app.ID, "route", req.Resource)
			return apigw.RequireIAM(), nil
		}
		if route.Path == access.PathReportsAudiences {
			return h.report(ctx, app, req), nil // about the app, no user
		}
		// Trimmed as the ingest function trims it before keying: " u-1" and "u-1" are one user.
		userID = strings.TrimSpace(req.PathParameters["app_user_id"])
		if userID == "" || len(userID) > maxUserID {
			return apigw.Error(http.StatusBadRequest, "app_user_id: 1 to 256 characters"), nil
		}
	case access.EndUser:
		var refused *events.APIGatewayProxyResponse
		if userID, refused = h.endUser(ctx, app, req); refused != nil {
			return *refused, nil
		}
	default: // unreachable: the table gives this function only IAM and end-user routes
		return apigw.Error(http.StatusInternalServerError, "internal error"), nil
	}
	return h.serve(ctx, route.Path, app, userID, req.Body), nil
}

// maxUserID is the longest app_user_id, as the ingest API accepts it.
const maxUserID = 256

// serve serves a route for one user, whichever credential named the user.
func (h *Handler) serve(ctx context.Context, path string, app *appconfig.App, userID, body string) events.APIGatewayProxyResponse {
	key := h.cfg.Pseudo.UserKey(app.ID, identity.KindAppUserID, userID)
	switch path {
	case access.PathUser, access.PathMe:
		return h.erase(ctx, app, key)
	case access.PathUserConsent, access.PathMeConsent:
		return h.consent(ctx, app, userID, key, body)
	}
	return h.segments(ctx, app, userID, key)
}

// segments answers the user's segments now. An unknown user, an erased one (its state is a
// tombstone) and one never seen with consent (no event was ever folded into its state) get
// the same 404: the answer must not tell whether the app ever knew the user.
func (h *Handler) segments(ctx context.Context, app *appconfig.App, userID, key string) events.APIGatewayProxyResponse {
	rec, found, err := h.cfg.Store.GetUser(ctx, app.ID, key)
	if err != nil {
		h.cfg.Logger.Error("read user state", "app", app.ID, "error", err.Error())
		return apigw.Error(http.StatusServiceUnavailable, "segment state unavailable, retry")
	}
	if !found {
		return notFound()
	}
	var state segments.State
	if err := json.Unmarshal(rec.State, &state); err != nil {
		h.cfg.Logger.Error("stored state does not decode", "app", app.ID, "error", err.Error())
		return apigw.Error(http.StatusInternalServerError, "internal error")
	}
	if !seen(&state) {
		return notFound()
	}
	segs, _ := h.cfg.Rules[app.ID].Evaluate(&state, h.cfg.Now())
	if segs == nil {
		segs = []string{}
	}
	return apigw.JSON(http.StatusOK, Response{AppUserID: userID, Segments: segs})
}

// seen reports whether the state holds any event: an erasure's tombstone keeps only the
// withdrawal and the identifiers the audience sync needs (no FirstSeen), and a user whose
// events all came without consent has only a consent signal.
func seen(st *segments.State) bool { return st.FirstSeen != 0 }

// notFound is the one answer for a user the API will not talk about: unknown, erased, never
// seen, and the /v1/me routes of an app without end-user tokens.
func notFound() events.APIGatewayProxyResponse {
	return apigw.Error(http.StatusNotFound, "unknown user")
}
