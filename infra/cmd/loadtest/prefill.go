package main

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"
)

// prefillAge is how old the history of prefilled users is: older than the rules' "new" windows
// (new_installer: 3 days), younger than lapsed_7d and Meta's 7-day limit.
const prefillAge = 5 * 24 * time.Hour

// prefillHistory is each prefilled user's history: an install prefillAge ago and an app open
// on each of the three days after it, which makes the user "engaged" (3 opens in 7 days), as
// an app's regular users are. Without it every active user of the run would join "engaged"
// during the measurement, a change a steady day only sees for newly active users.
var prefillHistory = []struct {
	name string
	ago  time.Duration
}{
	{"MobileAppInstall", prefillAge},
	{"fb_mobile_activate_app", 4 * 24 * time.Hour},
	{"fb_mobile_activate_app", 3 * 24 * time.Hour},
	{"fb_mobile_activate_app", 2 * 24 * time.Hour},
}

// PrefillRequests returns requests that give users 0..n-1 their history (prefillHistory),
// the events of perRequest/len(prefillHistory) users per request. A table that already knows
// the population is what a running app's table looks like; measured on an empty one, every
// user of the run would be new and cost the writes of a first visit.
func (g *Generator) PrefillRequests(n, perRequest int, now time.Time) []Request {
	usersPer := max(1, perRequest/len(prefillHistory))
	var out []Request
	for start := 0; start < n; start += usersPer {
		var req Request
		for k := start; k < min(start+usersPer, n); k++ {
			u := g.pop.User(k)
			for i, h := range prefillHistory {
				ev := &event{
					EventID:   g.runID + "p-" + strconv.Itoa(k) + "-" + strconv.Itoa(i),
					EventName: h.name,
					EventTime: now.Add(-h.ago - time.Duration(k%3600)*time.Second).Unix(),
					User:      &u.Fields,
					Device:    &u.Device,
					Consent:   u.Consents,
				}
				req.Events = append(req.Events, ev)
				req.Consented = append(req.Consented, u.Consent)
				req.Users = append(req.Users, k)
			}
		}
		req.Body = encodeEvents(req.Events)
		out = append(out, req)
	}
	return out
}

// Prefill sends the population's history and waits until the updater has read all of it and
// Meta has what it should get (or timeout passes), so that the measured run starts from a
// steady table. It returns the number of users prefilled.
//
// syncInterval is the stack's audience sync interval: the sync must have run once more after
// the updater finished.
func Prefill(ctx context.Context, d *Driver, n int, logDir string, sandbox *Sandbox, syncInterval, timeout time.Duration) (int, error) {
	reqs := d.Gen.PrefillRequests(n, 500, time.Now())
	m := NewMetrics(logDir, true)
	before, err := sandbox.Stats(ctx)
	if err != nil {
		return 0, err
	}
	work := make(chan Request)
	var (
		mu  sync.Mutex
		tot = senderResult{byStatus: map[int]int{}, reasons: map[string]int{}, users: map[int]bool{}, ids: map[string]bool{}}
		wg  sync.WaitGroup
	)
	for i := 0; i < 4; i++ {
		wg.Go(func() {
			r := senderResult{byStatus: map[int]int{}, reasons: map[string]int{}, users: map[int]bool{}, ids: map[string]bool{}}
			for req := range work {
				d.send(ctx, req, &r)
			}
			mu.Lock()
			tot.accepted += r.accepted
			tot.consented += r.consented
			tot.rejected += r.rejected
			tot.lost += r.lost
			mu.Unlock()
		})
	}
	for _, r := range reqs {
		work <- r
	}
	close(work)
	wg.Wait()
	if tot.rejected+tot.lost > 0 {
		return 0, fmt.Errorf("prefill: %d events refused, %d lost", tot.rejected, tot.lost)
	}
	deadline := time.Now().Add(timeout)
	var updaterDone time.Time
	for {
		if err := m.Update(); err != nil {
			return 0, err
		}
		st, err := sandbox.Stats(ctx)
		if err != nil {
			return 0, err
		}
		delivered := st.EventsDelivered - before.EventsDelivered
		if int(m.UpdaterEvents()) >= tot.accepted && delivered >= tot.consented {
			// The history's membership changes ("engaged") go to the audiences before the
			// measurement: wait for an audience sync that started after the updater finished
			// and found nothing pending.
			if updaterDone.IsZero() {
				updaterDone = time.Now().Add(syncInterval)
			}
			if m.SyncIdleSince(updaterDone) {
				return n, nil
			}
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("prefill: after %s the updater read %.0f of %d events, Meta got %d of %d events, audience sync idle: %v",
				timeout, m.UpdaterEvents(), tot.accepted, delivered, tot.consented, !updaterDone.IsZero() && m.SyncIdleSince(updaterDone))
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}
