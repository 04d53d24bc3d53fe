// Package publish puts every recorded membership change on the event bus: it reads each app's
// unpublished changes from the change log (ports.ChangeFeed: the same records the audience sync
// reads, so nothing reaches the bus that was not recorded, and nothing recorded is left out),
// turns them into segment events, picks the channels that deliver each one under the app's
// cross-channel cool-down, publishes them in calls of at most 10 (PutEvents) and marks
// published what the bus took. Entries the bus refused stay unpublished and go again on the
// next run: delivery is at least once, and ChangeID lets consumers deduplicate.
//
// Every app is published, with or without channels: the bus event is the product's contract
// with any consumer (a rule of the user's own, an archive), not only with the configured
// webhooks. An app without channels publishes events with no channels.
package publish

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/retarget-dev/retarget/shared/domain/appconfig"
	"github.com/retarget-dev/retarget/shared/domain/channels"
	"github.com/retarget-dev/retarget/shared/ports"
)

// MaxBatch is the most events one Publish call carries (EventBridge PutEvents takes 10).
const MaxBatch = 10

// DefaultPageSize is how many unpublished changes one feed read returns.
const DefaultPageSize = 100

// Matcher picks the channels of one app that deliver an event (channels.AppChannels).
type Matcher interface {
	Match(ev *ports.SegmentEvent) []string
}

// CompileFunc compiles an app's channels into a Matcher.
type CompileFunc func(app *appconfig.App) (Matcher, error)

// CompileChannels is the default CompileFunc: package channels.
func CompileChannels(app *appconfig.App) (Matcher, error) {
	ch, err := channels.Compile(app)
	if err != nil {
		return nil, err
	}
	return ch, nil
}

// Config wires a Publisher.
type Config struct {
	// Apps are the apps to publish, in this order.
	Apps      []*appconfig.App
	Feed      ports.ChangeFeed
	Cooldowns ports.CooldownStore
	Bus       ports.EventPublisher
	// Compile compiles an app's channels; default CompileChannels. Apps without channels are
	// never compiled.
	Compile CompileFunc
	// PageSize is the feed's page; default DefaultPageSize.
	PageSize int
	Logger   *slog.Logger
	Now      func() time.Time
}

// Publisher publishes the recorded membership changes.
type Publisher struct{ cfg Config }

// New returns a Publisher.
func New(cfg Config) (*Publisher, error) {
	if cfg.Feed == nil || cfg.Bus == nil || cfg.Cooldowns == nil {
		return nil, errors.New("publish: Feed, Cooldowns and Bus are required")
	}
	if cfg.Compile == nil {
		cfg.Compile = CompileChannels
	}
	if cfg.PageSize <= 0 {
		cfg.PageSize = DefaultPageSize
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Publisher{cfg: cfg}, nil
}

// Result says what one run did: events the bus took, events it refused (still unpublished),
// and of the published joins those the cool-down kept from every channel.
type Result struct {
	Published, Failed, CooledDown int
}

// Run publishes every app's unpublished changes. An app that fails does not stop the others;
// the errors are joined. What was not published is published by a later run.
func (p *Publisher) Run(ctx context.Context) (Result, error) {
	var res Result
	var errs []error
	for _, app := range p.cfg.Apps {
		if err := p.runApp(ctx, app, &res); err != nil {
			errs = append(errs, fmt.Errorf("publish %s: %w", app.ID, err))
		}
	}
	p.cfg.Logger.Info("segment events", "published", res.Published, "failed", res.Failed, "cooled_down", res.CooledDown)
	return res, errors.Join(errs...)
}

func (p *Publisher) runApp(ctx context.Context, app *appconfig.App, res *Result) error {
	var match Matcher
	if len(app.Channels) > 0 {
		m, err := p.cfg.Compile(app)
		if err != nil {
			return fmt.Errorf("channels: %w", err)
		}
		match = m
	}
	// The cursor moves past refused entries too: they stay in the index for the next run, and
	// a run that retried them at once would only meet the same failure.
	cursor := ""
	for {
		page, next, err := p.cfg.Feed.UnpublishedChanges(ctx, app.ID, cursor, p.cfg.PageSize)
		if err != nil {
			return fmt.Errorf("read unpublished changes: %w", err)
		}
		if len(page) > 0 {
			if err := p.publishPage(ctx, app, match, page, res); err != nil {
				return err
			}
		}
		if next == "" {
			return nil
		}
		cursor = next
	}
}

// publishPage builds the events of one page, applies the cool-down, publishes them in calls
// of MaxBatch and marks what the bus took.
func (p *Publisher) publishPage(ctx context.Context, app *appconfig.App, match Matcher, page []ports.PendingChange, res *Result) error {
	events := make([]ports.SegmentEvent, len(page))
	for i := range page {
		events[i] = Event(app, page[i].MembershipChange)
		if match != nil {
			if ids := match.Match(&events[i]); len(ids) > 0 {
				events[i].Channels = ids
			}
		}
	}
	now := p.cfg.Now().UnixMilli()
	delivered, err := p.cooldown(ctx, app, events, now, res)
	if err != nil {
		return err
	}
	var taken []ports.PendingChange
	var failures int
	for start := 0; start < len(events); start += MaxBatch {
		end := min(start+MaxBatch, len(events))
		failed, err := p.cfg.Bus.Publish(ctx, events[start:end])
		if err != nil {
			failed = make([]int, end-start)
			for i := range failed {
				failed[i] = i
			}
			p.cfg.Logger.Warn("publish call failed; its events stay unpublished", "app", app.ID, "events", end-start, "error", err.Error())
		}
		refused := make(map[int]bool, len(failed))
		for _, i := range failed {
			refused[i] = true
		}
		for i := start; i < end; i++ {
			if refused[i-start] {
				failures++
				delete(delivered, events[i].UserKey) // not delivered: no cool-down from it
				continue
			}
			taken = append(taken, page[i])
		}
	}
	res.Published += len(taken)
	res.Failed += failures
	if failures > 0 {
		p.cfg.Logger.Warn("events refused by the bus; they stay unpublished", "app", app.ID, "failed", failures)
	}
	// The delivery times first: a crash between the two marks a user cooled without a
	// published event (its change goes again, on channels only after the cool-down), never
	// the other way (two channels within the cool-down).
	if len(delivered) > 0 {
		if err := p.cfg.Cooldowns.SetLastDeliveries(ctx, app.ID, delivered); err != nil {
			return fmt.Errorf("record deliveries: %w", err)
		}
	}
	if len(taken) > 0 {
		if err := p.cfg.Feed.MarkPublished(ctx, taken); err != nil {
			return fmt.Errorf("mark published: %w", err)
		}
	}
	return nil
}

// cooldown clears the channels of joins whose user had a delivery within the app's cool-down
// (earlier runs, or an earlier join of this page) and returns the users a join of this page
// goes to a channel for, with now as their delivery time. Leaves are not cooled: they message
// nobody, they take the user out.
func (p *Publisher) cooldown(ctx context.Context, app *appconfig.App, events []ports.SegmentEvent, now int64, res *Result) (map[string]int64, error) {
	window := app.Cooldown().Milliseconds()
	if window <= 0 {
		return nil, nil
	}
	var keys []string
	for i := range events {
		if events[i].Joined && len(events[i].Channels) > 0 {
			keys = append(keys, events[i].UserKey)
		}
	}
	if len(keys) == 0 {
		return nil, nil
	}
	last, err := p.cfg.Cooldowns.LastDeliveries(ctx, app.ID, keys)
	if err != nil {
		return nil, fmt.Errorf("read last deliveries: %w", err)
	}
	delivered := make(map[string]int64)
	for i := range events {
		ev := &events[i]
		if !ev.Joined || len(ev.Channels) == 0 {
			continue
		}
		_, again := delivered[ev.UserKey]
		if prev, ok := last[ev.UserKey]; again || (ok && now-prev < window) {
			ev.Channels = []string{}
			res.CooledDown++
			continue
		}
		delivered[ev.UserKey] = now
	}
	return delivered, nil
}

// Event is the bus event of a recorded change: the app user id only for apps that share it.
func Event(app *appconfig.App, c ports.MembershipChange) ports.SegmentEvent {
	ev := ports.SegmentEvent{
		ChangeID:     ChangeID(c),
		App:          c.App,
		Segment:      c.Segment,
		UserKey:      c.UserKey,
		Joined:       c.Joined,
		At:           time.UnixMilli(c.At).UTC().Format("2006-01-02T15:04:05.000Z07:00"),
		Reason:       c.Reason,
		StateVersion: c.StateVersion,
		Channels:     []string{},
	}
	if app.ShareAppUserID {
		ev.AppUserID = c.AppUserID
	}
	return ev
}

// ChangeID is the stable id of a change: a hash of its identity (app, segment, user key, join
// or leave, time), so every publication of one change carries the same id, whichever run or
// recording it comes from.
func ChangeID(c ports.MembershipChange) string {
	dir := "l"
	if c.Joined {
		dir = "j"
	}
	sum := sha256.Sum256(fmt.Appendf(nil, "%s\x00%s\x00%s\x00%s\x00%d", c.App, c.Segment, c.UserKey, dir, c.At))
	return base64.RawURLEncoding.EncodeToString(sum[:16])
}
