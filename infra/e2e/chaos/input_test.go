package chaos

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/retarget-dev/retarget/shared/domain/appconfig"
	"github.com/retarget-dev/retarget/shared/domain/appevent"
	"github.com/retarget-dev/retarget/shared/domain/envelope"
	"github.com/retarget-dev/retarget/shared/domain/identity"
	"github.com/retarget-dev/retarget/shared/handlers/ingestapi"
)

// scale is the size of one run.
type scale struct {
	name    string
	users   int
	poison  int           // events Meta refuses for good
	load    time.Duration // how long the faults are on; clients send during the first sendShare of it
	clients int           // concurrent API clients
	drain   time.Duration // bound on the drain once the faults stop
}

// sendShare is the part of the load period during which clients send; the rest lets the
// mappings work through the backlog while the faults are still on.
const sendShare = 0.7

var (
	// defaultScale runs in CI: ~1,400 events of 220 users (a quarter of them, and part of the
	// requests of another eighth, put on the stream by the direct producer); the test takes ~15 s.
	defaultScale = scale{name: "default", users: 220, poison: 5, load: 12 * time.Second, clients: 8, drain: 45 * time.Second}
	// longScale (CHAOS_LONG=1): ~10,000 events of 1,600 users, a minute of faults; ~70 s.
	longScale = scale{name: "long", users: 1600, poison: 12, load: 60 * time.Second, clients: 16, drain: 3 * time.Minute}
)

// maxEventsPerUser stays under the updater's memory of recent event ids (24), the window in
// which it recognises a resent event that carries a new sequence number.
const maxEventsPerUser = 18

// Event times avoid the moments where a rule of the sample config flips, so that a user's
// segments cannot change between the first write and the checks: an add-to-cart turning 1 h
// old (cart_abandoner), a registration turning 24 h old (onboarding_incomplete), an install
// turning 3 days old (new_installer). Subscription expiries stay 2 h away from now. Every
// event is at most 4.5 days old: inside Meta's 7 days and the 7-day count window even if the
// run crosses midnight UTC.
var forbiddenAges = [][2]time.Duration{
	{30 * time.Minute, 2 * time.Hour},
	{22 * time.Hour, 26 * time.Hour},
	{72*time.Hour - 30*time.Minute, 72*time.Hour + 30*time.Minute},
}

const (
	minAge = 5 * time.Minute
	maxAge = 108 * time.Hour
)

// apiEvent is one event as the app sends it.
type apiEvent map[string]any

func (e apiEvent) id() string { return e["event_id"].(string) }

// user is one generated user and what the reference knows of them.
type user struct {
	appUserID string
	userKey   string     // pseudonymous key, as the ingest computes it
	kind      userKind   // how the user's requests reach the stream
	events    []apiEvent // in generation order
	byID      map[string]*envelope.Event
}

// input is every user and request of a run.
type input struct {
	users   []*user
	poison  []string
	byID    map[string]*user
	pending []request // every request, in send order
}

// request is one POST /v1/events a client makes at a moment of the load period, or, when its
// route says so, the same events the direct producer puts on the stream itself.
type request struct {
	at     time.Duration
	route  route
	events []apiEvent
}

// generate builds the users and their events, deterministically from seed. Ages are relative to
// now.
func generate(sc scale, seed uint64, now time.Time) *input {
	r := rand.New(rand.NewPCG(seed, 7))
	age := func(lo, hi time.Duration) time.Duration {
		for {
			a := lo + time.Duration(r.Int64N(int64(hi-lo)))
			ok := true
			for _, f := range forbiddenAges {
				ok = ok && (a < f[0] || a > f[1])
			}
			if ok {
				return a.Truncate(time.Second)
			}
		}
	}
	in := &input{byID: map[string]*user{}}
	for i := range sc.users {
		u := &user{appUserID: fmt.Sprintf("chaos-u-%05d", i), kind: kindOf(i), byID: map[string]*envelope.Event{}}
		big := i == bigUser
		platform, osVersion := "android", "14"
		if i%3 == 0 {
			platform, osVersion = "ios", "17.4.1"
		}
		tracking := platform == "android" || r.IntN(3) > 0
		usr := map[string]any{"app_user_id": u.appUserID, "email": fmt.Sprintf("Chaos.User%05d@Example.com", i), "country": "us"}
		if i%3 == 1 {
			usr["phone"] = fmt.Sprintf("(650) 555-%04d", i%10000)
		}
		if tracking && r.IntN(2) == 0 {
			usr["madid"] = fmt.Sprintf("%08x-%04x-4%03x-8%03x-%012x", r.Uint32(), r.IntN(1<<16), r.IntN(1<<12), r.IntN(1<<12), r.Int64N(1<<48))
		}
		device := map[string]any{"platform": platform, "os_version": osVersion, "app_package": "com.example.shop", "app_version": "2.3.1"}
		consent := map[string]any{"ads_personalization": true}
		if platform == "ios" {
			consent["advertiser_tracking_enabled"] = tracking
		}
		add := func(name string, a time.Duration, custom map[string]any) {
			if len(u.events) >= maxEventsPerUser {
				return
			}
			e := apiEvent{"event_id": fmt.Sprintf("chaos-%05d-%02d", i, len(u.events)), "event_name": name,
				"event_time": now.Add(-a).Unix(), "user": usr, "device": device, "consent": consent}
			if custom != nil {
				e["custom_data"] = custom
			}
			u.events = append(u.events, e)
		}

		if r.Float64() < 0.7 {
			add("MobileAppInstall", age(minAge, maxAge), nil)
		}
		for range r.IntN(7) {
			add("fb_mobile_activate_app", age(minAge, maxAge), nil)
		}
		for range r.IntN(3) {
			add("fb_mobile_content_view", age(minAge, maxAge), map[string]any{"content_ids": []string{fmt.Sprintf("sku-%d", r.IntN(50))}})
		}
		if r.Float64() < 0.35 {
			for range 1 + r.IntN(2) {
				add("fb_mobile_add_to_cart", age(minAge, 96*time.Hour), map[string]any{"content_ids": []string{fmt.Sprintf("sku-%d", r.IntN(50))}})
			}
		}
		if r.Float64() < 0.3 {
			for range 1 + r.IntN(3) {
				add("fb_mobile_purchase", age(minAge, 96*time.Hour), purchase(r))
			}
		}
		if r.Float64() < 0.25 {
			add("fb_mobile_complete_registration", age(minAge, 96*time.Hour), nil)
			if r.IntN(2) == 0 {
				add("fb_mobile_tutorial_completion", age(minAge, 96*time.Hour), nil)
			}
		}
		if r.Float64() < 0.1 {
			a := age(26*time.Hour, 96*time.Hour)
			exp := now.Add(-a).Add(time.Duration(24+r.IntN(96)) * time.Hour)
			if d := exp.Sub(now); d > -2*time.Hour && d < 2*time.Hour {
				exp = now.Add(30 * 24 * time.Hour)
			}
			add("Subscribe", a, map[string]any{"subscription_expires_at": exp.Unix()})
		}
		if len(u.events) == 0 {
			add("fb_mobile_activate_app", age(minAge, maxAge), nil)
		}
		if big {
			bigEvents(u, r, func(a time.Duration) { add("fb_mobile_content_view", a, nil) }, func() time.Duration { return age(minAge, maxAge) })
		}

		// The app sends them in one to three SDK batches, at moments of its own (the big user in
		// one, so that its events span version 2 records; a mixed user in two at least, so that
		// its records are of both versions).
		order := slices.Clone(u.events)
		r.Shuffle(len(order), func(a, b int) { order[a], order[b] = order[b], order[a] })
		parts := 1 + r.IntN(min(3, len(order)))
		switch {
		case big:
			parts = 1
		case u.kind == kindMixed && len(order) > 1:
			parts = max(parts, 2)
		}
		for k := range parts {
			part := order[k*len(order)/parts : (k+1)*len(order)/parts]
			at := time.Duration(r.Int64N(int64(float64(sc.load) * sendShare)))
			in.pending = append(in.pending, request{at: at, route: u.kind.route(i, k), events: part})
		}
		in.users = append(in.users, u)
		for _, e := range u.events {
			in.byID[e.id()] = u
		}
	}
	sort.SliceStable(in.pending, func(a, b int) bool { return in.pending[a].at < in.pending[b].at })

	// Poison events, spread over the users and over every kind of user: Meta refuses them
	// whatever the request.
	for k := range sc.poison {
		j := (2*k + 1) * len(in.users) / (2 * sc.poison)
		for want := userKinds[k%len(userKinds)]; in.users[j].kind != want || j == bigUser; {
			j = (j + 1) % len(in.users)
		}
		u := in.users[j]
		in.poison = append(in.poison, u.events[len(u.events)-1].id())
	}
	return in
}

// purchase returns a purchase's custom_data: mostly USD, some in other currencies with a rate,
// some in CHF, which the sample config has no rate for (counted apart, never converted).
func purchase(r *rand.Rand) map[string]any {
	cents := 500 + r.IntN(17500)
	switch r.IntN(8) {
	case 0:
		return map[string]any{"value": float64(cents) / 100, "currency": "EUR"}
	case 1:
		return map[string]any{"value": float64(cents) / 100, "currency": "gbp"}
	case 2:
		return map[string]any{"value": float64(cents * 3 / 2), "currency": "JPY"}
	case 3:
		return map[string]any{"value": float64(cents) / 100, "currency": "CHF"}
	}
	return map[string]any{"value": float64(cents) / 100, "currency": "USD", "content_ids": []string{"sku-1"}, "num_items": 1}
}

// resolve runs each user's events through the ingest parser (not the pipeline) to learn the
// user key and the stream event the reference folds. Every generated event must be valid.
func (in *input) resolve(app *appconfig.App, now time.Time) error {
	pseudo, err := identity.NewPseudonymizer([]byte(pepper))
	if err != nil {
		return err
	}
	parser := appevent.NewParser(pseudo)
	for _, u := range in.users {
		body, _ := json.Marshal(map[string]any{"events": u.events})
		batch, err := parser.Parse(app, string(body), now)
		if err != nil {
			return fmt.Errorf("user %s: %w", u.appUserID, err)
		}
		if len(batch.Rejected) > 0 {
			batch.Release()
			return fmt.Errorf("user %s: generated event refused: %+v", u.appUserID, batch.Rejected[0])
		}
		envs, err := batch.Events()
		if err != nil {
			batch.Release()
			return fmt.Errorf("user %s: %w", u.appUserID, err)
		}
		for _, env := range envs {
			if u.userKey != "" && u.userKey != env.UserKey {
				batch.Release()
				return fmt.Errorf("user %s: two user keys", u.appUserID)
			}
			u.userKey = env.UserKey
			ev := env.Event
			u.byID[ev.ID] = &ev
		}
		batch.Release()
		if len(u.byID) != len(u.events) {
			return fmt.Errorf("user %s: %d events parsed of %d", u.appUserID, len(u.byID), len(u.events))
		}
	}
	return nil
}

// apiClient sends requests to the ingest handler as a mobile SDK would: it resends the events
// answered as retryable (and every event after a 503) with the same event ids, and, when the
// answer of a request is lost, the whole request.
type apiClient struct {
	h      *ingestapi.Handler
	direct *directProducer // the requests not routed to the API; nil: every request goes to the API
	rng    *rng
	// loseAnswers is on while the faults are: the client then loses some 202 answers.
	loseAnswers atomic.Bool

	mu       sync.Mutex
	accepted map[string]bool // event ids the API answered as accepted, at least once
	statuses map[int]int
	retried  int // events sent again after a retryable answer
	lost     int // 202 answers lost
	requests atomic.Int64
}

// maxClientAttempts bounds the sends of one request; the faults never last that long.
const maxClientAttempts = 40

func newAPIClient(h *ingestapi.Handler, g *rng) *apiClient {
	return &apiClient{h: h, rng: g, accepted: map[string]bool{}, statuses: map[int]int{}}
}

// sendRequest sends one request by its route: to the ingest handler, or through the direct
// producer.
func (c *apiClient) sendRequest(ctx context.Context, r request) error {
	if r.route == viaAPI || c.direct == nil {
		return c.send(ctx, r.events)
	}
	return c.direct.send(ctx, r)
}

// send posts one request and resends what is left until every event is accepted.
func (c *apiClient) send(ctx context.Context, evs []apiEvent) error {
	pending := evs
	for attempt := 1; ; attempt++ {
		body, _ := json.Marshal(map[string]any{"events": pending})
		callCtx, cancel := context.WithTimeout(ctx, 10*time.Second) // API Gateway's function timeout in the stack
		resp, err := c.h.Handle(callCtx, events.APIGatewayProxyRequest{
			Resource: ingestapi.RouteEvents, Path: ingestapi.RouteEvents, HTTPMethod: "POST",
			Headers:        map[string]string{"x-api-key": apiKey, "content-type": "application/json"},
			RequestContext: events.APIGatewayProxyRequestContext{RequestID: fmt.Sprintf("chaos-%d", c.requests.Add(1))},
			Body:           string(body),
		})
		cancel()
		if err != nil {
			return fmt.Errorf("ingest handler: %w", err)
		}
		c.mu.Lock()
		c.statuses[resp.StatusCode]++
		c.mu.Unlock()
		if resp.StatusCode != 202 && resp.StatusCode != 503 {
			return fmt.Errorf("ingest answered %d: %s", resp.StatusCode, resp.Body)
		}
		var a ingestapi.EventsResponse
		if err := json.Unmarshal([]byte(resp.Body), &a); err != nil {
			return fmt.Errorf("ingest answer %q: %w", resp.Body, err)
		}
		rejected := map[int]bool{}
		var again []apiEvent
		for _, rj := range a.Rejected {
			if !rj.Retryable {
				return fmt.Errorf("event %s refused: %+v", rj.EventID, rj.Errors)
			}
			rejected[rj.Index] = true
			again = append(again, pending[rj.Index])
		}
		c.mu.Lock()
		for i, e := range pending {
			if !rejected[i] {
				c.accepted[e.id()] = true // what the API answered, whether the client hears it or not
			}
		}
		lost := resp.StatusCode == 202 && c.loseAnswer()
		if lost {
			c.lost++
			again = pending // the client never saw the answer: it sends everything again
		}
		c.retried += len(again)
		c.mu.Unlock()
		if len(again) == 0 {
			return nil
		}
		if attempt == maxClientAttempts {
			return fmt.Errorf("%d events still not accepted after %d attempts", len(again), attempt)
		}
		// Retry-After says 1 s on a 503; the test waits less to stay short.
		delay := min(time.Duration(attempt)*50*time.Millisecond, 400*time.Millisecond)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(delay):
		}
		pending = again
	}
}

// loseAnswer draws whether an answer is lost (only while the faults are on).
func (c *apiClient) loseAnswer() bool {
	return c.loseAnswers.Load() && c.rng.float() < clientLostResponseRate
}

// run sends every request at its moment from the start, with c.clients requests at most in
// flight, and returns the first error.
func (c *apiClient) run(ctx context.Context, reqs []request, clients int, start time.Time) error {
	work := make(chan request)
	errs := make(chan error, clients)
	var wg sync.WaitGroup
	for range clients {
		wg.Go(func() {
			for r := range work {
				if err := c.sendRequest(ctx, r); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	var err error
loop:
	for _, r := range reqs {
		select {
		case <-time.After(time.Until(start.Add(r.at))):
		case err = <-errs:
			break loop
		case <-ctx.Done():
			err = ctx.Err()
			break loop
		}
		select {
		case work <- r:
		case err = <-errs:
			break loop
		case <-ctx.Done():
			err = ctx.Err()
			break loop
		}
	}
	close(work)
	wg.Wait()
	close(errs)
	if err == nil {
		err = <-errs
	}
	return err
}

// acceptedIDs returns the ids the API accepted, sorted.
func (c *apiClient) acceptedIDs() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	ids := make([]string, 0, len(c.accepted))
	for id := range c.accepted {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// byEventTime orders one user's events as the reference folds them.
func byEventTime(a, b *envelope.Event) int {
	return cmp.Or(cmp.Compare(a.Time, b.Time), cmp.Compare(a.ID, b.ID))
}
