package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/retarget-dev/retarget/shared/domain/appconfig"
	"github.com/retarget-dev/retarget/shared/domain/appevent"
	"github.com/retarget-dev/retarget/shared/domain/audiences"
	"github.com/retarget-dev/retarget/shared/domain/envelope"
	"github.com/retarget-dev/retarget/shared/domain/identity"
	"github.com/retarget-dev/retarget/shared/domain/segments"
)

var rulesCheckCommand = &command{
	name:    "rules check",
	summary: "validate the config; dry-run the segment rules on sample events",
	help: `Validates the app config as every function does at start (appconfig, segment rules,
audience mappings) and lists its apps, segments and audiences.

With --events, also dry-runs the app's segment rules: the events (v1 API events, one JSON
object per line, as send takes them) are parsed and validated as the ingest function would
(rejections are listed with their line), folded per user in event-time order exactly as the
segment updater folds them, and evaluated after each event and at each time-based change in
between (as the sweeper would), up to --now. It prints, per user, every segment entered or
left with the event (or the passing of time) that caused it, and the segments as of --now.
Nothing is written anywhere. Users are numbered in order of appearance; their pseudonymous
keys come from a fixed dry-run pepper, so they differ from the real ones.`,
	example: `  retarget rules check
  retarget rules check --config my-apps.json --json
  retarget rules check --events events.jsonl --app sample-shop
  retarget rules check --events events.jsonl --now 2026-03-09T10:00:00Z`,
	flags: func(fs *flag.FlagSet) any {
		o := &rulesOptions{}
		configFlag(fs, &o.config)
		fs.StringVar(&o.events, "events", "", "dry-run the rules on the events of this JSON lines `file` (- for stdin)")
		fs.StringVar(&o.app, "app", "", "`app` the events belong to (default: the config's only app)")
		fs.StringVar(&o.now, "now", "", "the `time` to evaluate up to, RFC 3339 or unix seconds (default: now); events more than 7 days before it are refused, as by the API")
		fs.BoolVar(&o.json, "json", false, "print JSON")
		return o
	},
	run: func(ctx context.Context, c *cli, opts any, args []string) error {
		return c.rulesCheck(*opts.(*rulesOptions), args)
	},
}

type rulesOptions struct {
	config, events, app, now string
	json                     bool
}

// eventIndex finds "events[12]" in the parser's reasons.
var eventIndex = regexp.MustCompile(`events\[[0-9]+\]`)

// dryRunPepper keys users in a dry run; any fixed value does, the keys are never stored.
const dryRunPepper = "retarget-rules-check-dry-run-pepper"

// configView lists a valid config: rules check's JSON output without --events.
type configView struct {
	Config string    `json:"config"`
	Valid  bool      `json:"valid"`
	Apps   []appView `json:"apps"`
}

type appView struct {
	ID              string        `json:"id"`
	Name            string        `json:"name,omitempty"`
	Platforms       []string      `json:"platforms"`
	DatasetID       string        `json:"dataset_id"`
	AdAccountID     string        `json:"ad_account_id"`
	TestEventCode   bool          `json:"test_event_code"`
	Segments        []segmentView `json:"segments"`
	ExclusiveGroups [][]string    `json:"exclusive_groups,omitempty"`
}

type segmentView struct {
	ID          string        `json:"id"`
	Description string        `json:"description,omitempty"`
	Audience    *audienceView `json:"audience,omitempty"`
}

type audienceView struct {
	Name        string `json:"name"`
	AudienceID  string `json:"audience_id,omitempty"`
	Create      bool   `json:"create"`
	AdAccountID string `json:"ad_account_id"`
	ValueBased  bool   `json:"value_based"`
}

func (c *cli) rulesCheck(o rulesOptions, args []string) error {
	if len(args) > 0 {
		return usagef("rules check", "unexpected arguments %q", args)
	}
	now := c.now()
	if o.now != "" {
		t, err := parseTime(o.now)
		if err != nil {
			return usagef("rules check", "--now: %v", err)
		}
		now = t
	}
	cfg, path, err := c.loadConfig(o.config)
	if errors.Is(err, os.ErrNotExist) {
		return err
	}
	if err != nil {
		return fmt.Errorf("the config is not valid:\n%w", err)
	}
	// Load validated it; compile too, exactly as the functions do at start.
	rules, err := segments.ForConfig(cfg)
	if err != nil {
		return fmt.Errorf("config %s: segment rules: %w", path, err)
	}
	auds, err := audiences.ForConfig(cfg)
	if err != nil {
		return fmt.Errorf("config %s: audiences: %w", path, err)
	}
	if o.events == "" {
		if o.app != "" {
			if _, err := findApp(cfg, o.app); err != nil {
				return err
			}
		}
		return c.printConfig(path, cfg, auds, o)
	}
	appID := o.app
	if appID == "" {
		if len(cfg.Apps) != 1 {
			return usagef("rules check", "the config has %d apps: choose one with --app (%s)", len(cfg.Apps), strings.Join(appIDs(cfg), ", "))
		}
		appID = cfg.Apps[0].ID
	}
	app, err := findApp(cfg, appID)
	if err != nil {
		return err
	}
	in, err := c.openInput(o.events)
	if err != nil {
		return err
	}
	defer in.Close()
	res, err := dryRun(app, rules[app.ID], in, now)
	if err != nil {
		return err
	}
	res.Config = path
	if o.json {
		return writeJSON(c.stdout, res)
	}
	return res.print(c.stdout, now)
}

// parseTime reads RFC 3339 or unix seconds.
func parseTime(s string) (time.Time, error) {
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return time.Unix(n, 0), nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q: want RFC 3339 (2026-03-09T10:00:00Z) or unix seconds", s)
	}
	return t, nil
}

func (c *cli) openInput(path string) (io.ReadCloser, error) {
	if path == "-" {
		return io.NopCloser(c.stdin), nil
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("events file: %w", err)
	}
	return f, nil
}

func (c *cli) printConfig(path string, cfg *appconfig.Config, auds map[string]*audiences.AppAudiences, o rulesOptions) error {
	v := configView{Config: path, Valid: true}
	for i := range cfg.Apps {
		a := &cfg.Apps[i]
		if o.app != "" && a.ID != o.app {
			continue
		}
		av := appView{ID: a.ID, Name: a.Name, DatasetID: a.Meta.DatasetID, AdAccountID: a.Meta.AdAccountID,
			TestEventCode: a.Meta.TestEventCode != "", Segments: []segmentView{}, ExclusiveGroups: a.ExclusiveGroups}
		for _, p := range a.Platforms {
			av.Platforms = append(av.Platforms, string(p))
		}
		for _, s := range a.Segments {
			sv := segmentView{ID: s.ID, Description: s.Description}
			if au, ok := auds[a.ID].Audience(s.ID); ok {
				sv.Audience = &audienceView{Name: au.Name(), AudienceID: au.ID(), Create: au.Create(),
					AdAccountID: au.AdAccountID(), ValueBased: au.ValueBased()}
			}
			av.Segments = append(av.Segments, sv)
		}
		v.Apps = append(v.Apps, av)
	}
	if o.json {
		return writeJSON(c.stdout, v)
	}
	fmt.Fprintf(c.stdout, "config %s is valid: %d app(s)\n\n", path, len(cfg.Apps))
	var apps, segs [][]string
	for _, a := range v.Apps {
		nAud := 0
		for _, s := range a.Segments {
			if s.Audience != nil {
				nAud++
			}
		}
		apps = append(apps, []string{a.ID, a.Name, strings.Join(a.Platforms, ","), a.DatasetID, a.AdAccountID,
			yesNo(a.TestEventCode), strconv.Itoa(len(a.Segments)), strconv.Itoa(nAud)})
		for _, s := range a.Segments {
			name, id, group := "", "", ""
			if au := s.Audience; au != nil {
				name, id = au.Name, au.AudienceID
				if au.ValueBased {
					name += " (value-based)"
				}
				if au.Create && id == "" {
					id = "(created by sync)"
				}
			}
			for g, members := range a.ExclusiveGroups {
				for rank, m := range members {
					if m == s.ID {
						group = fmt.Sprintf("%d (priority %d)", g+1, rank+1)
					}
				}
			}
			segs = append(segs, []string{a.ID, s.ID, name, id, group, s.Description})
		}
	}
	if err := writeTable(c.stdout, []string{"APP", "NAME", "PLATFORMS", "DATASET", "AD ACCOUNT", "TEST CODE", "SEGMENTS", "AUDIENCES"}, apps); err != nil {
		return err
	}
	fmt.Fprintln(c.stdout)
	return writeTable(c.stdout, []string{"APP", "SEGMENT", "AUDIENCE", "AUDIENCE ID", "EXCLUSIVE GROUP", "DESCRIPTION"}, segs)
}

// dryRunResult is rules check's output with --events.
type dryRunResult struct {
	Config   string         `json:"config"`
	App      string         `json:"app"`
	Now      string         `json:"now"`
	Events   int            `json:"events"`
	Accepted int            `json:"accepted"`
	Users    []dryRunUser   `json:"users"`
	Rejected []dryRunReject `json:"rejected"`
}

type dryRunUser struct {
	User        int          `json:"user"`
	KeySource   string       `json:"key_source,omitempty"`
	KeyPrefix   string       `json:"key_prefix"`
	Events      int          `json:"events"`
	Transitions []transition `json:"transitions"`
	SegmentsNow []string     `json:"segments_now"`
}

type transition struct {
	At      string `json:"at"`
	Change  string `json:"change"` // enter | leave
	Segment string `json:"segment"`
	// Cause is "event" (Line, EventID, EventName say which) or "time" (a time-based rule
	// flipped with no event, as the sweeper would find).
	Cause     string `json:"cause"`
	Line      int    `json:"line,omitempty"`
	EventID   string `json:"event_id,omitempty"`
	EventName string `json:"event_name,omitempty"`
	at        time.Time
}

type dryRunReject struct {
	Line    int                   `json:"line"`
	EventID string                `json:"event_id,omitempty"`
	Errors  []appevent.FieldError `json:"errors"`
}

// userEvent is one accepted event of a user, with the line it came from.
type userEvent struct {
	line int
	ev   envelope.Event
}

// dryRun parses the events of r as the ingest function would and folds them per user.
func dryRun(app *appconfig.App, rules *segments.AppRules, r io.Reader, now time.Time) (*dryRunResult, error) {
	pseudo, err := identity.NewPseudonymizer([]byte(dryRunPepper))
	if err != nil {
		return nil, err
	}
	parser := appevent.NewParser(pseudo)
	res := &dryRunResult{App: app.ID, Now: now.UTC().Format(timeLayout), Users: []dryRunUser{}, Rejected: []dryRunReject{}}

	type userAcc struct {
		n         int
		keySource string
		events    []userEvent
	}
	users := map[string]*userAcc{}
	var order []string
	seenIDs := map[string]int{} // user key + event id -> line

	var batch []pendingEvent
	size := emptyBatchBytes
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		body := make([]byte, 0, size)
		body = append(body, `{"events":[`...)
		for i, e := range batch {
			if i > 0 {
				body = append(body, ',')
			}
			body = append(body, e.raw...)
		}
		body = append(body, `]}`...)
		b, err := parser.Parse(app, string(body), now)
		if err != nil {
			return fmt.Errorf("events (lines %d-%d): %w", batch[0].line, batch[len(batch)-1].line, err)
		}
		defer b.Release()
		// Reasons may point at another event of the request ("repeats the event_id of
		// events[0]"): in a dry run that is a line of the file.
		toLine := func(s string) string {
			return eventIndex.ReplaceAllStringFunc(s, func(m string) string {
				if i, err := strconv.Atoi(m[len("events[") : len(m)-1]); err == nil && i < len(batch) {
					return "line " + strconv.Itoa(batch[i].line)
				}
				return m
			})
		}
		for _, rej := range b.Rejected {
			errs := make([]appevent.FieldError, len(rej.Errors))
			for i, e := range rej.Errors {
				errs[i] = appevent.FieldError{Field: fieldWithoutIndex(e.Field), Reason: toLine(e.Reason)}
			}
			res.Rejected = append(res.Rejected, dryRunReject{Line: batch[rej.Index].line, EventID: rej.EventID, Errors: errs})
		}
		envs, err := b.Events()
		if err != nil {
			return fmt.Errorf("events (lines %d-%d): the parsed records do not decode: %w", batch[0].line, batch[len(batch)-1].line, err)
		}
		for i, rec := range b.Accepted {
			env := &envs[i]
			line := batch[rec.Index].line
			if first, dup := seenIDs[rec.UserKey+"\x00"+rec.EventID]; dup {
				res.Rejected = append(res.Rejected, dryRunReject{Line: line, EventID: rec.EventID, Errors: []appevent.FieldError{{
					Field: "event_id", Reason: fmt.Sprintf("repeats the event_id of line %d: the segment updater applies an event once", first)}}})
				continue
			}
			seenIDs[rec.UserKey+"\x00"+rec.EventID] = line
			res.Accepted++
			u := users[rec.UserKey]
			if u == nil {
				u = &userAcc{n: len(order) + 1}
				users[rec.UserKey] = u
				order = append(order, rec.UserKey)
			}
			if ks := string(env.Event.User.KeySource); ks != "" {
				u.keySource = ks
			}
			u.events = append(u.events, userEvent{line: line, ev: env.Event})
		}
		batch, size = nil, emptyBatchBytes
		return nil
	}

	src := &lineSource{r: bufio.NewReader(r)}
	for {
		raw, line, err := src.next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		res.Events++
		if raw[0] != '{' || !json.Valid(raw) || emptyBatchBytes+len(raw) > appevent.MaxBodyBytes {
			res.Rejected = append(res.Rejected, dryRunReject{Line: line, Errors: []appevent.FieldError{{Field: "(line)", Reason: "not a JSON object of at most 1 MiB"}}})
			continue
		}
		if len(batch) == appevent.MaxEvents || size+len(raw)+1 > appevent.MaxBodyBytes {
			if err := flush(); err != nil {
				return nil, err
			}
		}
		if len(batch) > 0 {
			size++
		}
		batch, size = append(batch, pendingEvent{raw: raw, line: line}), size+len(raw)
	}
	if err := flush(); err != nil {
		return nil, err
	}
	sort.Slice(res.Rejected, func(i, j int) bool { return res.Rejected[i].Line < res.Rejected[j].Line })

	for _, key := range order {
		u := users[key]
		du := dryRunUser{User: u.n, KeySource: u.keySource, KeyPrefix: shortKey(key), Events: len(u.events)}
		du.Transitions, du.SegmentsNow = simulate(rules, u.events, now)
		du.Transitions, du.SegmentsNow = emptyIfNil(du.Transitions), emptyIfNil(du.SegmentsNow)
		res.Users = append(res.Users, du)
	}
	return res, nil
}

// maxTimeSteps bounds the time-based changes followed between two events (a guard: rules
// change a bounded number of times).
const maxTimeSteps = 10000

// simulate folds one user's events in event-time order (ties by line) and returns every
// membership change with its cause, and the segments at end.
func simulate(rules *segments.AppRules, evs []userEvent, end time.Time) ([]transition, []string) {
	sort.SliceStable(evs, func(i, j int) bool {
		if evs[i].ev.Time != evs[j].ev.Time {
			return evs[i].ev.Time < evs[j].ev.Time
		}
		return evs[i].line < evs[j].line
	})
	var st segments.State
	var cur []string
	var due time.Time
	var out []transition
	record := func(at time.Time, segs []string, cause transition) {
		joined, left := segments.Diff(cur, segs)
		for _, id := range joined {
			t := cause
			t.at, t.Change, t.Segment = at, "enter", id
			out = append(out, t)
		}
		for _, id := range left {
			t := cause
			t.at, t.Change, t.Segment = at, "leave", id
			out = append(out, t)
		}
		cur = segs
	}
	// advance applies the time-based changes strictly before until (unix seconds).
	advance := func(until int64) {
		for step := 0; step < maxTimeSteps && !due.IsZero() && due.Unix() < until; step++ {
			at := due
			segs, next := rules.Evaluate(&st, at)
			record(at, segs, transition{Cause: "time"})
			if !next.After(at) {
				next = time.Time{}
			}
			due = next
		}
	}
	for i := range evs {
		e := &evs[i]
		advance(e.ev.Time)
		st.Apply(&e.ev, rules)
		at := time.Unix(e.ev.Time, 0)
		segs, next := rules.Evaluate(&st, at)
		record(at, segs, transition{Cause: "event", Line: e.line, EventID: e.ev.ID, EventName: e.ev.Name})
		due = next
	}
	advance(end.Unix() + 1)
	final, _ := rules.Evaluate(&st, end)
	for i := range out {
		out[i].At = out[i].at.UTC().Format(timeLayout)
	}
	return out, final
}

func (r *dryRunResult) print(w io.Writer, now time.Time) error {
	fmt.Fprintf(w, "config %s is valid; app %s: %d event(s), %d accepted, %d rejected, %d user(s); evaluated up to %s\n\n",
		r.Config, r.App, r.Events, r.Accepted, len(r.Rejected), len(r.Users), r.Now)
	var rows [][]string
	for _, u := range r.Users {
		for _, t := range u.Transitions {
			cause := "time (no event: a time-based rule, as the sweeper would find)"
			if t.Cause == "event" {
				cause = fmt.Sprintf("line %d: %s (event_id %s)", t.Line, t.EventName, t.EventID)
			}
			rows = append(rows, []string{strconv.Itoa(u.User), t.At, t.Change, t.Segment, cause})
		}
	}
	if err := writeTable(w, []string{"USER", "AT", "CHANGE", "SEGMENT", "CAUSE"}, rows); err != nil {
		return err
	}
	fmt.Fprintln(w)
	rows = nil
	for _, u := range r.Users {
		rows = append(rows, []string{strconv.Itoa(u.User), u.KeySource, u.KeyPrefix, strconv.Itoa(u.Events), list(u.SegmentsNow)})
	}
	if err := writeTable(w, []string{"USER", "KEYED BY", "DRY-RUN KEY", "EVENTS", "SEGMENTS AT " + now.UTC().Format(timeLayout)}, rows); err != nil {
		return err
	}
	if len(r.Rejected) == 0 {
		return nil
	}
	fmt.Fprintln(w)
	rows = nil
	for _, rej := range r.Rejected {
		for _, e := range rej.Errors {
			rows = append(rows, []string{strconv.Itoa(rej.Line), rej.EventID, e.Field, e.Reason})
		}
	}
	return writeTable(w, []string{"REJECTED LINE", "EVENT ID", "FIELD", "REASON"}, rows)
}
