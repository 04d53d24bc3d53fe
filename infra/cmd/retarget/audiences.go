package main

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"strconv"
	"time"

	"github.com/retarget-dev/retarget/shared/adapters/dynamostate"
	"github.com/retarget-dev/retarget/shared/adapters/metagraph"
	"github.com/retarget-dev/retarget/shared/domain/appconfig"
	"github.com/retarget-dev/retarget/shared/domain/audiences"
	"github.com/retarget-dev/retarget/shared/domain/metaversions"
	"github.com/retarget-dev/retarget/shared/ports"
	"github.com/retarget-dev/retarget/shared/runtime/env"
)

var audiencesStatusCommand = &command{
	name:    "audiences status",
	summary: "per audience: Meta id, pending changes, members, size, last sync and refresh, session",
	help: `For every audience of the config (or of --app), and right after it its holdout
audience (SEGMENT "<segment>:holdout", the users the holdout keeps out of the audience): the
Meta audience id (configured, or created by the sync), the segment's pending membership changes
(the same for both: changes are recorded per segment), the members in the member
index, the size as Meta acknowledged it, the last complete sync and the last full refresh
with their ages, and the upload session in progress, if any. Pending changes and members are
counted by paging the state table, up to --count-limit each.

Below the table, a line per audience whose removals are held (Meta refused them, e.g.
"audience size too low": how many, Meta's answer, and the sync runs until the next attempt;
their changes stay pending meanwhile, additions go on) and per audience Meta deleted (100/33:
nothing is sent to it until "retarget audiences create --recreate-gone" re-creates it).`,
	example: `  retarget audiences status                    # against make dev
  retarget audiences status --stack Retarget-prod
  retarget audiences status --table Retarget-State-ABC --app sample-shop --json`,
	flags: func(fs *flag.FlagSet) any {
		o := &audiencesOptions{}
		o.register(fs)
		fs.IntVar(&o.countLimit, "count-limit", 100000, "stop counting pending changes or members at `n`")
		return o
	},
	run: func(ctx context.Context, c *cli, opts any, args []string) error {
		return c.audiencesStatus(ctx, *opts.(*audiencesOptions), args)
	},
}

var audiencesCreateCommand = &command{
	name:    "audiences create",
	summary: "create the configured audiences (create: true) and holdout audiences that have no Meta id yet",
	help: `Creates at Meta, in each audience's ad account, the audiences the config marks
"create": true, and the holdout audiences ("<name> (holdout)", for every audience with a
holdout and no holdout_audience_id), that have no id in the state table yet (what the audience
sync would do on its first run), and stores their ids with an optimistic version, so the sync uploads to them. It
holds the app's audience sync lease meanwhile, so it never races a sync run. Prints the ids.
Creation looks the name up in the ad account first, so an audience whose creation answer was
lost is found, not made twice.

An audience Meta deleted (it deletes audiences no ad set used for two years; the sync marks
them gone and stops) is re-created only with --recreate-gone: the new audience starts empty,
its pending changes are uploaded by the next sync, and when full refresh is on, the next run
refills it from the member index (a full refresh is due at once).

Meta credentials: --meta-secret-id or META_SECRET_ID (Secrets Manager JSON {"access_token",
"app_secret"}), else META_ACCESS_TOKEN and META_APP_SECRET; with META_GRAPH_URL on loopback
(the dev stack's Meta sandbox) the sandbox's dev credentials by default. META_GRAPH_URL
defaults to https://graph.facebook.com; the Marketing API version is META_MARKETING_VERSION (or
the deprecated META_API_VERSION), else the running dev stack's or --stack's, else the default.`,
	example: `  retarget audiences create --dry-run
  retarget audiences create                    # against make dev and its Meta sandbox
  retarget audiences create --table Retarget-State-ABC --meta-secret-id arn:aws:secretsmanager:... --app sample-shop`,
	flags: func(fs *flag.FlagSet) any {
		o := &audiencesOptions{}
		o.register(fs)
		fs.BoolVar(&o.dryRun, "dry-run", false, "show what would be created; call nothing at Meta, write nothing")
		fs.BoolVar(&o.recreateGone, "recreate-gone", false, "re-create the audiences Meta deleted (the sync marked them gone)")
		fs.StringVar(&o.metaSecret, "meta-secret-id", "", "Secrets Manager `id` of the Meta credentials (default $META_SECRET_ID)")
		fs.StringVar(&o.graphURL, "graph-url", "", "Graph API root `url` (default $META_GRAPH_URL, else https://graph.facebook.com)")
		return o
	},
	run: func(ctx context.Context, c *cli, opts any, args []string) error {
		return c.audiencesCreate(ctx, *opts.(*audiencesOptions), args)
	},
}

type audiencesOptions struct {
	state        stateOptions
	config       string
	app          string
	json         bool
	countLimit   int
	dryRun       bool
	recreateGone bool
	metaSecret   string
	graphURL     string
}

func (o *audiencesOptions) register(fs *flag.FlagSet) {
	o.state.register(fs)
	configFlag(fs, &o.config)
	fs.StringVar(&o.app, "app", "", "only this `app` (default: every app of the config)")
	fs.BoolVar(&o.json, "json", false, "print JSON")
}

// audienceStatus is one audience in audiences status.
type audienceStatus struct {
	App string `json:"app"`
	// Segment is the audience's key: the segment, or "<segment>:holdout" for its holdout
	// audience.
	Segment    string `json:"segment"`
	Name       string `json:"name"`
	AudienceID string `json:"audience_id,omitempty"`
	// IDSource says where the id comes from: "config", "state" (created by the sync or by
	// audiences create), or "" (none yet).
	IDSource       string `json:"id_source,omitempty"`
	Create         bool   `json:"create"`
	PendingChanges int    `json:"pending_changes"`
	Members        int    `json:"members"`
	// CountsCapped: a count stopped at --count-limit.
	CountsCapped     bool           `json:"counts_capped,omitempty"`
	Size             int64          `json:"size"`
	LastSyncAt       string         `json:"last_sync_at,omitempty"`
	LastRefreshAt    string         `json:"last_refresh_at,omitempty"`
	FullRefreshHours int            `json:"full_refresh_hours"`
	Session          *sessionStatus `json:"session,omitempty"`
	// RemovalsHeld counts the removals Meta refused and the sync holds (RemovalError: Meta's
	// answer; RemovalRetryInRuns: sync runs before the next attempt).
	RemovalsHeld       int64  `json:"removals_held,omitempty"`
	RemovalError       string `json:"removal_error,omitempty"`
	RemovalRetryInRuns int64  `json:"removal_retry_in_runs,omitempty"`
	// GoneAt is when Meta answered that the audience no longer exists (100/33), if it did.
	GoneAt  string `json:"gone_at,omitempty"`
	Version int64  `json:"version"`

	lastSync, lastRefresh int64
}

type sessionStatus struct {
	Op          string `json:"op"`
	BatchesDone int    `json:"batches_done"`
	StartedAt   string `json:"started_at,omitempty"`
	startedAt   int64
}

// audiencesBackends loads the config, the selected apps with their compiled audiences, and the
// state store: what both audiences commands start with.
func (c *cli) audiencesBackends(ctx context.Context, o audiencesOptions) ([]*appconfig.App, map[string]*audiences.AppAudiences, *dynamostate.Store, error) {
	cfg, _, err := c.loadConfig(o.config)
	if err != nil {
		return nil, nil, nil, err
	}
	apps, err := selectApps(cfg, o.app)
	if err != nil {
		return nil, nil, nil, err
	}
	auds, err := audiences.ForConfig(cfg)
	if err != nil {
		return nil, nil, nil, err
	}
	store, err := c.stateStore(ctx, o.state)
	if err != nil {
		return nil, nil, nil, err
	}
	return apps, auds, store, nil
}

func (c *cli) audiencesStatus(ctx context.Context, o audiencesOptions, args []string) error {
	if len(args) > 0 {
		return usagef("audiences status", "unexpected arguments %q", args)
	}
	if o.countLimit <= 0 {
		return usagef("audiences status", "--count-limit must be positive")
	}
	apps, auds, store, err := c.audiencesBackends(ctx, o)
	if err != nil {
		return err
	}
	out := []audienceStatus{}
	for _, app := range apps {
		aa := auds[app.ID]
		for _, a := range aa.Audiences() {
			s, err := audienceStatusOf(ctx, store, app.ID, a, o.countLimit)
			if err != nil {
				return err
			}
			s.FullRefreshHours = int(aa.Rules().FullRefresh / time.Hour)
			out = append(out, s)
		}
	}
	if o.json {
		return writeJSON(c.stdout, out)
	}
	now := c.now()
	rows := make([][]string, len(out))
	for i, s := range out {
		id := s.AudienceID
		if id == "" && s.Create {
			id = "(not created yet)"
		}
		pending, members := strconv.Itoa(s.PendingChanges), strconv.Itoa(s.Members)
		if s.CountsCapped {
			if s.PendingChanges >= o.countLimit {
				pending += "+"
			}
			if s.Members >= o.countLimit {
				members += "+"
			}
		}
		refresh := fmtUnix(s.lastRefresh, now)
		switch {
		case s.FullRefreshHours == 0:
			refresh = "off"
		case refresh == "":
			refresh = "never"
		}
		session := ""
		if ss := s.Session; ss != nil {
			session = fmt.Sprintf("%s, %d batch(es) done", ss.Op, ss.BatchesDone)
			if ss.startedAt != 0 {
				session += ", started " + fmtAge(now.Sub(time.Unix(ss.startedAt, 0))) + " ago"
			}
		}
		sync := fmtUnix(s.lastSync, now)
		if sync == "" {
			sync = "never"
		}
		rows[i] = []string{s.App, s.Segment, id, pending, members, strconv.FormatInt(s.Size, 10), sync, refresh, session}
	}
	if err := writeTable(c.stdout, []string{"APP", "SEGMENT", "AUDIENCE ID", "PENDING", "MEMBERS", "SIZE", "LAST SYNC", "LAST REFRESH", "SESSION"}, rows); err != nil {
		return err
	}
	for _, s := range out {
		if s.GoneAt != "" {
			fmt.Fprintf(c.stdout, "\n%s/%s: audience %s was deleted at Meta (%s); nothing is sent to it: re-create it with retarget audiences create --recreate-gone",
				s.App, s.Segment, s.AudienceID, s.GoneAt)
		}
		if s.RemovalsHeld > 0 {
			fmt.Fprintf(c.stdout, "\n%s/%s: %d removal(s) held, next attempt in %d sync run(s); Meta: %s",
				s.App, s.Segment, s.RemovalsHeld, s.RemovalRetryInRuns+1, s.RemovalError)
		}
	}
	return nil
}

// statusStore is what audiences status reads: the segment store and the sync store (one
// DynamoDB table, dynamostate.Store, implements both).
type statusStore interface {
	ports.SegmentStore
	ports.AudienceSyncStore
}

var _ statusStore = (*dynamostate.Store)(nil)

// countPage is the page size of the counts.
const countPage = 1000

func audienceStatusOf(ctx context.Context, store statusStore, app string, a *audiences.Audience, limit int) (audienceStatus, error) {
	s := audienceStatus{App: app, Segment: a.Segment(), Name: a.Name(), Create: a.Create()}
	st, found, err := store.GetAudienceState(ctx, app, a.Segment())
	if err != nil {
		return s, err
	}
	switch {
	case a.ID() != "":
		s.AudienceID, s.IDSource = a.ID(), "config"
	case found && st.AudienceID != "":
		s.AudienceID, s.IDSource = st.AudienceID, "state"
	}
	if found {
		s.Size, s.Version = st.Size, st.Version
		s.lastSync, s.lastRefresh = st.LastSyncAt, st.LastRefreshAt
		s.LastSyncAt, s.LastRefreshAt = jsonTime(st.LastSyncAt), jsonTime(st.LastRefreshAt)
		if st.RemovalsHeld > 0 {
			s.RemovalsHeld, s.RemovalError, s.RemovalRetryInRuns = st.RemovalsHeld, st.RemovalError, st.RemovalSkipRuns
		}
		if st.Gone() {
			s.GoneAt = jsonTime(st.GoneAt)
		}
		if st.SessionID != 0 {
			s.Session = &sessionStatus{Op: st.Op, BatchesDone: st.BatchesDone, StartedAt: jsonTime(st.SessionStartedAt), startedAt: st.SessionStartedAt}
		}
	}
	for after := ""; ; {
		// Changes are recorded per segment: a holdout audience shows its segment's.
		page, next, err := store.PendingChanges(ctx, app, a.Base(), after, min(countPage, limit-s.PendingChanges))
		if err != nil {
			return s, err
		}
		s.PendingChanges += len(page)
		if next == "" {
			break
		}
		if s.PendingChanges >= limit {
			s.CountsCapped = true
			break
		}
		after = next
	}
	for after := ""; ; {
		page, next, err := store.Members(ctx, app, a.Segment(), after, min(countPage, limit-s.Members))
		if err != nil {
			return s, err
		}
		s.Members += len(page)
		if next == "" {
			break
		}
		if s.Members >= limit {
			s.CountsCapped = true
			break
		}
		after = next
	}
	return s, nil
}

// createRow is one audience in audiences create.
type createRow struct {
	App string `json:"app"`
	// Segment is the audience's key, as in audiences status.
	Segment     string `json:"segment"`
	Name        string `json:"name"`
	AdAccountID string `json:"ad_account_id"`
	ValueBased  bool   `json:"value_based"`
	AudienceID  string `json:"audience_id,omitempty"`
	// Result is "created", "exists", "would create" or "failed: ...".
	Result string `json:"result"`
}

// createLease is how long audiences create holds an app's sync lease at most.
const createLease = 5 * time.Minute

func (c *cli) audiencesCreate(ctx context.Context, o audiencesOptions, args []string) error {
	if len(args) > 0 {
		return usagef("audiences create", "unexpected arguments %q", args)
	}
	apps, auds, store, err := c.audiencesBackends(ctx, o)
	if err != nil {
		return err
	}
	var meta ports.AudienceAPI
	if !o.dryRun {
		creds, err := c.metaCredentials(ctx, o.metaSecret)
		if err != nil {
			return err
		}
		graphURL := o.graphURL
		if graphURL == "" {
			graphURL = c.getenv(env.GraphURL)
		}
		// Custom Audiences follow the Marketing API's version schedule, not the Graph API's.
		version := cmp.Or(env.MetaVersion(c.getenv, env.MarketingVersion), metaversions.DefaultMarketing)
		meta = metagraph.New(metagraph.Config{BaseURL: graphURL, Version: version,
			AccessToken: creds.AccessToken, AppSecret: creds.AppSecret})
	}
	var b [6]byte
	rand.Read(b[:])
	holder := "retarget-cli-" + hex.EncodeToString(b[:])

	rows := []createRow{}
	var errs []error
	for _, app := range apps {
		var todo []*audiences.Audience
		for _, a := range auds[app.ID].Audiences() {
			if a.Create() {
				todo = append(todo, a)
			}
		}
		if len(todo) == 0 {
			continue
		}
		appRows, err := c.createForApp(ctx, store, meta, app.ID, todo, holder, o.dryRun, o.recreateGone)
		rows = append(rows, appRows...)
		if err != nil {
			errs = append(errs, fmt.Errorf("app %s: %w", app.ID, err))
		}
	}
	if o.json {
		if err := writeJSON(c.stdout, rows); err != nil {
			return err
		}
	} else {
		table := make([][]string, len(rows))
		for i, r := range rows {
			table[i] = []string{r.App, r.Segment, r.Name, r.AdAccountID, yesNo(r.ValueBased), r.AudienceID, r.Result}
		}
		if err := writeTable(c.stdout, []string{"APP", "SEGMENT", "NAME", "AD ACCOUNT", "VALUE-BASED", "AUDIENCE ID", "RESULT"}, table); err != nil {
			return err
		}
		if len(rows) == 0 {
			fmt.Fprintln(c.stdout, "\nno audience of the config has \"create\": true")
		}
	}
	return errors.Join(errs...)
}

// createForApp creates one app's missing audiences under its sync lease, as the audience sync
// does on its first run (audiencesync.Syncer.audienceState): same request, same stored state.
func (c *cli) createForApp(ctx context.Context, store ports.AudienceSyncStore, meta ports.AudienceAPI, app string, todo []*audiences.Audience, holder string, dryRun, recreateGone bool) ([]createRow, error) {
	if !dryRun {
		now := c.now()
		ok, err := store.AcquireLease(ctx, app, holder, now, now.Add(createLease))
		if err != nil {
			return nil, fmt.Errorf("sync lease: %w", err)
		}
		if !ok {
			return nil, errors.New("the audience sync is running (it holds the app's lease): try again when it is done")
		}
		defer store.ReleaseLease(context.WithoutCancel(ctx), app, holder)
	}
	var rows []createRow
	var errs []error
	for _, a := range todo {
		r := createRow{App: app, Segment: a.Segment(), Name: a.Name(), AdAccountID: a.AdAccountID(), ValueBased: a.ValueBased()}
		st, found, err := store.GetAudienceState(ctx, app, a.Segment())
		if err != nil {
			return rows, err
		}
		if !found {
			st = ports.AudienceSyncState{App: app, Segment: a.Segment()}
		}
		gone := st.Gone()
		switch {
		case gone && !recreateGone:
			r.AudienceID, r.Result = st.AudienceID, "deleted at Meta (re-create with --recreate-gone)"
		case st.AudienceID != "" && !gone:
			r.AudienceID, r.Result = st.AudienceID, "exists"
		case dryRun && gone:
			r.AudienceID, r.Result = st.AudienceID, "would re-create"
		case dryRun:
			r.Result = "would create"
		default:
			id, err := meta.CreateAudience(ctx, a.Creation())
			if err != nil {
				r.Result = "failed: " + err.Error()
				errs = append(errs, fmt.Errorf("create audience for segment %s: %w", a.Segment(), err))
				var ce *ports.CAPIError
				if errors.As(err, &ce) && (ce.Class == ports.CAPIAuth || ce.Class == ports.CAPIBlocked) {
					rows = append(rows, r)
					return rows, errors.Join(errs...) // the next ones would fail the same way
				}
				break
			}
			r.AudienceID = id
			if gone {
				// A new, empty audience: what was acknowledged to the old one is forgotten but
				// the member index, from which a full refresh (due at once) refills it.
				st = ports.AudienceSyncState{App: app, Segment: a.Segment(), LastRefreshAt: 1, Version: st.Version}
			}
			st.AudienceID = id
			st.Version++
			if err := store.PutAudienceState(ctx, st); err != nil {
				r.Result = "created at Meta, NOT stored: " + err.Error()
				errs = append(errs, fmt.Errorf("audience %s for segment %s was created at Meta but its id was not stored "+
					"(delete it in Ads Manager or put it in the config as audience_id): %w", id, a.Segment(), err))
				break
			}
			r.Result = "created"
			if gone {
				r.Result = "re-created"
			}
		}
		rows = append(rows, r)
	}
	return rows, errors.Join(errs...)
}
