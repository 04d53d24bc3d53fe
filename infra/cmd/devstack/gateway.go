package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/aws/aws-lambda-go/events"

	"github.com/retarget-dev/retarget/shared/domain/access"
	"github.com/retarget-dev/retarget/shared/sandbox/sigv4"
)

// MaxGatewayBody is the largest request body API Gateway (REST) accepts: 10 MB. The ingest
// function itself refuses more than 1 MiB with its own 413.
const MaxGatewayBody = 10 << 20

// proxyResource is the resource of a request that matched no route: the greedy catch-all a REST
// API would need to pass it to the function at all. (A real REST API without it answers 403
// "Missing Authentication Token" itself; the dev stack lets the function answer 404, which says
// more.)
const proxyResource = "/{proxy+}"

// ProxyFunc is a Lambda handler behind a REST API proxy integration.
type ProxyFunc func(context.Context, events.APIGatewayProxyRequest) (events.APIGatewayProxyResponse, error)

// Invoker is a Lambda handler that takes its event as the runtime delivers it (JSON).
type Invoker interface {
	Invoke(ctx context.Context, payload []byte) ([]byte, error)
}

// ViaJSON is fn behind the Lambda runtime: the proxy request goes to it as JSON and its answer
// comes back as JSON, so the function reads its event with its own decoder, as in Lambda.
func ViaJSON(fn Invoker) ProxyFunc {
	return func(ctx context.Context, req events.APIGatewayProxyRequest) (events.APIGatewayProxyResponse, error) {
		var resp events.APIGatewayProxyResponse
		payload, err := json.Marshal(req)
		if err != nil {
			return resp, err
		}
		out, err := fn.Invoke(ctx, payload)
		if err != nil {
			return resp, err
		}
		err = json.Unmarshal(out, &resp)
		return resp, err
	}
}

// AccessEntry describes one request the Gateway served, for the access log. Path is the matched
// route template (e.g. /v1/users/{app_user_id}/segments), never the raw path.
type AccessEntry struct {
	Method, Path string
	Status       int
	RequestID    string
	Took         time.Duration
}

// Gateway is an http.Handler that stands in for API Gateway (REST API, Lambda proxy
// integration; with HTTP set, the HTTP API front door) in front of the API's functions: it checks each route's credential
// (access.Route.Credential) as API Gateway does, translates each HTTP request into the
// events.APIGatewayProxyRequest API Gateway would send, invokes the route's function and
// writes its events.APIGatewayProxyResponse back the way API Gateway does.
//
// Credentials, in API Gateway's order and with its answers: an IAM route first needs a valid
// SigV4 signature (403 "Missing Authentication Token" without one, 403 with API Gateway's text
// for a bad or expired one; on success the caller goes into requestContext.identity); then an
// IAM, end-user or app-key route needs a known x-api-key (403 "Forbidden"). The end user's
// token is the users-api function's to verify. A request for a path or method that is no route
// skips the checks and reaches a function, which answers 404 or 405 (a REST API would answer
// 403 "Missing Authentication Token" itself; the function's answer says more).
type Gateway struct {
	// Function is invoked for requests that match no route, and for routes whose function is
	// not in Functions.
	Function ProxyFunc
	// Functions are the functions behind the routes, by name (access.FunctionIngest, ...).
	Functions map[string]ProxyFunc
	// Routes are the methods of the API (access.Routes). Their paths are the resource
	// templates, e.g. "/v1/events" or "/v1/users/{app_user_id}/segments"; a request that
	// matches none gets resource "/{proxy+}".
	Routes []access.Route
	// APIKeys are the known x-api-key values: the routes that take the app key refuse others.
	APIKeys map[string]bool
	// SigV4 checks the signatures of the IAM routes; nil refuses every IAM request.
	SigV4 *sigv4.Verifier
	// Stage is the stage name (requestContext.stage).
	Stage string
	// Timeout bounds each invocation, like the function's configured timeout. The invocation is
	// not cancelled when the client goes away, as on Lambda.
	Timeout time.Duration
	// Access, if set, is called after each request.
	Access func(AccessEntry)
	// Errors, if set, receives function errors and panics (the client only sees a 502).
	Errors func(requestID string, err error)
	// Models are the request models of the API by "<METHOD> <resource>": a body that fails
	// its model is answered 400 with ModelError (a JSON document) without invoking the
	// function, as API Gateway's request validator and BAD_REQUEST_BODY response do.
	Models     map[string]func(body []byte) bool
	ModelError string
	// HTTP, when set, makes the Gateway the HTTP API front door instead (see HTTPDoor): its
	// authorizers instead of APIKeys, no Models, 404 for what is no route.
	HTTP *HTTPDoor
}

// ServeHTTP serves one request.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	requestID := newRequestID()
	status := g.serve(w, r, requestID, start)
	if g.Access != nil {
		// The route template, as API Gateway's access logs ($context.resourcePath): the raw
		// path can hold an app_user_id, which is personal data.
		route, _ := g.match(r.URL.Path)
		g.Access(AccessEntry{Method: r.Method, Path: route, Status: status, RequestID: requestID, Took: time.Since(start)})
	}
}

func (g *Gateway) serve(w http.ResponseWriter, r *http.Request, requestID string, start time.Time) int {
	w.Header().Set("X-Amzn-Requestid", requestID)
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxGatewayBody))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return gatewayError(w, http.StatusRequestEntityTooLarge, "Request Too Long")
		}
		return gatewayError(w, http.StatusBadRequest, "could not read the request body")
	}
	route, known := g.route(r.Method, r.URL.Path)
	if !known && g.HTTP != nil {
		return gatewayError(w, http.StatusNotFound, msgNotFound) // an HTTP API's router
	}
	var caller *sigv4.Identity
	var authorizer map[string]any
	if known {
		var status int
		if caller, status = g.authorize(w, r, route, body); status != 0 {
			return status
		}
		if g.HTTP != nil {
			if authorizer, status = g.HTTP.authorize(w, r, route, requestID, start); status != 0 {
				return status
			}
		}
	}
	req := g.Translate(r, body, requestID, start)
	if authorizer != nil {
		// Payload format 1.0: the authorizer's context (or the JWT's claims) as API Gateway
		// passes them; the functions read requestContext.authorizer.app.
		req.RequestContext.Authorizer = authorizer
	}
	if caller != nil {
		// What API Gateway puts in the context of an AWS_IAM method (the account from the ARN).
		id := &req.RequestContext.Identity
		id.AccessKey, id.UserArn, id.Caller, id.User = caller.AccessKeyID, caller.UserARN, caller.Caller, caller.Caller
		if parts := strings.Split(caller.UserARN, ":"); len(parts) > 4 {
			id.AccountID = parts[4]
		}
	}
	if valid, ok := g.Models[req.HTTPMethod+" "+req.Resource]; ok && g.HTTP == nil && !valid(body) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		io.WriteString(w, g.ModelError)
		return http.StatusBadRequest
	}

	ctx := context.WithoutCancel(r.Context())
	if g.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, g.Timeout)
		defer cancel()
	}
	resp, err := g.invoke(ctx, g.function(req.Resource), req)
	if err != nil {
		if g.Errors != nil {
			g.Errors(requestID, err)
		}
		// What API Gateway answers when the function fails or returns a malformed response.
		return gatewayError(w, http.StatusBadGateway, "Internal server error")
	}
	return writeResponse(w, resp)
}

// Answers of API Gateway to requests its checks refuse (403, {"message": ...}).
const (
	msgForbidden    = "Forbidden"
	msgMissingToken = "Missing Authentication Token"
	msgBadSignature = "The request signature we calculated does not match the signature you provided. " +
		"Check your AWS Secret Access Key and signing method. Consult the service documentation for details."
	msgIncompleteSignature = "Authorization header requires 'Credential' parameter. Authorization header requires 'Signature' parameter. " +
		"Authorization header requires 'SignedHeaders' parameter. Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header."
	msgInvalidToken = "The security token included in the request is invalid."
)

// route is the route of a method and path, if the API has one.
func (g *Gateway) route(method, path string) (access.Route, bool) {
	resource, _ := g.match(path)
	for _, rt := range g.Routes {
		if rt.Method == method && rt.Path == resource {
			return rt, true
		}
	}
	return access.Route{}, false
}

// function is the function behind a resource: the one of its routes (every method of a
// resource goes to one function, so a wrong method gets that function's 405), else Function.
func (g *Gateway) function(resource string) ProxyFunc {
	for _, rt := range g.Routes {
		if rt.Path == resource {
			if f, ok := g.Functions[rt.Function]; ok {
				return f
			}
			break
		}
	}
	return g.Function
}

// authorize checks the route's credential. It returns the IAM caller of an IAM route, or the
// status of the refusal it wrote (0 when the request may pass).
func (g *Gateway) authorize(w http.ResponseWriter, r *http.Request, route access.Route, body []byte) (*sigv4.Identity, int) {
	var caller *sigv4.Identity
	if route.Credential == access.IAM {
		if g.SigV4 == nil {
			return nil, gatewayError(w, http.StatusForbidden, msgMissingToken)
		}
		id, err := g.SigV4.Verify(r.Context(), r, body)
		if err != nil {
			return nil, gatewayError(w, http.StatusForbidden, g.signatureMessage(r, err))
		}
		caller = &id
	}
	if g.HTTP == nil && route.Credential.NeedsAppKey() && !g.APIKeys[r.Header.Get("x-api-key")] {
		return nil, gatewayError(w, http.StatusForbidden, msgForbidden)
	}
	return caller, 0
}

// signatureMessage is API Gateway's answer to a signature sigv4 refused.
func (g *Gateway) signatureMessage(r *http.Request, err error) string {
	a, _ := sigv4.ParseAuthorization(r.Header.Get("Authorization"))
	amzDate := r.Header.Get(sigv4.HeaderDate)
	switch {
	case errors.Is(err, sigv4.ErrMissing):
		return msgMissingToken
	case errors.Is(err, sigv4.ErrMalformed):
		return msgIncompleteSignature
	case errors.Is(err, sigv4.ErrUnknownKey):
		return msgInvalidToken
	case errors.Is(err, sigv4.ErrService):
		return "Credential should be scoped to correct service: '" + sigv4.Service + "'. "
	case errors.Is(err, sigv4.ErrRegion):
		return "Credential should be scoped to a valid region, not '" + a.Region + "'. "
	case errors.Is(err, sigv4.ErrDate):
		return fmt.Sprintf("Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '%s' != '%.8s', from '%s'.",
			a.Date, amzDate, amzDate)
	case errors.Is(err, sigv4.ErrExpired):
		now := time.Now
		if g.SigV4.Now != nil {
			now = g.SigV4.Now
		}
		t := now().UTC()
		if signed, _ := time.Parse(sigv4.TimeFormat, amzDate); signed.After(t) {
			return fmt.Sprintf("Signature not yet current: %s is still later than %s (%s + 5 min.)",
				amzDate, t.Add(sigv4.MaxSkew).Format(sigv4.TimeFormat), t.Format(sigv4.TimeFormat))
		}
		return fmt.Sprintf("Signature expired: %s is now earlier than %s (%s - 5 min.)",
			amzDate, t.Add(-sigv4.MaxSkew).Format(sigv4.TimeFormat), t.Format(sigv4.TimeFormat))
	}
	return msgBadSignature // ErrSignature, ErrPayloadHash
}

// invoke calls the function; a panic becomes an error, as the Lambda runtime reports it.
func (g *Gateway) invoke(ctx context.Context, fn ProxyFunc, req events.APIGatewayProxyRequest) (resp events.APIGatewayProxyResponse, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("function panicked: %v", p)
		}
	}()
	resp, err = fn(ctx, req)
	if err == nil && (resp.StatusCode < 100 || resp.StatusCode > 599) {
		err = fmt.Errorf("malformed proxy response: statusCode %d", resp.StatusCode)
	}
	return resp, err
}

// Translate builds the proxy request API Gateway would send for r with the given body.
func (g *Gateway) Translate(r *http.Request, body []byte, requestID string, at time.Time) events.APIGatewayProxyRequest {
	resource, pathParams := g.match(r.URL.Path)
	sourceIP := r.RemoteAddr
	if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		sourceIP = host
	}

	// Go's server drops Host from the header map and canonicalises names (x-api-key arrives as
	// X-Api-Key; API Gateway keeps the client's spelling). Header names are case-insensitive, and
	// the function matches them that way.
	hdr := r.Header.Clone()
	if hdr == nil {
		hdr = http.Header{}
	}
	hdr.Set("Host", r.Host)
	if prior := hdr.Get("X-Forwarded-For"); prior != "" {
		hdr.Set("X-Forwarded-For", prior+", "+sourceIP)
	} else {
		hdr.Set("X-Forwarded-For", sourceIP)
	}
	hdr.Set("X-Forwarded-Proto", "http")
	if _, port, err := net.SplitHostPort(r.Host); err == nil {
		hdr.Set("X-Forwarded-Port", port)
	}
	single, multi := flatten(hdr)

	req := events.APIGatewayProxyRequest{
		Resource:          resource,
		Path:              r.URL.Path,
		HTTPMethod:        r.Method,
		Headers:           single,
		MultiValueHeaders: multi,
		PathParameters:    pathParams,
		RequestContext: events.APIGatewayProxyRequestContext{
			AccountID:        "123456789012",
			ResourceID:       "devstack",
			Stage:            g.Stage,
			DomainName:       r.Host,
			RequestID:        requestID,
			Protocol:         r.Proto,
			ResourcePath:     resource,
			Path:             "/" + g.Stage + r.URL.Path,
			HTTPMethod:       r.Method,
			RequestTime:      at.UTC().Format("02/Jan/2006:15:04:05 -0700"),
			RequestTimeEpoch: at.UnixMilli(),
			APIID:            "devstack",
			Identity: events.APIGatewayRequestIdentity{
				SourceIP:  sourceIP,
				UserAgent: r.UserAgent(),
				APIKeyID:  "", // no API Gateway key ids in dev: the function maps dev keys itself
			},
		},
	}
	if q := r.URL.Query(); len(q) > 0 {
		req.QueryStringParameters, req.MultiValueQueryStringParameters = flatten(q)
	}
	switch {
	case len(body) == 0:
	case utf8.Valid(body):
		req.Body = string(body)
	default:
		req.Body = base64.StdEncoding.EncodeToString(body)
		req.IsBase64Encoded = true
	}
	return req
}

// match finds the route template of path and its path parameters. "{name}" matches one
// segment, "{name+}" the rest of the path.
func (g *Gateway) match(path string) (string, map[string]string) {
	segs := strings.Split(strings.TrimPrefix(path, "/"), "/")
	for _, route := range g.Routes {
		if params, ok := matchTemplate(strings.Split(strings.TrimPrefix(route.Path, "/"), "/"), segs); ok {
			return route.Path, params
		}
	}
	return proxyResource, map[string]string{"proxy": strings.TrimPrefix(path, "/")}
}

func matchTemplate(tmpl, segs []string) (map[string]string, bool) {
	var params map[string]string
	for i, t := range tmpl {
		name, isParam := strings.CutPrefix(t, "{")
		name, _ = strings.CutSuffix(name, "}")
		if greedy, ok := strings.CutSuffix(name, "+"); isParam && ok && i == len(tmpl)-1 {
			if i >= len(segs) || segs[i] == "" {
				return nil, false
			}
			if params == nil {
				params = map[string]string{}
			}
			params[greedy] = strings.Join(segs[i:], "/")
			return params, true
		}
		if i >= len(segs) {
			return nil, false
		}
		switch {
		case isParam && segs[i] != "":
			if params == nil {
				params = map[string]string{}
			}
			params[name] = segs[i]
		case t != segs[i]:
			return nil, false
		}
	}
	return params, len(tmpl) == len(segs)
}

// flatten returns API Gateway's two views of a multi-valued map: the last value of each key,
// and all of them. Both are nil when m is empty (API Gateway sends null).
func flatten(m map[string][]string) (map[string]string, map[string][]string) {
	if len(m) == 0 {
		return nil, nil
	}
	single := make(map[string]string, len(m))
	multi := make(map[string][]string, len(m))
	for k, vs := range m {
		if len(vs) == 0 {
			continue
		}
		single[k] = vs[len(vs)-1]
		multi[k] = slices.Clone(vs)
	}
	return single, multi
}

// writeResponse writes a proxy response as API Gateway does: multiValueHeaders and headers are
// merged (a pair present in both appears once) and a base64 body is decoded.
func writeResponse(w http.ResponseWriter, resp events.APIGatewayProxyResponse) int {
	body := []byte(resp.Body)
	if resp.IsBase64Encoded {
		raw, err := base64.StdEncoding.DecodeString(resp.Body)
		if err != nil {
			return gatewayError(w, http.StatusBadGateway, "Internal server error")
		}
		body = raw
	}
	h := w.Header()
	for k, vs := range resp.MultiValueHeaders {
		for _, v := range vs {
			h.Add(k, v)
		}
	}
	for k, v := range resp.Headers {
		if !slices.Contains(h.Values(k), v) {
			h.Add(k, v)
		}
	}
	w.WriteHeader(resp.StatusCode)
	w.Write(body)
	return resp.StatusCode
}

// gatewayError writes an error that API Gateway itself would answer ({"message": ...}).
func gatewayError(w http.ResponseWriter, status int, msg string) int {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	fmt.Fprintf(w, "{\"message\":%q}", msg)
	return status
}

// newRequestID returns a random UUID (version 4), the shape of API Gateway request ids.
func newRequestID() string {
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}
