package metagraph

import (
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/retarget-dev/retarget/shared/adapters/observability"
	"github.com/retarget-dev/retarget/shared/domain/metaversions"
)

// codeVersionExpired is Meta's error for a call on a deprecated or expired API version: "an
// expired Marketing API version answers 2635 unless the endpoint is unchanged in the next
// version" (https://developers.facebook.com/blog/post/2024/04/16/upcoming-change-in-marketing-api-version-deprecation,
// and the Marketing API error codes). Whether the Conversions API, on the Graph API's schedule,
// ever answers it rather than upgrading the call is unverified (infra/docs/guarantees.md): it is
// classed the same for both.
const codeVersionExpired = 2635

// VersionWarningHeader is the header Meta adds to answers on a Marketing API version that nears
// its expiry (see /work/shared/reference/meta-api.md, "Corrections and additions": Meta sends
// X-Ad-Api-Version-Warning before expiry). Its wording is Meta's and not parsed.
const VersionWarningHeader = "X-Ad-Api-Version-Warning"

// Metric names of the version watch (namespace of the Emitter, dimensions Function and API).
const (
	// MetricVersionDaysLeft is the days left of the configured version, emitted at cold start
	// when Meta published its expiry; the stack alarms under metaversions.AlarmDays.
	MetricVersionDaysLeft = "MetaAPIVersionDaysLeft"
	// MetricVersionWarnings counts answers that carried VersionWarningHeader (at most one data
	// point a minute per container).
	MetricVersionWarnings = "MetaAPIVersionWarnings"
)

// versionWarning hands the answer's version warning, if any, to Config.OnVersionWarning.
func (c *Client) versionWarning(h http.Header) {
	if c.warned == nil {
		return
	}
	if w := h.Get(VersionWarningHeader); w != "" {
		c.warned(w)
	}
}

// VersionWatch watches one function's Meta API version: it reports the days left at cold start
// (Start) and turns Meta's version warnings (Warned, wired as Config.OnVersionWarning) into one
// WARN log line per container and a metric. Safe for concurrent use.
type VersionWatch struct {
	Logger   *slog.Logger
	Metrics  *observability.Emitter
	Function string
	API      metaversions.API
	Version  string
	// Now is the clock (default time.Now).
	Now func() time.Time

	once sync.Once
	mu   sync.Mutex
	last time.Time // last warning metric
	n    int       // warnings since
}

func (w *VersionWatch) now() time.Time {
	if w.Now != nil {
		return w.Now()
	}
	return time.Now()
}

func (w *VersionWatch) logger() *slog.Logger {
	if w.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return w.Logger
}

func (w *VersionWatch) dims() []observability.Dimension {
	return []observability.Dimension{{Name: "Function", Value: w.Function}, {Name: "API", Value: string(w.API)}}
}

// Start checks the version against the table once, at cold start: it logs what the table says
// (an ALERT when expired, a WARN within metaversions.WarnDays or for a version it does not know)
// and emits MetricVersionDaysLeft when the expiry is published.
func (w *VersionWatch) Start() metaversions.Status {
	s := metaversions.Check(w.API, w.Version, w.now())
	log := w.logger()
	attrs := []any{"function", w.Function, "api", string(w.API), "version", w.Version}
	switch {
	case s.Expired():
		log.Error("ALERT: the configured Meta API version has expired: configure a newer one", append(attrs, "status", s.String())...)
	case s.Within(metaversions.WarnDays):
		log.Warn("the configured Meta API version expires soon: configure a newer one", append(attrs, "status", s.String())...)
	case !s.Known:
		log.Warn("the configured Meta API version is not in the version table", append(attrs, "status", s.String())...)
	default:
		log.Info("Meta API version", append(attrs, "status", s.String())...)
	}
	if s.HasExpiry {
		w.Metrics.Emit(w.dims(), observability.Metric{Name: MetricVersionDaysLeft, Unit: observability.Count, Value: float64(s.DaysLeft)})
	}
	return s
}

// Warned records one answer carrying Meta's version warning: the first of the container is
// logged as a WARN; the count goes to MetricVersionWarnings at most once a minute.
func (w *VersionWatch) Warned(warning string) {
	w.once.Do(func() {
		w.logger().Warn("Meta warns that the API version nears its end: configure a newer one",
			"function", w.Function, "api", string(w.API), "version", w.Version, "warning", truncate(warning, 300))
	})
	now := w.now()
	w.mu.Lock()
	w.n++
	if now.Sub(w.last) < time.Minute {
		w.mu.Unlock()
		return
	}
	n := w.n
	w.n, w.last = 0, now
	w.mu.Unlock()
	w.Metrics.Emit(w.dims(), observability.Metric{Name: MetricVersionWarnings, Unit: observability.Count, Value: float64(n)})
}
