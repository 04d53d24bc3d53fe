package main

import (
	"context"
	"flag"
	"fmt"
	"strings"
	"time"

	"github.com/retarget-dev/retarget/infra/cmd/devstack/devenv"
	"github.com/retarget-dev/retarget/shared/domain/access"
	"github.com/retarget-dev/retarget/shared/runtime/env"
	"github.com/retarget-dev/retarget/shared/sandbox/devissuer"
)

var devTokenCommand = &command{
	name:    "dev token",
	summary: "mint an end-user token of the dev identity provider (make dev's /v1/me routes)",
	help: `Prints a token of the dev stack's identity provider on stdout: a JWT naming --user as the
signed-in user of --app, signed with the dev issuer's key (RS256, iss ` + devissuer.Issuer + `,
aud the app, sub the user). Send it as "Authorization: Bearer <token>" with the app's API key to
the /v1/me routes of make dev; a one-line curl example goes to stderr.

The dev issuer's key is committed in the repository and public, like the dev pepper: the dev
stack (DEV_AUTH=true) trusts it, a deployed stack never does.`,
	example: `  retarget dev token --user u-123
  curl -H 'x-api-key: dev-api-key' -H "Authorization: Bearer $(retarget dev token --user u-123)" http://127.0.0.1:3000/v1/me/segments
  retarget dev token --user u-123 --app sample-shop --ttl 10m --json`,
	flags: func(fs *flag.FlagSet) any {
		o := &devTokenOptions{}
		configFlag(fs, &o.config)
		fs.StringVar(&o.user, "user", "", "the app_user_id the token names (required)")
		fs.StringVar(&o.app, "app", "", "`app` the token is for, its aud (default: the config's first app)")
		fs.DurationVar(&o.ttl, "ttl", time.Hour, "how long the token is valid")
		fs.BoolVar(&o.json, "json", false, "print JSON: the token, its app, user and expiry")
		return o
	},
	run: func(ctx context.Context, c *cli, opts any, args []string) error {
		return c.devToken(*opts.(*devTokenOptions), args)
	},
}

type devTokenOptions struct {
	config, user, app string
	ttl               time.Duration
	json              bool
}

// devTokenView is the JSON output of dev token.
type devTokenView struct {
	Token     string `json:"token"`
	App       string `json:"app"`
	User      string `json:"user"`
	ExpiresAt string `json:"expires_at"`
}

func (c *cli) devToken(o devTokenOptions, args []string) error {
	if len(args) > 0 {
		return usagef("dev token", "unexpected arguments %q (the user goes in --user)", args)
	}
	if strings.TrimSpace(o.user) == "" {
		return usagef("dev token", "--user is required: the app_user_id the token names")
	}
	if o.ttl <= 0 {
		return usagef("dev token", "--ttl must be positive (got %s)", o.ttl)
	}
	cfg, path, err := c.loadConfig(o.config)
	if err != nil {
		return fmt.Errorf("config %s: %w", path, err)
	}
	if len(cfg.Apps) == 0 {
		return fmt.Errorf("config %s has no app", path)
	}
	app := &cfg.Apps[0]
	if o.app != "" {
		if app, err = findApp(cfg, o.app); err != nil {
			return err
		}
	}
	now := c.now()
	token, err := devissuer.Mint(app.ID, o.user, o.ttl, now)
	if err != nil {
		return err
	}
	if o.json {
		view := devTokenView{Token: token, App: app.ID, User: o.user, ExpiresAt: jsonTime(now.Add(o.ttl).Unix())}
		if err := writeJSON(c.stdout, view); err != nil {
			return err
		}
	} else {
		fmt.Fprintln(c.stdout, token)
	}
	fmt.Fprintf(c.stderr, "retarget dev token: %s of %s, valid %s; try: curl -H 'x-api-key: %s' -H 'Authorization: Bearer %s' %s\n",
		o.user, app.ID, o.ttl, c.devAPIKey(app.APIKey.DevValue), token, c.devAPIBase()+access.PathMeSegments)
	return nil
}

// devAPIBase is the dev stack's API base URL: RETARGET_API_URL (the dev stack's endpoints file
// sets it), else DEV_API_ADDR, else the dev default.
func (c *cli) devAPIBase() string {
	if u := c.getenv(envAPIURL); u != "" {
		return strings.TrimRight(u, "/")
	}
	addr := c.getenv(devenv.EnvAPIAddr)
	if addr == "" {
		addr = "127.0.0.1:3000"
	}
	return "http://" + addr
}

// devAPIKey is the API key to show in the hint: RETARGET_API_KEY, else DEV_API_KEY, else the
// app's dev key.
func (c *cli) devAPIKey(appDevKey string) string {
	for _, k := range []string{c.getenv(envAPIKey), c.getenv(env.DevAPIKey), appDevKey} {
		if k != "" {
			return k
		}
	}
	return "<api key>"
}
