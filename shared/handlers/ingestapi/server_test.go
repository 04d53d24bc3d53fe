package ingestapi

import (
	"testing"

	"github.com/aws/aws-lambda-go/events"

	"github.com/retarget-dev/retarget/shared/testkit/ingesttest"
)

// POST /v1/server/events: the /v1/events body and answers, an IAM caller required, and every
// accepted record marked server-sent; /v1/events never marks one.
func TestServerEvents(t *testing.T) {
	noIAM := func(r *events.APIGatewayProxyRequest) {
		r.RequestContext.Identity.UserArn, r.RequestContext.Identity.AccessKey = "", ""
	}
	noKey := func(r *events.APIGatewayProxyRequest) {
		r.RequestContext.Identity.APIKeyID = ""
		delete(r.Headers, "x-api-key")
		delete(r.MultiValueHeaders, "x-api-key")
	}
	accessKeyOnly := func(r *events.APIGatewayProxyRequest) { r.RequestContext.Identity.UserArn = "" }
	for _, tt := range []struct {
		name   string
		edit   func(*events.APIGatewayProxyRequest)
		status int
		server int // events on the stream, all server-sent
	}{
		{"signed, with the key", func(*events.APIGatewayProxyRequest) {}, 202, 2},
		{"access key id only", accessKeyOnly, 202, 2},
		{"no IAM caller", noIAM, 403, 0},
		{"no app key", noKey, 401, 0},
		{"neither", func(r *events.APIGatewayProxyRequest) { noIAM(r); noKey(r) }, 401, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, nil)
			resp := h.invoke(t, withRequest(t, ingesttest.FixtureJSON(t, "server-events.json"), tt.edit))
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tt.status, resp.Body)
			}
			if r := decode(t, resp); tt.status == 202 && (r.Accepted != 2 || len(r.Rejected) != 0) {
				t.Fatalf("answer %s", resp.Body)
			}
			evs := h.streamEvents(t)
			if len(evs) != tt.server {
				t.Fatalf("%d events on the stream, want %d", len(evs), tt.server)
			}
			for _, env := range evs {
				if !env.Event.Server {
					t.Fatalf("event not marked server-sent: %+v", env)
				}
			}
		})
	}

	// The app's own events, even from a request that carries an IAM caller, are not marked.
	h := newHarness(t, nil)
	resp := h.invoke(t, withRequest(t, ingesttest.FixtureJSON(t, "valid-batch.json"), func(r *events.APIGatewayProxyRequest) {
		r.RequestContext.Identity.UserArn = "arn:aws:iam::123456789012:user/shop-backend"
	}))
	if resp.StatusCode != 202 {
		t.Fatalf("/v1/events = %d %s", resp.StatusCode, resp.Body)
	}
	for _, env := range h.streamEvents(t) {
		if env.Event.Server {
			t.Fatalf("/v1/events event marked server-sent: %+v", env)
		}
	}
}
