// Package metasandbox is a local stand-in for Meta's Graph API endpoint
// POST /{version}/{dataset_id}/events (the Conversions API), and for the Custom Audience
// endpoints (see "Custom Audiences" below), for `make dev` and for tests.
//
// It answers the way Meta does: the same success body, the same error envelope, and one invalid
// event rejects the whole request. It validates on its own, from Meta's rules, and shares no code
// with the project's mapping (shared/domain/capi, shared/domain/appevent): it is the contract the forwarder is
// tested against, so a mapping bug cannot hide in a shared helper.
//
// # Status codes
//
// Every error that carries Meta's envelope is HTTP 400, auth errors included: that is what Graph
// has answered CAPI callers for years. (One capture of v26.0 answered a garbage token with 401;
// clients must branch on the envelope's code, not on the HTTP status.) Only injected faults use
// other statuses: 500 with code 2, or a bare 503 with an HTML body.
//
// # Checks, in order
//
//	what                                         code  subcode  notes
//	(Faults.TimeoutRate: hold, then go on)
//	Faults.ServerErrorRate                       2     -        HTTP 500, is_transient; or a bare 503
//	path not /{version}/{dataset}/events         2500  -        "Unknown path components"
//	version not served (Config.Version, .Versions)
//	or in the expired list (Versions)            2635  -        "deprecated version"
//	method other than POST                       100   33       GraphMethodException
//	body not JSON / form / multipart             100   -        "(#100) ..."
//	Faults.TokenExpired                          190   463      "Error validating access token: Session has expired ..."
//	access_token missing or wrong                190   -        Meta uses 104 for a missing one
//	appsecret_proof missing or wrong (AppSecret) 100   -        OAuthException
//	Faults.RateLimitRate                         4...  -        is_transient, usage headers at 100%
//	dataset not in Config.Datasets               100   33       GraphMethodException "Unsupported post request..."
//	data missing / not an array                  100   -        "(#100) The parameter data is required" / "... must be an array."
//	data empty or over 1,000 events              100   -        "Invalid parameter"
//	per event, the first violation only:
//	  event_name missing, or not ^[0-9a-zA-Z_][0-9a-zA-Z _-]{0,39}$         100 2804019
//	  event_time missing or not an integer                                  100 2804019
//	  event_time more than 7 days old                                       100 2804003
//	  event_time more than 60 s in the future                               100 2804004
//	  event_id not a string; opt_out not a boolean                          100 2804019
//	  action_source missing or unknown                                      100 2804019
//	  advertiser_tracking_enabled at the event's top level                  100 2804019
//	  user_data missing or not an object                                    100 2804019
//	  em ph fn ln ge db ct st zp country external_id: not a string or list  100 2804019
//	  ... a value that is not 64 lowercase hex characters                   100 2804016
//	  madid anon_id client_ip_address client_user_agent fbc fbp ...: not a
//	  string, or client_ip_address not an IP address                        100 2804019
//	  user_data without any customer information                            100 2804050
//	  action_source "app": app_data missing; advertiser_tracking_enabled or
//	  application_tracking_enabled missing or not the integer 0 or 1 (a
//	  boolean is "out of range"); extinfo not 16 strings, slot 0 not a2/i2,
//	  slot 4 (OS version) empty                                             100 2804019
//	  custom_data not an object; value not a number; currency not 3
//	  letters; value without currency; Purchase without value and currency  100 2804019
//	  data_processing_options not an array of "LDU"; _country/_state not
//	  integers, or one without the other                                    100 2804019
//
// A per-event error names the event's 0-based index in data: error_user_msg starts with
// "Event 3: ". Messages never quote user_data values (they may be unhashed PII).
//
// Accepted events that Meta takes but cannot match produce warnings in the success body's
// "messages": a hashed key equal to SHA-256 of "" and a madid that looks hashed.
//
// # Custom Audiences
//
// POST /{version}/act_{ad_account}/customaudiences creates a customer-list audience and answers
// {"id": "<numeric id>"}; GET on the same edge lists the account's audiences ({"data": [{"id",
// "name"}]}), filtered by name with filtering=[{"field":"name","operator":"EQUAL","value":...}].
// An audience deleted with POST /_sandbox/audiences/{id}/delete (as Meta deletes audiences
// unused for two years) answers 100/33 afterwards, like an id that never existed. POST /{version}/{audience}/users adds users, DELETE (same body)
// removes them, POST /{version}/{audience}/usersreplace replaces the whole membership. Their
// body (JSON or form) carries payload = {"schema", "data"} and session = {"session_id",
// "batch_seq", "last_batch_flag", "estimated_num_total"}; the answer is {"audience_id",
// "session_id", "num_received" (cumulative for the session), "num_invalid_entries" (this
// batch), "invalid_entry_samples" (row index -> reason, never a value; at most 10)}.
//
// Checks, in order (the first failing one answers):
//
//	what                                                  code  subcode  notes
//	Faults.ServerErrorRate                                2     -        as for events
//	version not served, or expired (as for events)        2635  -
//	customaudiences or usersreplace not POST; users not
//	POST or DELETE                                        100   33       GraphMethodException
//	/users or /usersreplace body larger than
//	Faults.AudienceMaxBodyBytes                           -     -        bare HTTP 413
//	body not JSON / form / multipart                      100   -
//	Faults.TokenExpired; token; appsecret_proof           190/100        exactly as for events
//	Faults.AudienceRateLimitRate                          80003 -        is_transient; BUC header type custom_audience
//	ad account not in Config.AdAccounts, no act_ prefix;
//	audience unknown                                      100   33       GraphMethodException
//	Faults.TermsNotAccepted                               200   1870090
//	create: name, subtype, customer_file_source missing;
//	subtype not CUSTOM; source not one of the three;
//	is_value_based not a boolean                          100   -
//	create: the account holds 500 audiences already       2654  -        guessed code
//	payload missing / not an object; data missing / not
//	an array; schema missing                              100   -
//	schema: not one single-key name (EMAIL_SHA256,
//	PHONE_SHA256, MOBILE_ADVERTISER_ID, EXTERN_ID) nor a
//	list of distinct multi-key names; LOOKALIKE_VALUE on
//	a plain audience, or missing on a value-based one     100   -        "Invalid Schema" / "Missing LOOKALIKE_VALUE"
//	data empty or over 10,000 rows                        100   -
//	a row not an array of len(schema) cells (a
//	single-key row may be the bare value)                 100   -        "Data Schema Mismatch", names the row index
//	usersreplace schema naming LOOKALIKE_VALUE (not among
//	its documented keys: no replace of a value-based
//	audience)                                             100   -        "Invalid Schema"; unverified at Meta
//	session missing on usersreplace; session_id not a
//	positive int64; batch_seq not a positive integer;
//	last_batch_flag not a boolean                         100   -        /users without a session: one batch on its own
//	session_id already used in this ad account by
//	another audience or operation                         100   -        guess
//	batch_seq already acknowledged                        -     -        200 with the first answer again; nothing re-applied
//	session finished (last_batch_flag seen)               2650  1870159
//	session 90 minutes past its first batch               2650  1870158  replays included
//	a replace session is open on the audience             2650  1870145  is_transient; /users and other replaces
//	first batch_seq not 1, or not previous + 1            2650  1870147  Meta only documents the first; /users too
//	remove leaving fewer than Config.RemovalMinSize
//	members (default 100), or the last members, or any
//	remove under Faults.RefuseRemovals; replace finishing
//	without any valid row                                 2650  -        "Audience Size Too Low" (code guessed)
//
// Row rules make one row invalid (counted, sampled), never the request: a cell that is not a
// string (numbers are taken as their text); a hashed column (all but EXTERN_ID, MADID,
// MOBILE_ADVERTISER_ID, LOOKALIKE_VALUE) that is not 64 lowercase hex or is SHA-256 of "";
// MADID not a lowercase UUID, or the zeroed one; LOOKALIKE_VALUE not a non-negative number,
// or empty on a value-based audience; no non-empty identifier at all. "" is an unknown cell.
//
// Membership: a member is keyed by the row's EXTERN_ID, else its first non-empty identifier,
// and holds the row (AudienceMembers). Add inserts or overwrites, remove deletes by key, a
// replace session stages its rows and swaps them in at its last batch; one that times out is
// dropped. Ids of audiences are never reused, not even after Reset.
//
// # Marketing API reading
//
// Ad accounts (currency, timezone_name), ad sets with their targeting, and Ads Insights
// (synchronous, and the asynchronous report runs), with deterministic synthetic spend, restated
// recent days and the insights usage headers: see adsets.go and insights.go (Config.Ads).
//
// # Faults
//
// Each Graph request draws five numbers from a rand seeded with Faults.Seed, so a sequence of
// requests meets the same faults on every run. SetFaults and Reset restart the sequence. A held
// request (TimeoutRate) is answered normally after TimeoutDelay, like Meta, which may well have
// taken events whose caller gave up: a retry then sends them twice (Meta dedups on event_id).
// Custom Audience requests draw from the same sequence; ServerErrorRate and TokenExpired apply
// to them, AudienceRateLimitRate, TermsNotAccepted, AudienceMaxBodyBytes and RefuseRemovals only to them, and
// TimeoutRate, RateLimitRate and PoisonEventIDs only to events.
//
// # Developer endpoints
//
// Besides the Graph endpoints: GET /health; GET /_sandbox/events (Accepted: the latest
// MaxAccepted events; the header X-Sandbox-Events-Dropped counts those forgotten), GET
// /_sandbox/requests (Requests), GET /_sandbox/audiences (Audiences), GET
// /_sandbox/audiences/{id} (the audience, its members and sessions), GET /_sandbox/adsets
// (AllAdSets: every ad set with its status, budget, targeting, ads and recent budget changes;
// see adsetwrite.go), GET and POST /_sandbox/faults (Faults as JSON; POST replaces
// them all, unknown fields are refused), GET and POST /_sandbox/versions (Versions: the expired
// and warning lists), POST /_sandbox/reset. For example:
//
//	curl -X POST $SANDBOX/_sandbox/faults -d '{"server_error_rate":0.3,"timeout_rate":0.1,"timeout_delay":"3s","seed":7}'
//	curl -X POST $SANDBOX/_sandbox/faults -d '{}'   # all faults off
package metasandbox

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultVersion is the Graph version the sandbox accepts when Config.Version is empty.
const DefaultVersion = "v26.0"

// DefaultTimeoutDelay is how long a request drawn for TimeoutRate is held by default.
const DefaultTimeoutDelay = 3 * time.Second

// DefaultMaxAccepted bounds the accepted events a sandbox keeps: a long `make dev` or load test
// must not grow without end. Each is kept as its JSON text, decoded when read: about 1.4 KB of
// heap (BenchmarkAcceptedMemory), so about 270 MB at the limit.
const DefaultMaxAccepted = 200_000

// DefaultRemovalMinSize is Config.RemovalMinSize's default: an audience needs about 100
// matched people to be usable, and Meta refuses removals from smaller ones ("audience size too
// low", reference meta-api.md section 2; the message integrators saw is "Audience Size too low:
// You cannot remove users from this audience because it will result in a low audience size",
// https://github.com/grouparoo/grouparoo/pull/1108). Meta's exact threshold and error code are
// not published: both are the sandbox's guesses.
const DefaultRemovalMinSize = 100

// DefaultRateLimitCodes are the throttling codes drawn when Faults.RateLimitCodes is empty:
// application, user, page, ads-API and business-use-case limits.
var DefaultRateLimitCodes = []int{4, 17, 32, 613, 80001}

// Fault names as they appear in RequestLog.Fault.
const (
	FaultServerError  = "server_error" // HTTP 500, code 2
	FaultUnavailable  = "unavailable"  // bare HTTP 503
	FaultRateLimit    = "rate_limit"   // HTTP 400 with a throttling code and usage headers
	FaultTokenExpired = "token_expired"
)

// Config describes the sandbox's one app: its token, secret and datasets.
type Config struct {
	// Version is the Graph version accepted in the path. Default DefaultVersion.
	Version string
	// Versions are further versions accepted (see Versions). When Version and Versions are
	// both empty, the default Marketing API version (metaversions.DefaultMarketing) is.
	Versions []string
	// ExpiredVersions answer 2635, WarnVersions carry X-Ad-Api-Version-Warning (see Versions).
	ExpiredVersions, WarnVersions []string
	// AccessToken is the only token accepted. Required.
	AccessToken string
	// AppSecret, when set, makes appsecret_proof required: lowercase hex
	// HMAC-SHA256(key = AppSecret, message = access token).
	AppSecret string
	// Datasets are the known dataset ids. A config needs at least one dataset or ad account.
	Datasets []string
	// AdAccounts are the known ad account ids for the Custom Audience endpoints, digits with or
	// without the "act_" prefix. An unknown account answers 100/33 like an unknown dataset.
	AdAccounts []string
	// Now is the clock for event_time checks and logs. Default time.Now.
	Now func() time.Time
	// Faults are the initial faults.
	Faults Faults
	// MaxAccepted is how many accepted events the sandbox keeps for Accepted and
	// /_sandbox/events; past it the oldest are forgotten (AcceptedDropped counts them). 0 means
	// DefaultMaxAccepted; negative, no limit. Deduplication and the request log do not depend
	// on it.
	MaxAccepted int
	// RemovalMinSize refuses a removal ("Audience Size Too Low") that would leave the audience
	// with fewer members than this, as Meta refuses removals from small audiences. 0 means
	// DefaultRemovalMinSize; a negative value turns the threshold off (a removal that would
	// empty the audience is still refused).
	RemovalMinSize int
	// Ads configures the ad accounts, ad sets and Insights (adsets.go, insights.go).
	Ads AdsConfig
}

// Faults are failures injected into Graph requests. Rates are probabilities in [0, 1], drawn
// per request.
type Faults struct {
	// ServerErrorRate answers HTTP 500 {"error":{"code":2,"is_transient":true,...}} or, one time
	// in two, a bare HTTP 503.
	ServerErrorRate float64
	// TimeoutRate holds the request for TimeoutDelay before answering it.
	TimeoutRate float64
	// TimeoutDelay defaults to DefaultTimeoutDelay (clients should time out at about 1.5 s).
	TimeoutDelay time.Duration
	// RateLimitRate answers HTTP 400 with a code drawn from RateLimitCodes and the
	// X-Business-Use-Case-Usage and X-App-Usage headers at 100%.
	RateLimitRate float64
	// RateLimitCodes defaults to DefaultRateLimitCodes.
	RateLimitCodes []int
	// RegainAccessMinutes is the estimated_time_to_regain_access in the usage header.
	RegainAccessMinutes int
	// TokenExpired answers every request with code 190, subcode 463.
	TokenExpired bool
	// PoisonEventIDs are events Meta refuses as invalid (code 100, subcode 2804019): a request
	// holding one is rejected whole, as one invalid event rejects a real CAPI request. Tests use
	// it to prove that a poison event is isolated and dead-lettered alone.
	PoisonEventIDs []string
	// AudienceRateLimitRate answers the Custom Audience endpoints with code 80003 and an
	// X-Business-Use-Case-Usage header of type "custom_audience" (RegainAccessMinutes applies).
	// RateLimitRate does not apply to those endpoints; ServerErrorRate and TokenExpired do.
	AudienceRateLimitRate float64
	// TermsNotAccepted answers the Custom Audience endpoints with 200/1870090, as for an ad
	// account whose Custom Audience terms were never accepted.
	TermsNotAccepted bool
	// AudienceMaxBodyBytes, when above 0, answers /users and /usersreplace calls whose body is
	// larger with a bare HTTP 413: Meta support has seen a ~60 KB ceiling in practice.
	AudienceMaxBodyBytes int
	// RefuseRemovals refuses every removal (DELETE /users) with "Audience Size Too Low", as
	// Meta does for an audience below its threshold, whatever Config.RemovalMinSize says.
	RefuseRemovals bool
	// AudienceUsageBudget, when above 0, is how many Custom Audience calls an ad account may
	// make per AudienceUsageWindow: every answer carries the usage headers, rising with the
	// calls, and a call above 100% is throttled (code 80003, the time left in the window as
	// reset_time_duration and estimated_time_to_regain_access; see usage.go).
	AudienceUsageBudget int
	// AudienceUsageWindow defaults to DefaultAudienceUsageWindow.
	AudienceUsageWindow time.Duration
	// Seed seeds the draws; 0 is a seed like any other.
	Seed int64
}

// AcceptedEvent is one event of an accepted request.
type AcceptedEvent struct {
	Dataset       string    `json:"dataset"`
	TestEventCode string    `json:"test_event_code,omitempty"`
	PartnerAgent  string    `json:"partner_agent,omitempty"`
	FBTraceID     string    `json:"fbtrace_id"`
	ReceivedAt    time.Time `json:"received_at"`
	// Event is the event as sent, decoded with numbers as json.Number. Treat it as read-only.
	Event     map[string]any `json:"event"`
	EventID   string         `json:"event_id,omitempty"`
	EventName string         `json:"event_name"`
	// Raw is the event's exact JSON text.
	Raw json.RawMessage `json:"-"`
}

// RequestLog describes one Graph request, accepted or not.
type RequestLog struct {
	At      time.Time `json:"at"`
	Method  string    `json:"method"`
	Path    string    `json:"path"`
	Version string    `json:"version,omitempty"`
	Dataset string    `json:"dataset,omitempty"`
	// Events is the number of elements of data (0 when it is missing or not an array).
	Events int `json:"events"`
	// Status is the HTTP status answered; 0 when the sandbox closed while holding the request.
	Status       int    `json:"status"`
	ErrorCode    int    `json:"error_code,omitempty"`
	ErrorSubcode int    `json:"error_subcode,omitempty"`
	Fault        string `json:"fault,omitempty"`
	// Held is true when the request was held for TimeoutDelay before its answer.
	Held          bool     `json:"held,omitempty"`
	FBTraceID     string   `json:"fbtrace_id,omitempty"`
	TestEventCode string   `json:"test_event_code,omitempty"`
	Messages      []string `json:"messages,omitempty"`

	// Custom Audience calls (audiences.go). AdAccount has no "act_" prefix.
	AdAccount  string `json:"ad_account,omitempty"`
	AudienceID string `json:"audience_id,omitempty"`
	// Rows is the number of rows of payload.data (0 when it is missing or not an array).
	Rows           int   `json:"rows,omitempty"`
	InvalidEntries int   `json:"invalid_entries,omitempty"`
	SessionID      int64 `json:"session_id,omitempty"`
	BatchSeq       int   `json:"batch_seq,omitempty"`
	// Replayed is true for a batch_seq the session had already acknowledged: answered again,
	// not applied again.
	Replayed bool `json:"replayed,omitempty"`
	// UsagePct and UsageReset are the ad account's usage after the call and the time left in
	// its window, as the usage headers said (0 without Faults.AudienceUsageBudget; usage.go).
	UsagePct   float64       `json:"usage_pct,omitempty"`
	UsageReset time.Duration `json:"usage_reset,omitempty"`
}

// Sandbox is the fake Graph API. It is an http.Handler and safe for concurrent use.
type Sandbox struct {
	cfg      Config
	datasets map[string]bool
	done     chan struct{} // closed by Close: releases held requests
	once     sync.Once
	holding  atomic.Int32 // requests being held now (for tests)

	adAccounts map[string]bool // Config.AdAccounts without "act_"

	// set by Start only
	server *http.Server
	served chan struct{}
	url    string

	mu       sync.Mutex
	faults   Faults
	rng      *rand.Rand
	accepted []AcceptedEvent // Event nil: decoded from Raw when read
	dropped  int             // accepted events forgotten past MaxAccepted
	requests []RequestLog
	aud      audienceStore
	ads      adsStore // ad sets and insights (adsets.go)
	versions Versions
	usage    map[string]*usageWindow // by ad account (usage.go)
}

var versionRE = regexp.MustCompile(`^v[0-9]+\.[0-9]+$`)

// New validates cfg and returns a sandbox to mount on any server (httptest included).
func New(cfg Config) (*Sandbox, error) {
	if cfg.Version == "" {
		cfg.Version = DefaultVersion
		if len(cfg.Versions) == 0 {
			cfg.Versions = defaultVersions
		}
	}
	cfg.Versions = slices.Clone(cfg.Versions)
	if cfg.MaxAccepted == 0 {
		cfg.MaxAccepted = DefaultMaxAccepted
	}
	if cfg.RemovalMinSize == 0 {
		cfg.RemovalMinSize = DefaultRemovalMinSize
	}
	if err := (Versions{Expired: append([]string{cfg.Version}, cfg.Versions...)}).validate(); err != nil {
		return nil, fmt.Errorf("metasandbox: %w", err)
	}
	if cfg.AccessToken == "" {
		return nil, errors.New("metasandbox: an access token is required")
	}
	if len(cfg.Datasets) == 0 && len(cfg.AdAccounts) == 0 {
		return nil, errors.New("metasandbox: at least one dataset id (or ad account id) is required")
	}
	datasets := make(map[string]bool, len(cfg.Datasets))
	for _, id := range cfg.Datasets {
		if id == "" || strings.Contains(id, "/") {
			return nil, fmt.Errorf("metasandbox: bad dataset id %q", id)
		}
		datasets[id] = true
	}
	cfg.Datasets = slices.Clone(cfg.Datasets)
	adAccounts, err := parseAdAccounts(cfg.AdAccounts)
	if err != nil {
		return nil, fmt.Errorf("metasandbox: %w", err)
	}
	cfg.AdAccounts = slices.Clone(cfg.AdAccounts)
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if err := cfg.Ads.setDefaults(); err != nil {
		return nil, fmt.Errorf("metasandbox: %w", err)
	}
	if err := cfg.Faults.validate(); err != nil {
		return nil, fmt.Errorf("metasandbox: %w", err)
	}
	s := &Sandbox{cfg: cfg, datasets: datasets, adAccounts: adAccounts, done: make(chan struct{})}
	s.ads.utilPct = cfg.Ads.InsightsUtilPct
	s.SetFaults(cfg.Faults)
	if err := s.SetVersions(Versions{Expired: cfg.ExpiredVersions, Warn: cfg.WarnVersions}); err != nil {
		return nil, err
	}
	return s, nil
}

// Start runs a sandbox on a free 127.0.0.1 port and returns it with its base URL
// (http://127.0.0.1:PORT). Close stops it.
func Start(cfg Config) (*Sandbox, string, error) {
	s, err := New(cfg)
	if err != nil {
		return nil, "", err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, "", fmt.Errorf("metasandbox: listen: %w", err)
	}
	s.server = &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second}
	s.served = make(chan struct{})
	s.url = "http://" + ln.Addr().String()
	go func() {
		defer close(s.served)
		s.server.Serve(ln)
	}()
	return s, s.url, nil
}

// URL is the base URL of a sandbox made by Start, "" for one made by New.
func (s *Sandbox) URL() string { return s.url }

// Close releases held requests and, for a sandbox made by Start, stops its server. It may be
// called more than once.
func (s *Sandbox) Close() error {
	var err error
	s.once.Do(func() {
		close(s.done)
		if s.server != nil {
			err = s.server.Close()
			<-s.served
		}
	})
	if err != nil {
		return fmt.Errorf("metasandbox: close: %w", err)
	}
	return nil
}

// SetFaults replaces the faults and restarts the draws from f.Seed. Rates outside [0, 1] are
// clamped.
func (s *Sandbox) SetFaults(f Faults) {
	f = f.normalised()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = f
	s.rng = newRand(f.Seed)
}

// Faults returns the faults in force.
func (s *Sandbox) Faults() Faults {
	s.mu.Lock()
	defer s.mu.Unlock()
	f := s.faults
	f.RateLimitCodes = slices.Clone(f.RateLimitCodes)
	return f
}

// Accepted returns every event of every accepted request, in arrival order (the latest
// MaxAccepted of them).
func (s *Sandbox) Accepted() []AcceptedEvent {
	s.mu.Lock()
	out := slices.Clone(s.accepted)
	s.mu.Unlock()
	for i := range out {
		dec := json.NewDecoder(bytes.NewReader(out[i].Raw))
		dec.UseNumber()
		_ = dec.Decode(&out[i].Event) // Raw was decoded the same way when the event was accepted
	}
	return out
}

// AcceptedDropped is how many accepted events were forgotten past MaxAccepted.
func (s *Sandbox) AcceptedDropped() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.dropped
}

// Requests returns every Graph request, accepted or not, in the order they were answered.
func (s *Sandbox) Requests() []RequestLog {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.requests)
}

// Reset forgets accepted events, requests, audiences, upload sessions, ad sets, report runs
// and the scripted insights failures, and restarts the fault draws; faults stay.
func (s *Sandbox) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.accepted, s.requests, s.dropped = nil, nil, 0
	s.aud.reset()
	s.ads.reset()
	s.rng = newRand(s.faults.Seed)
}

// ServeHTTP routes /health, /_sandbox/... and everything else to the Graph endpoint.
func (s *Sandbox) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.URL.Path == "/health":
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	case strings.HasPrefix(r.URL.Path, "/_sandbox/"):
		s.serveAdmin(w, r)
	case isAudiencePath(r.URL.Path):
		s.warnVersion(w, r.URL.Path)
		s.serveAudiences(w, r)
	case s.isAdsPath(r.URL.Path):
		s.warnVersion(w, r.URL.Path)
		s.serveAds(w, r)
	default:
		s.warnVersion(w, r.URL.Path)
		s.serveGraph(w, r)
	}
}

// draw is what one request drew from the fault rand.
type draw struct {
	timeout, serverError, unavailable, rateLimit bool
	rateLimitCode                                int
	// audienceRateLimit shares rateLimit's number: a request is one kind or the other.
	audienceRateLimit bool
}

// drawFaults always takes five numbers, so request n meets the same faults whatever came before.
func (s *Sandbox) drawFaults() (Faults, draw) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f := s.faults
	var u [5]float64
	for i := range u {
		u[i] = s.rng.Float64()
	}
	return f, draw{
		timeout:       u[0] < f.TimeoutRate,
		serverError:   u[1] < f.ServerErrorRate,
		unavailable:   u[2] < 0.5,
		rateLimit:     u[3] < f.RateLimitRate,
		rateLimitCode: f.RateLimitCodes[int(u[4]*float64(len(f.RateLimitCodes)))],

		audienceRateLimit: u[3] < f.AudienceRateLimitRate,
	}
}

// answer is the outcome of one Graph request.
type answer struct {
	err      *graphError
	bare503  bool
	fault    string
	accepted []AcceptedEvent
	warnings []string
}

func (s *Sandbox) serveGraph(w http.ResponseWriter, r *http.Request) {
	entry := RequestLog{At: s.cfg.Now(), Method: r.Method, Path: r.URL.Path}
	faults, d := s.drawFaults()
	params, paramErr := readParams(r)
	params.splitData()
	entry.Events = len(params.elements)
	entry.TestEventCode = params.testEventCode

	if d.timeout {
		entry.Held = true
		if !s.hold(faults.TimeoutDelay) {
			s.record(entry, nil)
			return
		}
	}

	trace := newTraceID()
	entry.FBTraceID = trace
	a := s.evaluate(r, &entry, faults, d, params, paramErr, trace)
	entry.Fault = a.fault
	entry.Messages = a.warnings

	switch {
	case a.bare503:
		entry.Status = http.StatusServiceUnavailable
		entry.FBTraceID = ""
		s.record(entry, nil)
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprint(w, "<html><body><h1>503 Service Unavailable</h1>No server is available to handle this request.</body></html>\n")
	case a.err != nil:
		s.writeGraphError(w, entry, trace, a.err)
	default:
		entry.Status = http.StatusOK
		s.record(entry, a.accepted)
		s.graphHeaders(w, trace)
		messages := a.warnings
		if messages == nil {
			messages = []string{}
		}
		writeJSON(w, http.StatusOK, struct {
			EventsReceived int      `json:"events_received"`
			Messages       []string `json:"messages"`
			FBTraceID      string   `json:"fbtrace_id"`
		}{len(a.accepted), messages, trace})
	}
}

// evaluate applies the faults and checks in the order of the package doc.
func (s *Sandbox) evaluate(r *http.Request, entry *RequestLog, faults Faults, d draw, p callParams, paramErr *graphError, trace string) answer {
	if d.serverError {
		if d.unavailable {
			return answer{bare503: true, fault: FaultUnavailable}
		}
		return answer{err: errServer(), fault: FaultServerError}
	}
	segments := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	if len(segments) != 3 || segments[2] != "events" || segments[0] == "" || segments[1] == "" {
		return answer{err: errUnknownPath(r.URL.Path)}
	}
	entry.Version, entry.Dataset = segments[0], segments[1]
	if err := s.checkVersion(entry.Version); err != nil {
		return answer{err: err}
	}
	if r.Method != http.MethodPost {
		return answer{err: errUnsupportedMethod(r.Method, entry.Dataset)}
	}
	if paramErr != nil {
		return answer{err: paramErr}
	}
	if faults.TokenExpired {
		return answer{err: errTokenExpired(entry.At), fault: FaultTokenExpired}
	}
	switch {
	case p.accessToken == "":
		return answer{err: errMissingToken()}
	case p.accessToken != s.cfg.AccessToken:
		return answer{err: errInvalidToken()}
	}
	if s.cfg.AppSecret != "" {
		switch {
		case p.proof == "":
			return answer{err: errMissingProof()}
		case !proofMatches(s.cfg.AppSecret, p.accessToken, p.proof):
			return answer{err: errInvalidProof()}
		}
	}
	if d.rateLimit {
		return answer{err: errRateLimit(d.rateLimitCode, entry.Dataset, faults.RegainAccessMinutes), fault: FaultRateLimit}
	}
	if !s.datasets[entry.Dataset] {
		return answer{err: errUnknownDataset(entry.Dataset)}
	}

	events, gerr := decodeData(p)
	if gerr != nil {
		return answer{err: gerr}
	}
	var warnings []string
	accepted := make([]AcceptedEvent, len(events))
	for i, ev := range events {
		w, gerr := validateEvent(i, ev.fields, entry.At)
		if gerr != nil {
			return answer{err: gerr}
		}
		if id, _ := ev.fields["event_id"].(string); slices.Contains(faults.PoisonEventIDs, id) {
			return answer{err: errInvalid(SubcodeInvalidValue, "Invalid event",
				fmt.Sprintf("Event %d: refused (a poison event configured in the sandbox)", i))}
		}
		warnings = append(warnings, w...)
		id, _ := ev.fields["event_id"].(string)
		name, _ := ev.fields["event_name"].(string)
		accepted[i] = AcceptedEvent{
			Dataset: entry.Dataset, TestEventCode: p.testEventCode, PartnerAgent: p.partnerAgent,
			FBTraceID: trace, ReceivedAt: entry.At, Event: ev.fields, EventID: id, EventName: name, Raw: ev.raw,
		}
	}
	return answer{accepted: accepted, warnings: warnings}
}

// hold waits d, or until Close; it reports whether the request should still be answered.
func (s *Sandbox) hold(d time.Duration) bool {
	s.holding.Add(1)
	defer s.holding.Add(-1)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-s.done:
		return false
	}
}

// record logs a request (and its events) before its answer is written, so a client that has
// its answer always finds it in Requests and Accepted.
func (s *Sandbox) record(entry RequestLog, accepted []AcceptedEvent) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests = append(s.requests, entry)
	for _, a := range accepted {
		a.Event = nil // kept as Raw only: a decoded map costs ten times its text
		s.accepted = append(s.accepted, a)
	}
	if limit := s.cfg.MaxAccepted; limit > 0 && len(s.accepted) > limit {
		over := len(s.accepted) - limit
		s.dropped += over
		// Forget the oldest: cleared, so their text is freed; the next append that outgrows the
		// array copies only the kept ones.
		clear(s.accepted[:over])
		s.accepted = s.accepted[over:]
	}
}

func (s *Sandbox) graphHeaders(w http.ResponseWriter, trace string) {
	w.Header().Set("X-Fb-Trace-Id", trace)
	w.Header().Set("Facebook-Api-Version", s.cfg.Version)
}

func (s *Sandbox) serveAdmin(w http.ResponseWriter, r *http.Request) {
	allow := func(method string) bool {
		if r.Method == method {
			return true
		}
		w.Header().Set("Allow", method)
		writeJSON(w, http.StatusMethodNotAllowed, map[string]string{"error": "use " + method})
		return false
	}
	if s.serveAudienceAdmin(w, r, allow) || s.serveAdSetAdmin(w, r, allow) {
		return
	}
	switch r.URL.Path {
	case "/_sandbox/events":
		if allow(http.MethodGet) {
			s.writeAccepted(w)
		}
	case "/_sandbox/requests":
		if allow(http.MethodGet) {
			writeJSON(w, http.StatusOK, nonNil(s.Requests()))
		}
	case "/_sandbox/faults":
		if r.Method == http.MethodGet {
			writeJSON(w, http.StatusOK, s.Faults())
			return
		}
		if !allow(http.MethodPost) {
			return
		}
		var f Faults
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&f); err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "faults: " + err.Error()})
			return
		}
		if err := f.validate(); err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
			return
		}
		s.SetFaults(f)
		writeJSON(w, http.StatusOK, s.Faults())
	case "/_sandbox/versions":
		s.serveVersions(w, r, allow)
	case "/_sandbox/reset":
		if allow(http.MethodPost) {
			s.Reset()
			w.WriteHeader(http.StatusNoContent)
		}
	default:
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "unknown sandbox path; see /_sandbox/events, /_sandbox/requests, /_sandbox/audiences, /_sandbox/adsets, /_sandbox/faults, /_sandbox/versions, /_sandbox/reset"})
	}
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// writeAccepted answers /_sandbox/events: the kept events as a JSON array, written one at a
// time with each event's text as sent (no decoded copy of them all), and the number forgotten
// past MaxAccepted in X-Sandbox-Events-Dropped.
func (s *Sandbox) writeAccepted(w http.ResponseWriter) {
	s.mu.Lock()
	kept, dropped := slices.Clone(s.accepted), s.dropped
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	w.Header().Set("X-Sandbox-Events-Dropped", strconv.Itoa(dropped))
	w.WriteHeader(http.StatusOK)
	bw := bufio.NewWriterSize(w, 64<<10)
	type wire AcceptedEvent // the same fields, with the event as its text (Event is nil here)
	bw.WriteByte('[')
	for i := range kept {
		body, err := json.Marshal(struct {
			wire
			Event json.RawMessage `json:"event"`
		}{wire(kept[i]), kept[i].Raw})
		if err != nil {
			return // Raw is valid JSON (it was decoded when accepted): not reached
		}
		if i > 0 {
			bw.WriteByte(',')
		}
		bw.Write(body)
	}
	bw.WriteByte(']')
	bw.Flush()
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		status, body = http.StatusInternalServerError, []byte(`{"error":"metasandbox: cannot encode the answer"}`)
	}
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	w.WriteHeader(status)
	w.Write(body)
}

func newRand(seed int64) *rand.Rand {
	return rand.New(rand.NewPCG(uint64(seed), 0x6d657461)) // "meta"
}

func (f Faults) validate() error {
	rates := []struct {
		name string
		rate float64
	}{{"server error rate", f.ServerErrorRate}, {"timeout rate", f.TimeoutRate}, {"rate limit rate", f.RateLimitRate},
		{"audience rate limit rate", f.AudienceRateLimitRate}}
	for _, r := range rates {
		if math.IsNaN(r.rate) || r.rate < 0 || r.rate > 1 {
			return fmt.Errorf("%s %v is not in [0, 1]", r.name, r.rate)
		}
	}
	if f.TimeoutDelay < 0 {
		return fmt.Errorf("timeout delay %v is negative", f.TimeoutDelay)
	}
	if f.AudienceMaxBodyBytes < 0 {
		return fmt.Errorf("audience max body bytes %d is negative", f.AudienceMaxBodyBytes)
	}
	return nil
}

func (f Faults) normalised() Faults {
	clamp := func(x float64) float64 {
		if math.IsNaN(x) || x < 0 {
			return 0
		}
		return min(x, 1)
	}
	f.ServerErrorRate, f.TimeoutRate, f.RateLimitRate = clamp(f.ServerErrorRate), clamp(f.TimeoutRate), clamp(f.RateLimitRate)
	f.AudienceRateLimitRate = clamp(f.AudienceRateLimitRate)
	f.AudienceMaxBodyBytes = max(f.AudienceMaxBodyBytes, 0)
	if f.TimeoutDelay <= 0 {
		f.TimeoutDelay = DefaultTimeoutDelay
	}
	if len(f.RateLimitCodes) == 0 {
		f.RateLimitCodes = DefaultRateLimitCodes
	}
	f.RateLimitCodes = slices.Clone(f.RateLimitCodes)
	return f
}

// faultsJSON is the wire form of Faults for /_sandbox/faults: snake_case, the delay as a
// duration string ("1.5s").
type faultsJSON struct {
	ServerErrorRate     float64  `json:"server_error_rate"`
	TimeoutRate         float64  `json:"timeout_rate"`
	TimeoutDelay        string   `json:"timeout_delay,omitempty"`
	RateLimitRate       float64  `json:"rate_limit_rate"`
	RateLimitCodes      []int    `json:"rate_limit_codes,omitempty"`
	RegainAccessMinutes int      `json:"regain_access_minutes"`
	TokenExpired        bool     `json:"token_expired"`
	PoisonEventIDs      []string `json:"poison_event_ids,omitempty"`

	AudienceRateLimitRate float64 `json:"audience_rate_limit_rate"`
	TermsNotAccepted      bool    `json:"terms_not_accepted"`
	AudienceMaxBodyBytes  int     `json:"audience_max_body_bytes"`
	RefuseRemovals        bool    `json:"refuse_removals"`

	Seed int64 `json:"seed"`
}

// MarshalJSON writes Faults in the form /_sandbox/faults uses.
func (f Faults) MarshalJSON() ([]byte, error) {
	j := faultsJSON{
		ServerErrorRate: f.ServerErrorRate, TimeoutRate: f.TimeoutRate, RateLimitRate: f.RateLimitRate,
		RateLimitCodes: f.RateLimitCodes, RegainAccessMinutes: f.RegainAccessMinutes,
		TokenExpired: f.TokenExpired, PoisonEventIDs: f.PoisonEventIDs, Seed: f.Seed,
		AudienceRateLimitRate: f.AudienceRateLimitRate, TermsNotAccepted: f.TermsNotAccepted,
		AudienceMaxBodyBytes: f.AudienceMaxBodyBytes, RefuseRemovals: f.RefuseRemovals,
	}
	if f.TimeoutDelay != 0 {
		j.TimeoutDelay = f.TimeoutDelay.String()
	}
	return json.Marshal(j)
}

// UnmarshalJSON reads Faults as /_sandbox/faults takes them; unknown fields are an error, so a
// typo in a curl command does not pass silently.
func (f *Faults) UnmarshalJSON(b []byte) error {
	var j faultsJSON
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&j); err != nil {
		return err
	}
	var delay time.Duration
	if j.TimeoutDelay != "" {
		d, err := time.ParseDuration(j.TimeoutDelay)
		if err != nil {
			return fmt.Errorf("timeout_delay: %w", err)
		}
		delay = d
	}
	*f = Faults{
		ServerErrorRate: j.ServerErrorRate, TimeoutRate: j.TimeoutRate, TimeoutDelay: delay,
		RateLimitRate: j.RateLimitRate, RateLimitCodes: j.RateLimitCodes,
		RegainAccessMinutes: j.RegainAccessMinutes, TokenExpired: j.TokenExpired,
		PoisonEventIDs: j.PoisonEventIDs, Seed: j.Seed,
		AudienceRateLimitRate: j.AudienceRateLimitRate, TermsNotAccepted: j.TermsNotAccepted,
		AudienceMaxBodyBytes: j.AudienceMaxBodyBytes, RefuseRemovals: j.RefuseRemovals,
	}
	return nil
}

// writeGraphError answers a Graph call with Meta's error body and headers, and logs the call.
func (s *Sandbox) writeGraphError(w http.ResponseWriter, entry RequestLog, trace string, e *graphError) {
	e.FBTraceID = trace
	entry.Status, entry.ErrorCode, entry.ErrorSubcode = e.httpStatus(), e.Code, e.Subcode
	s.record(entry, nil)
	for k, vs := range e.header {
		w.Header()[k] = vs
	}
	s.graphHeaders(w, trace)
	writeJSON(w, entry.Status, map[string]*graphError{"error": e})
}
