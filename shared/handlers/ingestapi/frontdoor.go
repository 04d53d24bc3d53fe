package ingestapi

import (
	"context"
	"net/http"
	"strconv"

	"github.com/aws/aws-lambda-go/events"

	"github.com/retarget-dev/retarget/shared/adapters/apigw"
	"github.com/retarget-dev/retarget/shared/adapters/observability"
	"github.com/retarget-dev/retarget/shared/app/ratelimit"
	"github.com/retarget-dev/retarget/shared/domain/appconfig"
)

// The HTTP API front door (infra/docs/front-door.md): no API Gateway keys or usage plans. The
// key authorizer names the app of POST /v1/events in the request context (apigw.AuthorizerApp,
// read by apigw.Authenticate); the IAM route POST /v1/server/events has no key authorizer, so
// its x-api-key is looked up among the apps' accepted keys here (Config.Keys); and the per-app
// limit of the usage plans is Config.Limiter's.

// appOf finds the app of a request: the authorizer's context, an API Gateway key id, a dev key,
// else the key among Config.Keys.
func (h *Handler) appOf(req events.APIGatewayProxyRequest) (*appconfig.App, bool) {
	if app, ok := apigw.Authenticate(req, h.cfg.Apps, h.cfg.KeyIDs, h.cfg.DevKeys); ok {
		return app, true
	}
	return apigw.KeyRingApp(req, h.cfg.Apps, h.cfg.Keys)
}

// throttle answers 429 with Retry-After when app is over its limit (Config.Limiter), else nil.
func (h *Handler) throttle(ctx context.Context, app string) *events.APIGatewayProxyResponse {
	if h.cfg.Limiter == nil {
		return nil
	}
	d := h.cfg.Limiter.Allow(ctx, app)
	if d.Allowed {
		return nil
	}
	scope := "instance"
	if d.Global {
		scope = "global"
	}
	h.emit(app, "", observability.Metric{Name: "RequestsThrottled", Unit: observability.Count, Value: 1})
	h.cfg.Logger.Debug("request throttled", "app", app, "scope", scope, "retry_after_s", int(d.RetryAfter.Seconds()))
	r := apigw.Error(http.StatusTooManyRequests, "too many requests for app "+app+": retry after "+strconv.Itoa(int(d.RetryAfter.Seconds()))+" s")
	r.Headers["Retry-After"] = ratelimit.RetryAfterHeader(d.RetryAfter)
	return &r
}
