package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/retarget-dev/retarget/infra/cmd/devstack/devenv"
	"github.com/retarget-dev/retarget/shared/domain/access"
	"github.com/retarget-dev/retarget/shared/domain/appevent"
	"github.com/retarget-dev/retarget/shared/domain/backoff"
	"github.com/retarget-dev/retarget/shared/handlers/ingestapi"
	"github.com/retarget-dev/retarget/shared/runtime/env"
)

var sendCommand = &command{
	name:    "send",
	summary: "send events to the ingest API: generated samples or a JSON lines file",
	help: `Sends v1 events to POST <url>/v1/events in requests of at most 500 events and 1 MiB (the
API's limits), and prints what the API answered: requests, accepted, rejected by field and
reason, retries. Throttling (429) and unavailability (503, 5xx, network errors) are retried
with backoff and the same event_ids (the API is idempotent by event_id); the events a 202 marks
retryable are sent again the same way. Other 4xx are never retried; 401/403 stop the run.

--sample N generates N realistic events (installs, opens, views, carts, purchases, sign-ups)
for a few stable users (app_user_id sample-user-1, sample-user-2, ...) over the last 6 days.
--file reads one event JSON object per line ("-" is stdin); a line that is not a JSON object
is counted as rejected and not sent.

--server sends as the app's backend: to POST <url>/v1/server/events (the events are marked
server-sent, which "trusted_values": "server" requires of purchases feeding value rules), each
request signed with AWS SigV4 (service execute-api). Against make dev it signs with the dev
admin credentials of .dev/endpoints.json (DEV_ADMIN_ACCESS_KEY_ID / DEV_ADMIN_SECRET_ACCESS_KEY
override them); against a deployed stack (--stack NAME, RETARGET_API_URL or --url) with your
AWS credentials from the SDK's default chain (AWS_PROFILE, environment, SSO, instance role...),
which need execute-api:Invoke on the route. The API key is sent as well: it names the app.

Progress goes to stderr (a bar when it is a terminal), the summary to stdout. Exit status 1
when any event was not accepted.`,
	example: `  retarget send --sample 50                                  # make dev: http://127.0.0.1:3000, key dev-api-key
  retarget send --file events.jsonl --url http://127.0.0.1:3000 --key dev-api-key
  gen-events | retarget send --file - --url https://abc.execute-api.eu-west-1.amazonaws.com/prod --key "$KEY" --json
  retarget send --server --file purchases.jsonl                # make dev, signed as the dev admin
  retarget --stack prod send --server --file purchases.jsonl --key "$KEY"   # signed with your AWS credentials`,
	flags: func(fs *flag.FlagSet) any {
		o := &sendOptions{}
		fs.StringVar(&o.url, "url", "", "ingest API base `url`, e.g. the stack output ApiUrl (default $"+envAPIURL+", else http://$DEV_API_ADDR or http://127.0.0.1:3000)")
		fs.StringVar(&o.key, "key", "", "API `key` (default $"+envAPIKey+"; for a loopback URL $DEV_API_KEY or dev-api-key)")
		fs.IntVar(&o.sample, "sample", 0, "generate and send `N` sample events")
		fs.StringVar(&o.file, "file", "", "send the events of a JSON lines `file`, one event object per line; - for stdin")
		fs.StringVar(&o.platforms, "platforms", "ios,android", "`platforms` of the sample users, comma-separated (the app must support them)")
		fs.Int64Var(&o.seed, "seed", 0, "seed of the sample generator (default: random; event_ids are always fresh)")
		fs.IntVar(&o.retries, "retries", 5, "retries per request on 429, 503, 5xx and network errors")
		fs.DurationVar(&o.timeout, "timeout", 30*time.Second, "timeout of one request")
		fs.BoolVar(&o.json, "json", false, "print the summary as JSON")
		fs.BoolVar(&o.server, "server", false, "send as the app's backend: POST /v1/server/events signed with SigV4 (make dev: the dev admin credentials; a stack: your AWS credentials)")
		return o
	},
	run: func(ctx context.Context, c *cli, opts any, args []string) error {
		return c.send(ctx, *opts.(*sendOptions), args)
	},
}

type sendOptions struct {
	url, key, file, platforms string
	sample                    int
	seed                      int64
	retries                   int
	timeout                   time.Duration
	json                      bool
	server                    bool
}

// sigv4Service is the signing name of API Gateway's invoke API.
const sigv4Service = "execute-api"

// maxSample bounds --sample: the generator is for trying things, not load tests.
const maxSample = 1_000_000

// Retry backoff of send: full jitter from 250 ms, at most 20 s between attempts.
const (
	sendRetryBase = 250 * time.Millisecond
	sendRetryMax  = 20 * time.Second
)

func (c *cli) send(ctx context.Context, o sendOptions, args []string) error {
	if len(args) > 0 {
		return usagef("send", "unexpected arguments %q", args)
	}
	if (o.sample > 0) == (o.file != "") {
		return usagef("send", "give either --sample N or --file PATH")
	}
	if o.sample < 0 || o.sample > maxSample {
		return usagef("send", "--sample must be 1..%d", maxSample)
	}
	if o.retries < 0 {
		return usagef("send", "--retries must not be negative")
	}
	route := ingestapi.RouteEvents
	if o.server {
		route = access.PathServerEvents
	}
	endpoint, err := c.apiURL(o.url, route)
	if err != nil {
		return usagef("send", "%v", err)
	}
	var signer *requestSigner
	if o.server {
		if signer, err = c.apiSigner(ctx, endpoint); err != nil {
			return err
		}
	}
	key := o.key
	if key == "" {
		key = c.getenv(envAPIKey)
	}
	if key == "" && isLoopbackURL(endpoint) {
		if key = c.getenv(env.DevAPIKey); key == "" {
			key = "dev-api-key"
		}
	}
	if key == "" {
		return usagef("send", "no API key: pass --key or set %s", envAPIKey)
	}
	if u, _ := url.Parse(endpoint); u.Scheme == "http" && !isLoopbackURL(endpoint) {
		fmt.Fprintf(c.stderr, "retarget send: warning: sending the API key over plain http to %s\n", u.Host)
	}

	var src eventSource
	total := 0
	if o.sample > 0 {
		platforms := strings.Split(o.platforms, ",")
		for _, p := range platforms {
			if p != "ios" && p != "android" {
				return usagef("send", "--platforms: %q is not ios or android", p)
			}
		}
		seed := o.seed
		if seed == 0 {
			seed = c.now().UnixNano()
		}
		src, total = newSampleSource(o.sample, c.now(), seed, platforms), o.sample
	} else {
		f, n, err := c.openEvents(o.file)
		if err != nil {
			return err
		}
		defer f.Close()
		src, total = &lineSource{r: bufio.NewReader(f)}, n
	}

	s := &sender{
		url: endpoint, key: key, retries: o.retries, signer: signer,
		http:  &http.Client{Timeout: o.timeout},
		stats: sendStats{reasons: map[reasonKey]int{}},
		rnd:   rand.Float64,
		prog:  &progress{w: c.stderr, tty: c.stderrTTY, total: total, start: c.now(), now: c.now},
	}
	runErr := s.run(ctx, src)
	s.prog.done(&s.stats)
	s.stats.Duration = c.now().Sub(s.prog.start)
	if err := s.stats.print(c.stdout, endpoint, o.json); err != nil {
		return err
	}
	if errors.Is(runErr, context.Canceled) {
		return errors.New("interrupted: the last request's events may or may not be stored; sending them again is safe (same event_ids)")
	}
	if runErr != nil {
		return runErr
	}
	if bad := s.stats.Rejected + s.stats.NotSent; bad > 0 {
		return fmt.Errorf("%d of %d events not accepted", bad, s.stats.Events)
	}
	return nil
}

// eventsURL is apiURL of the events route.
func (c *cli) eventsURL(base string) (string, error) { return c.apiURL(base, ingestapi.RouteEvents) }

// apiURL turns the base URL (flag, RETARGET_API_URL, DEV_API_ADDR or the dev default) into
// the URL of route: the dev stack serves /v1/... at its root, a deployed API under its stage
// (the ApiUrl output ends with /<stage>/).
func (c *cli) apiURL(base, route string) (string, error) {
	if base == "" {
		base = c.getenv(envAPIURL)
	}
	if base == "" {
		addr := c.getenv(devenv.EnvAPIAddr)
		if addr == "" {
			addr = "127.0.0.1:3000"
		}
		base = "http://" + addr
	}
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("--url %q: want an http(s) URL such as http://127.0.0.1:3000 or the stack's ApiUrl", base)
	}
	u.Path = strings.TrimRight(u.Path, "/")
	if !strings.HasSuffix(u.Path, route) {
		u.Path += route
	}
	return u.String(), nil
}

// requestSigner signs requests to the API's IAM routes with SigV4, as an SDK client would.
type requestSigner struct {
	creds  aws.CredentialsProvider
	region string
	now    func() time.Time
	// source says whose credentials sign, for errors.
	source string
}

// apiSigner picks the credentials that sign requests to endpoint: on loopback (make dev) the
// dev admin credentials, from the dev stack's endpoints file or DEV_ADMIN_* (the public
// defaults else); anywhere else the SDK's default chain, as the aws CLI would use, and the
// region of the execute-api host (else the configured one).
func (c *cli) apiSigner(ctx context.Context, endpoint string) (*requestSigner, error) {
	if isLoopbackURL(endpoint) {
		key, secret := c.getenv(devenv.EnvAdminAccessKeyID), c.getenv(devenv.EnvAdminSecretAccessKey)
		if key == "" {
			key = devenv.AdminAccessKeyID
		}
		if secret == "" {
			secret = devenv.AdminSecretAccessKey
		}
		return &requestSigner{creds: credentials.NewStaticCredentialsProvider(key, secret, ""), region: devenv.APIRegion,
			now: c.now, source: "the dev admin credentials (" + key + ")"}, nil
	}
	cfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		return nil, fmt.Errorf("--server: aws config: %w", err)
	}
	region := cfg.Region
	if u, err := url.Parse(endpoint); err == nil {
		// https://{api}.execute-api.{region}.amazonaws.com/{stage}
		if parts := strings.Split(u.Hostname(), "."); len(parts) >= 4 && parts[1] == "execute-api" {
			region = parts[2]
		}
	}
	if region == "" {
		return nil, errors.New("--server: no AWS region to sign for: set AWS_REGION")
	}
	if cfg.Credentials == nil {
		return nil, errors.New("--server: no AWS credentials: configure them as for the aws CLI (AWS_PROFILE, aws sso login, ...)")
	}
	return &requestSigner{creds: cfg.Credentials, region: region, now: c.now, source: "your AWS credentials"}, nil
}

// sign signs req, whose body is body, at the signer's clock.
func (s *requestSigner) sign(ctx context.Context, req *http.Request, body []byte) error {
	creds, err := s.creds.Retrieve(ctx)
	if err != nil {
		return fmt.Errorf("AWS credentials: %w", err)
	}
	sum := sha256.Sum256(body)
	if err := v4.NewSigner().SignHTTP(ctx, creds, req, hex.EncodeToString(sum[:]), sigv4Service, s.region, s.now()); err != nil {
		return fmt.Errorf("sign the request: %w", err)
	}
	return nil
}

// openEvents opens --file and counts its lines when it is a regular file (for the progress
// bar); stdin has no known length.
func (c *cli) openEvents(path string) (io.ReadCloser, int, error) {
	if path == "-" {
		return io.NopCloser(c.stdin), 0, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, fmt.Errorf("events file: %w", err)
	}
	info, err := f.Stat()
	if err != nil || !info.Mode().IsRegular() {
		return f, 0, nil
	}
	n := 0
	r := bufio.NewReader(f)
	for {
		line, err := r.ReadBytes('\n')
		if len(bytes.TrimSpace(line)) > 0 {
			n++
		}
		if err != nil {
			break
		}
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		f.Close()
		return nil, 0, fmt.Errorf("events file: %w", err)
	}
	return f, n, nil
}

// eventSource yields events one by one: raw JSON and its line (or sample number), io.EOF at the
// end.
type eventSource interface {
	next() (raw []byte, line int, err error)
}

// lineSource reads a JSON lines stream, skipping blank lines.
type lineSource struct {
	r    *bufio.Reader
	line int
	eof  bool
}

func (s *lineSource) next() ([]byte, int, error) {
	for !s.eof {
		raw, err := s.r.ReadBytes('\n')
		if errors.Is(err, io.EOF) {
			s.eof = true
		} else if err != nil {
			return nil, 0, fmt.Errorf("events file: %w", err)
		}
		s.line++
		if raw = bytes.TrimSpace(raw); len(raw) > 0 {
			return raw, s.line, nil
		}
	}
	return nil, 0, io.EOF
}

// pendingEvent is one event on its way to the API.
type pendingEvent struct {
	raw  []byte
	line int
}

// reasonKey groups rejections: the field without the event's index, and the API's reason.
type reasonKey struct{ field, reason string }

// sendStats is what a run did; the summary prints it.
type sendStats struct {
	Requests, Events, Accepted, Rejected, NotSent, Retries int
	// LastFailure says why events were not sent (retries exhausted, key refused).
	LastFailure string
	Duration    time.Duration
	reasons     map[reasonKey]int
}

func (st *sendStats) reject(field, reason string) { st.reasons[reasonKey{field, reason}]++ }

// sender posts batches and interprets the answers.
type sender struct {
	url, key string
	// signer signs each request (--server); nil sends the key alone.
	signer  *requestSigner
	retries int
	http    *http.Client
	stats   sendStats
	rnd     func() float64
	prog    *progress
}

// emptyBatchBytes is the size of {"events":[]}.
const emptyBatchBytes = len(`{"events":[]}`)

// run reads the source and sends it in batches of at most appevent.MaxEvents events and
// appevent.MaxBodyBytes bytes.
func (s *sender) run(ctx context.Context, src eventSource) error {
	var batch []pendingEvent
	size := emptyBatchBytes
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		err := s.deliver(ctx, batch)
		batch, size = nil, emptyBatchBytes
		s.prog.update(&s.stats)
		return err
	}
	for {
		raw, line, err := src.next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			flush()
			return err
		}
		s.stats.Events++
		switch {
		case len(raw) == 0 || raw[0] != '{' || !json.Valid(raw):
			s.stats.Rejected++
			s.stats.reject("line "+strconv.Itoa(line), "not a JSON object (not sent)")
			continue
		case emptyBatchBytes+len(raw) > appevent.MaxBodyBytes:
			s.stats.Rejected++
			s.stats.reject("line "+strconv.Itoa(line), "event larger than the API's 1 MiB request limit (not sent)")
			continue
		}
		if len(batch) == appevent.MaxEvents || size+len(raw)+1 > appevent.MaxBodyBytes {
			if err := flush(); err != nil {
				s.stats.NotSent++ // the event just read
				return err
			}
		}
		if len(batch) > 0 {
			size++ // the comma
		}
		batch, size = append(batch, pendingEvent{raw: raw, line: line}), size+len(raw)
	}
	return flush()
}

// apiAnswer is any answer of POST /v1/events: about the events (Rejected is never null then),
// an error ({"error": ...}), or API Gateway's own ({"message": ...}).
type apiAnswer struct {
	ingestapi.EventsResponse
	Error   string `json:"error"`
	Message string `json:"message"`
}

func (a *apiAnswer) text(status int) string {
	switch {
	case a.Error != "":
		return a.Error
	case a.Message != "":
		return a.Message
	}
	return http.StatusText(status)
}

// deliver sends one batch until every event is accepted, rejected for good, or given up on.
// Only a refused key or a cancelled context stop the run (returned as an error).
func (s *sender) deliver(ctx context.Context, evs []pendingEvent) error {
	for attempt := 1; ; attempt++ {
		status, ans, retryAfter, err := s.post(ctx, evs)
		s.stats.Requests++
		var retry []pendingEvent
		why := ""
		switch {
		case err != nil:
			if ctx.Err() != nil {
				s.stats.NotSent += len(evs)
				return ctx.Err()
			}
			retry, why = evs, err.Error()
		case ans.Rejected != nil && (status == http.StatusAccepted || status == http.StatusBadRequest || status == http.StatusServiceUnavailable):
			s.stats.Accepted += ans.Accepted
			for _, r := range ans.Rejected {
				if r.Index < 0 || r.Index >= len(evs) {
					continue // not ours to count: the API answers for the events it was sent
				}
				if r.Retryable {
					retry = append(retry, evs[r.Index])
					continue
				}
				s.stats.Rejected++
				for _, e := range r.Errors {
					s.stats.reject(fieldWithoutIndex(e.Field), e.Reason)
				}
			}
			why = fmt.Sprintf("HTTP %d: events not stored (retryable)", status)
		case status == http.StatusTooManyRequests || status >= 500:
			retry, why = evs, fmt.Sprintf("HTTP %d: %s", status, ans.text(status))
		case status == http.StatusUnauthorized || status == http.StatusForbidden:
			s.stats.NotSent += len(evs)
			s.stats.LastFailure = fmt.Sprintf("HTTP %d: %s", status, ans.text(status))
			if s.signer != nil {
				return fmt.Errorf("the API refused the request (HTTP %d: %s): check --key, --url and %s", status, ans.text(status), s.signer.source)
			}
			return fmt.Errorf("the API refused the key (HTTP %d: %s): check --key and --url", status, ans.text(status))
		default: // other 4xx: the same request would be refused again
			s.stats.Rejected += len(evs)
			for range evs {
				s.stats.reject("(request)", fmt.Sprintf("HTTP %d: %s", status, ans.text(status)))
			}
		}
		if len(retry) == 0 {
			return nil
		}
		if attempt > s.retries {
			s.stats.NotSent += len(retry)
			s.stats.LastFailure = fmt.Sprintf("gave up after %d retries (%s)", s.retries, why)
			return nil
		}
		s.stats.Retries++
		evs = retry
		delay := max(retryAfter, backoff.FullJitter(attempt, sendRetryBase, sendRetryMax, s.rnd))
		if err := backoff.Sleep(ctx, delay); err != nil {
			s.stats.NotSent += len(evs)
			return err
		}
	}
}

// post sends one request; err is a transport failure (no answer).
func (s *sender) post(ctx context.Context, evs []pendingEvent) (status int, ans apiAnswer, retryAfter time.Duration, err error) {
	var body bytes.Buffer
	body.WriteString(`{"events":[`)
	for i, e := range evs {
		if i > 0 {
			body.WriteByte(',')
		}
		body.Write(e.raw)
	}
	body.WriteString(`]}`)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.url, bytes.NewReader(body.Bytes()))
	if err != nil {
		return 0, ans, 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("x-api-key", s.key)
	req.Header.Set("User-Agent", "retarget-cli")
	if s.signer != nil {
		// Signed at each attempt: a retry minutes later needs a fresh signing time.
		if err := s.signer.sign(ctx, req, body.Bytes()); err != nil {
			return 0, ans, 0, err
		}
	}
	resp, err := s.http.Do(req)
	if err != nil {
		return 0, ans, 0, redactURLError(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return 0, ans, 0, fmt.Errorf("reading the answer: %w", err)
	}
	if len(raw) > 0 && json.Unmarshal(raw, &ans) != nil {
		ans = apiAnswer{Message: strings.TrimSpace(truncate(string(raw), 200))}
	}
	if secs, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && secs > 0 {
		retryAfter = min(time.Duration(secs)*time.Second, sendRetryMax)
	}
	return resp.StatusCode, ans, retryAfter, nil
}

// redactURLError drops the URL from an http.Client error: it is long and known already.
func redactURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// fieldWithoutIndex turns "events[12].user.email" into "user.email" (and "events[3]" into
// "(event)"), so rejections group by field.
func fieldWithoutIndex(f string) string {
	if rest, ok := strings.CutPrefix(f, "events["); ok {
		if i := strings.IndexByte(rest, ']'); i >= 0 {
			rest = strings.TrimPrefix(rest[i+1:], ".")
			if rest == "" {
				return "(event)"
			}
			return rest
		}
	}
	if f == "" {
		return "(event)"
	}
	return f
}

// sendSummary is the JSON form of the summary.
type sendSummary struct {
	URL         string        `json:"url"`
	Requests    int           `json:"requests"`
	Events      int           `json:"events"`
	Accepted    int           `json:"accepted"`
	Rejected    int           `json:"rejected"`
	NotSent     int           `json:"not_sent"`
	Retries     int           `json:"retries"`
	LastFailure string        `json:"last_failure,omitempty"`
	DurationMS  int64         `json:"duration_ms"`
	Rejections  []reasonCount `json:"rejections"`
}

type reasonCount struct {
	Field  string `json:"field"`
	Reason string `json:"reason"`
	Events int    `json:"events"`
}

func (st *sendStats) print(w io.Writer, url string, asJSON bool) error {
	sum := sendSummary{URL: url, Requests: st.Requests, Events: st.Events, Accepted: st.Accepted, Rejected: st.Rejected,
		NotSent: st.NotSent, Retries: st.Retries, LastFailure: st.LastFailure, DurationMS: st.Duration.Milliseconds(),
		Rejections: []reasonCount{}}
	for k, n := range st.reasons {
		sum.Rejections = append(sum.Rejections, reasonCount{Field: k.field, Reason: k.reason, Events: n})
	}
	sort.Slice(sum.Rejections, func(i, j int) bool {
		a, b := sum.Rejections[i], sum.Rejections[j]
		if a.Events != b.Events {
			return a.Events > b.Events
		}
		if a.Field != b.Field {
			return a.Field < b.Field
		}
		return a.Reason < b.Reason
	})
	if asJSON {
		return writeJSON(w, sum)
	}
	fields := []field{
		{"url", sum.URL},
		{"requests", strconv.Itoa(sum.Requests)},
		{"events", strconv.Itoa(sum.Events)},
		{"accepted", strconv.Itoa(sum.Accepted)},
		{"rejected", strconv.Itoa(sum.Rejected)},
		{"not sent", strconv.Itoa(sum.NotSent)},
		{"retries", strconv.Itoa(sum.Retries)},
	}
	if sum.LastFailure != "" {
		fields = append(fields, field{"last failure", sum.LastFailure})
	}
	if err := writeFields(w, fields); err != nil {
		return err
	}
	if len(sum.Rejections) == 0 {
		return nil
	}
	rows := make([][]string, len(sum.Rejections))
	for i, r := range sum.Rejections {
		rows[i] = []string{strconv.Itoa(r.Events), r.Field, r.Reason}
	}
	fmt.Fprintln(w)
	return writeTable(w, []string{"EVENTS", "FIELD", "REASON"}, rows)
}

// progress reports on stderr: a bar redrawn after each request on a terminal, else one plain
// line at the end.
type progress struct {
	w     io.Writer
	tty   bool
	total int // 0 when unknown (stdin)
	start time.Time
	now   func() time.Time
}

const barWidth = 30

func (p *progress) line(st *sendStats) string {
	var b strings.Builder
	if p.total > 0 {
		done := min(st.Events, p.total)
		n := done * barWidth / p.total
		fmt.Fprintf(&b, "[%s%s] %d/%d events", strings.Repeat("#", n), strings.Repeat(".", barWidth-n), done, p.total)
	} else {
		fmt.Fprintf(&b, "%d events", st.Events)
	}
	fmt.Fprintf(&b, ", %d requests, %d retries", st.Requests, st.Retries)
	return b.String()
}

func (p *progress) update(st *sendStats) {
	if !p.tty {
		return
	}
	fmt.Fprintf(p.w, "\r%s", p.line(st))
}

func (p *progress) done(st *sendStats) {
	took := p.now().Sub(p.start).Round(time.Millisecond)
	if p.tty {
		fmt.Fprintf(p.w, "\r%s in %s\n", p.line(st), took)
		return
	}
	fmt.Fprintf(p.w, "send: %d events, %d accepted, %d requests, %d retries, %s\n", st.Events, st.Accepted, st.Requests, st.Retries, took)
}
