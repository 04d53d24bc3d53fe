package main

import (
	"cmp"
	"context"
	"flag"
	"fmt"
	"strings"

	"github.com/retarget-dev/retarget/shared/adapters/metagraph"
	"github.com/retarget-dev/retarget/shared/app/audit"
	"github.com/retarget-dev/retarget/shared/domain/appconfig"
	"github.com/retarget-dev/retarget/shared/domain/metaversions"
	"github.com/retarget-dev/retarget/shared/runtime/env"
)

var audiencesAuditCommand = &command{
	name:    "audiences audit",
	summary: "who holds and uses each managed audience at Meta, and what goes against the config",
	help: `Runs the misuse audit the insights function runs daily after its pull, now: for each app
with audiences, every treated and holdout audience it has at Meta (the ids configured or in
the state table), who holds it (/adaccounts, /shared_account_info) and who uses it (/ads, and
the targeting of the ad sets of the app's ad accounts). Findings, one per line:

  held_by_foreign_account  an ad account outside the app's config holds it (shared with it)
  used_by_foreign_account  an ad of such an account uses it
  campaign_not_allowed     an ad set outside meta.allowed_campaigns includes it
  holdout_not_excluded     an active ad set includes it without excluding its holdout audience
  audit_error              a Meta read failed: the audit of that audience is incomplete

Exit status: 0 when the audit is clean, 1 when there is any finding (a failed read
included), so that a script or CI job can gate on it; the findings are printed either way.

Meta credentials and the Graph API root as for audiences create (against make dev: the
sandbox, with nothing to set).`,
	example: `  retarget audiences audit                    # against make dev
  retarget audiences audit --app sample-shop --json
  retarget --stack Retarget-prod audiences audit --meta-secret-id arn:aws:secretsmanager:...`,
	flags: func(fs *flag.FlagSet) any {
		o := &auditOptions{}
		o.state.register(fs)
		configFlag(fs, &o.config)
		fs.StringVar(&o.app, "app", "", "only this `app` (default: every app with audiences)")
		fs.BoolVar(&o.json, "json", false, "print JSON")
		fs.StringVar(&o.metaSecret, "meta-secret-id", "", "Secrets Manager `id` of the Meta credentials (default $META_SECRET_ID)")
		fs.StringVar(&o.graphURL, "graph-url", "", "Graph API root `url` (default $META_GRAPH_URL, else https://graph.facebook.com)")
		return o
	},
	run: func(ctx context.Context, c *cli, opts any, args []string) error {
		return c.audiencesAudit(ctx, *opts.(*auditOptions), args)
	},
}

type auditOptions struct {
	state                stateOptions
	config, app          string
	json                 bool
	metaSecret, graphURL string
}

// auditOutput is the --json answer.
type auditOutput struct {
	// Apps are the apps audited.
	Apps     []string        `json:"apps"`
	Findings []audit.Finding `json:"findings"`
}

func (c *cli) audiencesAudit(ctx context.Context, o auditOptions, args []string) error {
	const name = "audiences audit"
	if len(args) > 0 {
		return usagef(name, "unexpected arguments %q", args)
	}
	cfg, _, err := c.loadConfig(o.config)
	if err != nil {
		return err
	}
	var apps []*appconfig.App
	if o.app != "" {
		app, err := findApp(cfg, o.app)
		if err != nil {
			return err
		}
		apps = append(apps, app)
	} else {
		for i := range cfg.Apps {
			if len(cfg.Apps[i].Audiences) > 0 {
				apps = append(apps, &cfg.Apps[i])
			}
		}
	}
	store, err := c.stateStore(ctx, o.state)
	if err != nil {
		return err
	}
	creds, err := c.metaCredentials(ctx, o.metaSecret)
	if err != nil {
		return err
	}
	// The audit edges and the ad sets are Marketing API endpoints, on its version schedule.
	version := cmp.Or(env.MetaVersion(c.getenv, env.MarketingVersion), metaversions.DefaultMarketing)
	graph := metagraph.New(metagraph.Config{BaseURL: cmp.Or(o.graphURL, c.getenv(env.GraphURL)), Version: version,
		AccessToken: creds.AccessToken, AppSecret: creds.AppSecret})

	out := auditOutput{Apps: []string{}, Findings: []audit.Finding{}}
	for _, app := range apps {
		found, err := audit.Run(ctx, audit.Sources{Sync: store, Audit: graph, Ads: graph}, app)
		if err != nil {
			return err
		}
		out.Apps = append(out.Apps, app.ID)
		out.Findings = append(out.Findings, found...)
	}
	if o.json {
		if err := writeJSON(c.stdout, out); err != nil {
			return err
		}
	} else if len(out.Findings) == 0 {
		fmt.Fprintf(c.stdout, "no findings: the audiences of %s are held and used as configured\n", strings.Join(out.Apps, ", "))
	} else {
		rows := make([][]string, 0, len(out.Findings))
		for _, f := range out.Findings {
			rows = append(rows, []string{f.App, cmp.Or(f.Key, "-"), cmp.Or(f.AudienceID, "-"), f.Kind, where(f), f.Explanation})
		}
		if err := writeTable(c.stdout, []string{"APP", "SEGMENT", "AUDIENCE ID", "KIND", "WHERE", "EXPLANATION"}, rows); err != nil {
			return err
		}
	}
	if n := len(out.Findings); n > 0 {
		return fmt.Errorf("%d finding(s)", n)
	}
	return nil
}

// where names the account, campaign, ad set and ad of a finding, those it has.
func where(f audit.Finding) string {
	var parts []string
	for _, p := range [][2]string{{"", f.AdAccountID}, {"campaign ", f.CampaignID}, {"ad set ", f.AdSetID}, {"ad ", f.AdID}} {
		if p[1] != "" {
			parts = append(parts, p[0]+p[1])
		}
	}
	return cmp.Or(strings.Join(parts, ", "), "-")
}
