package metagraph

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/retarget-dev/retarget/shared/ports"
)

// bigEvents returns n events whose JSON totals about size bytes.
func bigEvents(n, size int) []json.RawMessage {
	pad := strings.Repeat("x", size/n)
	ev := make([]json.RawMessage, n)
	for i := range ev {
		ev[i] = json.RawMessage(fmt.Sprintf(`{"event_name":"Purchase","event_id":"e%d","action_source":"app","custom_data":{"description":%q}}`, i, pad))
	}
	return ev
}

// TestTimeoutGrowsWithRequestSize: a slow Meta (here 600 ms, over the 300 ms base) still takes
// a 2 MiB batch, whose budget is the base plus 2 x 400 ms; a small request on the same server
// times out at the base.
func TestTimeoutGrowsWithRequestSize(t *testing.T) {
	const delay = 600 * time.Millisecond
	var g *graph
	g = newGraph(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
			return
		case <-time.After(delay):
		}
		n := strings.Count(string(g.last(t).body), "event_name")
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"events_received":%d,"fbtrace_id":"AbC"}`, n)
	})
	c := newClient(t, g, func(c *Config) {
		c.Timeout, c.TimeoutPerMiB = 300*time.Millisecond, 400*time.Millisecond
	})

	big := bigEvents(1000, 2<<20)
	ack, err := c.SendEvents(context.Background(), ports.CAPIRequest{DatasetID: "1", Events: big})
	if err != nil {
		t.Fatalf("2 MiB request: %v", err)
	}
	if ack.EventsReceived != len(big) {
		t.Fatalf("events_received %d, want %d", ack.EventsReceived, len(big))
	}
	if n := len(g.last(t).body); n < 2<<20 {
		t.Fatalf("body of %d bytes, want at least 2 MiB", n)
	}

	start := time.Now()
	_, err = c.SendEvents(context.Background(), ports.CAPIRequest{DatasetID: "1", Events: events(1)})
	var ce *ports.CAPIError
	if !errors.As(err, &ce) || ce.Class != ports.CAPITransient || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("small request: err = %v, want a timeout", err)
	}
	if took := time.Since(start); took >= delay {
		t.Fatalf("small request took %v: not cut off at the base timeout", took)
	}
}

func TestRequestTimeout(t *testing.T) {
	for _, tc := range []struct {
		bytes int
		want  time.Duration
	}{
		{0, 1500 * time.Millisecond},
		{1 << 19, 2 * time.Second},
		{2 << 20, 3500 * time.Millisecond},
	} {
		if got := requestTimeout(DefaultTimeout, DefaultTimeoutPerMiB, tc.bytes); got != tc.want {
			t.Errorf("%d bytes: %v, want %v", tc.bytes, got, tc.want)
		}
	}
	if c := New(Config{AccessToken: "t"}); c.perMiB != DefaultTimeoutPerMiB {
		t.Errorf("default per MiB %v", c.perMiB)
	}
}
