// Package ingestapi is the HTTP face of the ingest function: it translates API Gateway REST
// proxy requests into calls of the domain (appevent) and the stream publisher, and their results
// into the API v1 responses. The Lambda, `sam local invoke` and the dev stack all run this code.
package ingestapi

import (
	"context"
	_ "embed"
	"encoding/base64"
	"errors"
	"log/slog"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/retarget-dev/retarget/shared/adapters/apigw"
	"github.com/retarget-dev/retarget/shared/adapters/observability"
	"github.com/retarget-dev/retarget/shared/app/ratelimit"
	"github.com/retarget-dev/retarget/shared/domain/access"
	"github.com/retarget-dev/retarget/shared/domain/appconfig"
	"github.com/retarget-dev/retarget/shared/domain/appevent"
	"github.com/retarget-dev/retarget/shared/domain/appkey"
	"github.com/retarget-dev/retarget/shared/ports"
)

// Publisher writes stream records and reports those it could not write.
type Publisher interface {
	Publish(ctx context.Context, records []ports.StreamRecord) ports.PublishReport
}

// Config wires a Handler.
type Config struct {
	Apps      *appconfig.Config
	Parser    *appevent.Parser
	Publisher Publisher
	// KeyIDs maps API Gateway API key ids (requestContext.identity.apiKeyId) to app ids. API
	// Gateway has already checked the key when a request carries an id.
	KeyIDs map[string]string
	// DevKeys maps literal x-api-key values to app ids. Only the dev stack and local invokes set
	// it; a deployed function never does.
	DevKeys map[string]string
	// Keys and Limiter serve the HTTP API front door (frontdoor.go): the apps' accepted keys,
	// for routes without the key authorizer, and the per-app request limit. Nil: not used.
	Keys    *appkey.Ring
	Limiter *ratelimit.Limiter
	Logger  *slog.Logger
	Metrics *observability.Emitter
	// MetricsInterval is how often the handler writes its metrics: it adds up the requests of
	// the instance and writes one EMF document per dimension set at most once per interval
	// (observability.Aggregator). 0 means one second; a negative value writes one document per
	// request.
	MetricsInterval time.Duration
	// Now returns the server time (default time.Now).
	Now func() time.Time
}

// Handler serves API v1.
type Handler struct {
	cfg     Config
	metrics *observability.Aggregator // nil: one document per request
}

// New returns a Handler; it fails when a key maps to an app missing from the config.
func New(cfg Config) (*Handler, error) {
	if cfg.Apps == nil || cfg.Parser == nil || cfg.Publisher == nil {
		return nil, errors.New("ingestapi: Apps, Parser and Publisher are required")
	}
	for _, m := range []map[string]string{cfg.KeyIDs, cfg.DevKeys} {
		for _, app := range m {
			if _, ok := cfg.Apps.App(app); !ok {
				return nil, errors.New("ingestapi: an API key maps to unknown app " + app)
			}
		}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	clock := cfg.Now // nil: the real clock, and the aggregator's timer
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.MetricsInterval == 0 {
		cfg.MetricsInterval = time.Second
	}
	h := &Handler{cfg: cfg}
	if cfg.MetricsInterval > 0 {
		h.metrics = observability.NewAggregator(cfg.Metrics, cfg.MetricsInterval, clock)
	}
	return h, nil
}

// Routes of API v1 the ingest function serves, named as in domain/access.
const (
	RouteEvents       = access.PathEvents
	RouteServerEvents = access.PathServerEvents
	RouteHealth       = access.PathHealth
	RouteOpenAPI      = access.PathOpenAPI
)

// OpenAPI is the OpenAPI 3.1 description of the public API (every route, the users routes
// included), served at GET /v1/openapi.json; openapi_test.go checks it against the handlers.
//
//go:embed openapi.json
var OpenAPI []byte

// Invoke serves one API Gateway proxy event as the Lambda runtime delivers it (raw JSON): h is
// a lambda.Handler. It answers exactly what lambda.Start(h.Handle) would, reading the event
// with apigw.DecodeProxyRequest instead of reflection.
func (h *Handler) Invoke(ctx context.Context, payload []byte) ([]byte, error) {
	return apigw.ProxyHandler(h.Handle).Invoke(ctx, payload)
}

// Handle serves one API Gateway REST proxy request.
func (h *Handler) Handle(ctx context.Context, req events.APIGatewayProxyRequest) (events.APIGatewayProxyResponse, error) {
	route := req.Resource
	if route == "" || strings.Contains(route, "{proxy+}") {
		route = req.Path
	}
	switch route {
	case RouteHealth:
		if req.HTTPMethod != http.MethodGet && req.HTTPMethod != http.MethodHead {
			return apigw.MethodNotAllowed("GET"), nil
		}
		return apigw.JSON(http.StatusOK, map[string]string{"status": "ok"}), nil
	case RouteOpenAPI:
		if req.HTTPMethod != http.MethodGet && req.HTTPMethod != http.MethodHead {
			return apigw.MethodNotAllowed("GET"), nil
		}
		return events.APIGatewayProxyResponse{StatusCode: http.StatusOK, Body: string(OpenAPI),
			Headers: map[string]string{"Content-Type": "application/json", "Cache-Control": "max-age=300"}}, nil
	case RouteEvents:
		if req.HTTPMethod != http.MethodPost {
			return apigw.MethodNotAllowed("POST"), nil
		}
		return h.postEvents(ctx, req, false), nil
	case RouteServerEvents:
		if req.HTTPMethod != http.MethodPost {
			return apigw.MethodNotAllowed("POST"), nil
		}
		return h.postEvents(ctx, req, true), nil
	}
	return apigw.Error(http.StatusNotFound, "no route for "+req.HTTPMethod+" "+route), nil
}

// EventsResponse is the body of POST /v1/events answers about the events (202, 400 when none
// was accepted, 503 when none could be stored); clients (the operator CLI, the load test)
// decode it with this type. Rejected is never null.
type EventsResponse struct {
	Accepted int                  `json:"accepted"`
	Rejected []appevent.Rejection `json:"rejected"`
}

// postEvents serves POST /v1/events (the app, with its publishable key) and, server true,
// POST /v1/server/events (the app's backend: AWS IAM and the key): one body, one set of
// answers; the server's records are marked server-sent.
func (h *Handler) postEvents(ctx context.Context, req events.APIGatewayProxyRequest, server bool) events.APIGatewayProxyResponse {
	// The instance's metrics are written when due, before this request adds to them (so that
	// values held since an earlier, long-past request keep their own time) and after.
	h.metrics.FlushDue()
	defer h.metrics.FlushDue()
	start := h.cfg.Now()
	log := h.cfg.Logger.With("request_id", req.RequestContext.RequestID)
	app, ok := h.authenticate(req)
	if !ok {
		log.Info("unauthorised request", "has_key", apigw.Header(req, "x-api-key") != "" || req.RequestContext.Identity.APIKeyID != "", "server", server)
		return apigw.Error(http.StatusUnauthorized, "missing or unknown API key (header x-api-key)")
	}
	log = log.With("app", app.ID)
	if r := h.throttle(ctx, app.ID); r != nil {
		return *r
	}
	parse := h.cfg.Parser.Parse
	if server {
		if _, ok := apigw.IAMCaller(req); !ok {
			log.Warn("server events without an IAM caller")
			return apigw.RequireIAM()
		}
		log, parse = log.With("server", true), h.cfg.Parser.ParseServer
	}

	body := req.Body
	if req.IsBase64Encoded {
		if base64.StdEncoding.DecodedLen(len(body)) > appevent.MaxBodyBytes+3 {
			return apigw.Error(http.StatusRequestEntityTooLarge, appevent.ErrBodyTooLarge.Error())
		}
		raw, err := base64.StdEncoding.DecodeString(body)
		if err != nil {
			return apigw.Error(http.StatusBadRequest, "body is marked base64 but does not decode")
		}
		body = string(raw)
	}

	batch, err := parse(app, body, start)
	if err != nil {
		status := http.StatusBadRequest
		if errors.Is(err, appevent.ErrBodyTooLarge) || errors.Is(err, appevent.ErrTooManyEvents) {
			status = http.StatusRequestEntityTooLarge
		}
		log.Info("request refused", "status", status, "reason", err.Error())
		h.emit(app.ID, "", observability.Metric{Name: "RequestsRefused", Unit: observability.Count, Value: 1})
		return apigw.Error(status, err.Error())
	}
	defer batch.Release() // once published, the encoded records' buffer serves later requests

	resp := EventsResponse{Rejected: append(make([]appevent.Rejection, 0, len(batch.Rejected)), batch.Rejected...)}

	var report ports.PublishReport
	unwritten := 0
	if len(batch.Records) > 0 {
		records := make([]ports.StreamRecord, len(batch.Records))
		for i, r := range batch.Records {
			records[i] = ports.StreamRecord{PartitionKey: r.PartitionKey, Data: r.Data}
		}
		report = h.cfg.Publisher.Publish(ctx, records)
		if len(report.Failed) > 0 {
			// A record that could not be written loses all its events, and only those: each
			// becomes a retryable rejection.
			failed := make(map[int]string, len(report.Failed))
			for _, f := range report.Failed {
				failed[f.Index] = f.ErrorCode
			}
			for _, e := range batch.Accepted {
				code, ok := failed[e.Record]
				if !ok {
					continue
				}
				unwritten++
				resp.Rejected = append(resp.Rejected, appevent.Rejection{
					Index: e.Index, EventID: e.EventID, Retryable: true,
					Errors: []appevent.FieldError{{
						Field:  "events[" + strconv.Itoa(e.Index) + "]",
						Reason: "not stored, the event stream is unavailable (" + code + "): retry with the same event_id",
					}},
				})
			}
			sort.Slice(resp.Rejected, func(i, j int) bool { return resp.Rejected[i].Index < resp.Rejected[j].Index })
		}
	}
	resp.Accepted = len(batch.Accepted) - unwritten

	h.record(log, app.ID, batch, report, unwritten, h.cfg.Now().Sub(start))

	switch {
	case resp.Accepted > 0:
		return apigw.JSON(http.StatusAccepted, resp)
	case unwritten > 0:
		r := apigw.JSON(http.StatusServiceUnavailable, resp)
		r.Headers["Retry-After"] = "1"
		return r
	default:
		return apigw.JSON(http.StatusBadRequest, resp)
	}
}

// authenticate finds the app of the request.
func (h *Handler) authenticate(req events.APIGatewayProxyRequest) (*appconfig.App, bool) {
	return h.appOf(req)
}

// record logs the request and adds its metrics: counts and codes only, no PII. The line is at
// DEBUG (one request is one invocation: the metrics carry the counts), at WARN when events
// could not be written.
func (h *Handler) record(log *slog.Logger, app string, b *appevent.Batch, rep ports.PublishReport, unwritten int, took time.Duration) {
	var reasons map[string]int
	for _, r := range b.Rejected {
		for _, e := range r.Errors {
			if reasons == nil {
				reasons = map[string]int{}
			}
			reasons[e.Code]++
		}
	}
	written := len(b.Accepted) - unwritten
	level := slog.LevelDebug
	if len(rep.Failed) > 0 {
		level = slog.LevelWarn
	}
	if ctx := context.Background(); log.Enabled(ctx, level) {
		attrs := []any{"events", b.Total, "accepted", written, "rejected", len(b.Rejected),
			"unwritten", unwritten, "records", len(b.Records), "records_unwritten", len(rep.Failed),
			"put_calls", rep.Calls, "put_retried", rep.RetriedRecords, "duration_ms", took.Milliseconds()}
		if len(reasons) > 0 {
			attrs = append(attrs, "reject_reasons", reasons)
		}
		if len(rep.Failed) > 0 {
			attrs = append(attrs, "put_error", rep.Failed[0].ErrorCode)
		}
		log.Log(ctx, level, "events ingested", attrs...)
	}

	h.emit(app, "",
		observability.Metric{Name: "EventsReceived", Unit: observability.Count, Value: float64(b.Total)},
		observability.Metric{Name: "EventsAccepted", Unit: observability.Count, Value: float64(written)},
		observability.Metric{Name: "EventsRejected", Unit: observability.Count, Value: float64(len(b.Rejected))},
		observability.Metric{Name: "EventsUnwritten", Unit: observability.Count, Value: float64(unwritten)},
		observability.Metric{Name: "RecordsWritten", Unit: observability.Count, Value: float64(len(b.Records) - len(rep.Failed))},
		observability.Metric{Name: "PutRecordsRetries", Unit: observability.Count, Value: float64(rep.RetriedRecords)},
		observability.Metric{Name: "PutRecordsCalls", Unit: observability.Count, Value: float64(rep.Calls)},
		observability.Metric{Name: "Requests", Unit: observability.Count, Value: 1},
	)
	h.sample(app,
		observability.Metric{Name: "BatchSize", Unit: observability.Count, Value: float64(b.Total)},
		observability.Metric{Name: "IngestLatency", Unit: observability.Milliseconds, Value: float64(took.Microseconds()/10) / 100},
	)
	for code, n := range reasons {
		h.emit(app, code, observability.Metric{Name: "FieldErrors", Unit: observability.Count, Value: float64(n)})
	}
}

// sample adds one value of distributions (one per request) under the app's dimensions.
func (h *Handler) sample(app string, m ...observability.Metric) {
	dims := []observability.Dimension{{Name: "Function", Value: "ingest"}, {Name: "App", Value: app}}
	if h.metrics == nil {
		h.cfg.Metrics.Emit(dims, m...)
		return
	}
	h.metrics.Sample(dims, m...)
}

func (h *Handler) emit(app, reason string, m ...observability.Metric) {
	dims := []observability.Dimension{{Name: "Function", Value: "ingest"}, {Name: "App", Value: app}}
	if reason != "" {
		dims = append(dims, observability.Dimension{Name: "Reason", Value: reason})
	}
	if h.metrics == nil {
		h.cfg.Metrics.Emit(dims, m...)
		return
	}
	h.metrics.Add(dims, m...)
}
