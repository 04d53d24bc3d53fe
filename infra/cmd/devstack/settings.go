package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"strconv"
	"time"

	"github.com/retarget-dev/retarget/infra/cmd/devstack/devenv"
	"github.com/retarget-dev/retarget/shared/runtime/env"
	"github.com/retarget-dev/retarget/shared/sandbox/metasandbox"
)

// Environment variables of the dev stack's own, defined in devenv for the tools that start a
// dev stack. It also reads some of the functions' (package
// env): env.DevAPIKey, env.Pepper, env.StreamName, env.LogLevel, env.GraphURL (send to that
// Graph API instead of the embedded sandbox), env.AccessToken and env.AppSecret (default: the
// sandbox's dev credentials).
const (
	EnvAPIAddr  = devenv.EnvAPIAddr
	EnvFaults   = devenv.EnvFaults
	EnvSweep    = devenv.EnvSweep
	EnvSync     = devenv.EnvSync
	EnvInsights = devenv.EnvInsights
	// EnvFrontDoor (API) picks the front door the gateway emulates: rest (default) or http.
	EnvFrontDoor = devenv.EnvFrontDoor
	// EnvAdminAccessKeyID and EnvAdminSecretAccessKey are the dev admin credentials the
	// gateway checks SigV4 signatures against (IAM routes).
	EnvAdminAccessKeyID     = devenv.EnvAdminAccessKeyID
	EnvAdminSecretAccessKey = devenv.EnvAdminSecretAccessKey
)

const (
	defaultConfig  = "infra/config/apps.dev.json" // the sample with a test_event_code
	defaultAPIAddr = "127.0.0.1:3000"
	defaultStream  = devenv.Stream
	defaultDevDir  = devenv.Dir
	// devPepper is the built-in pseudonym pepper: public, so user keys made with it are no
	// pseudonyms at all. It equals the one in events/ingest/env.json, so `sam local invoke` and
	// the dev stack key users alike.
	devPepper = devenv.Pepper
	// streamShards is the shard count of the local stream: two, so records of different users
	// really spread over shards, as the consumers must expect.
	streamShards = 2
)

// errUsage is a bad command line; the usage has been printed.
var errUsage = errors.New("usage")

// settings is what one run of the dev stack was asked to do.
type settings struct {
	ConfigFile string // absolute
	APIAddr    string // loopback host:port, port may be 0
	APIKey     string // DEV_API_KEY, may be empty
	// FrontDoor is devenv.FrontDoorREST or devenv.FrontDoorHTTP (API).
	FrontDoor  string
	Pepper     string
	DevPepper  bool // Pepper is the built-in one
	StreamName string
	DevDir     string // absolute: the endpoints file goes here
	LogDir     string // absolute
	LogLevel   string
	Tail       bool
	TailJSON   bool
	// Meta: MetaGraphURL is empty for the embedded sandbox.
	MetaGraphURL, MetaToken, MetaSecret string
	// MetaCAPIVersion and MetaMarketingVersion are META_CAPI_VERSION and
	// META_MARKETING_VERSION (or the deprecated META_API_VERSION); "" for the defaults.
	MetaCAPIVersion, MetaMarketingVersion string
	Faults                                metasandbox.Faults
	// SandboxRemovalMinSize is the embedded sandbox's Config.RemovalMinSize.
	SandboxRemovalMinSize int
	SweepInterval         time.Duration
	AudienceSyncInterval  time.Duration
	InsightsInterval      time.Duration
	// AdminAccessKeyID and AdminSecretAccessKey sign the IAM routes (DEV_ADMIN_*, default the
	// public devenv ones).
	AdminAccessKeyID, AdminSecretAccessKey string
}

// parseSettings reads the flags in args (without the program name) and the environment.
func parseSettings(args []string, getenv func(string) string, usageOut io.Writer) (settings, error) {
	fs := flag.NewFlagSet("devstack", flag.ContinueOnError)
	fs.SetOutput(usageOut)
	fs.Usage = func() {
		fmt.Fprintf(usageOut, "Usage: devstack [flags]  (normally through `make dev`)\n\n"+
			"Runs the pipeline on loopback: Kinesis and DynamoDB emulators, the event stream and the\n"+
			"ingest API behind a stand-in for API Gateway.\n\nEnvironment:\n"+
			"  %-18s API address, loopback only (default %s; port 0 picks a free one)\n"+
			"  %-18s front door: rest (default: API keys, usage plans) or http (key authorizer, per-app limit in the function)\n"+
			"  %-18s replaces the first app's dev API key\n"+
			"  %-18s pseudonym pepper (default: a public dev pepper)\n"+
			"  %-18s stream name (default %s)\n"+
			"  %-18s level of the function's JSON log (default info)\n"+
			"  %-18s send to this Graph API instead of the embedded Meta sandbox\n"+
			"  %-18s Meta access token and app secret (with %s only)\n"+
			"  %-18s faults the Meta sandbox injects, e.g. {\"server_error_rate\":0.3}\n"+
			"  %-18s\n  %-18s dev admin credentials that sign the IAM routes (SigV4; default %s / %s)\n\nFlags:\n",
			EnvAPIAddr, defaultAPIAddr, EnvFrontDoor, env.DevAPIKey, env.Pepper, env.StreamName, defaultStream, env.LogLevel,
			env.GraphURL, env.AccessToken+"/"+env.AppSecret, env.GraphURL, EnvFaults,
			EnvAdminAccessKeyID, EnvAdminSecretAccessKey, devenv.AdminAccessKeyID, devenv.AdminSecretAccessKey)
		fs.PrintDefaults()
	}
	var s settings
	fs.StringVar(&s.ConfigFile, "config", defaultConfig, "app config file")
	// Off by default: dev data is a handful of users, so Meta's threshold (100) would hold every
	// removal and hide the removal path; 100 rehearses Meta (held removals in audiences status).
	fs.IntVar(&s.SandboxRemovalMinSize, "sandbox-removal-min-size", -1,
		"the Meta sandbox refuses removals leaving an audience with fewer members (`n`; Meta: about 100; negative: off)")
	fs.StringVar(&s.DevDir, "dev-dir", defaultDevDir, "state folder: "+devenv.EndpointsFile+" (what runs where, for the CLI and scripts) is written there")
	fs.StringVar(&s.LogDir, "log-dir", "", "folder for the function, metrics and emulator logs, truncated at start (default: logs in -dev-dir)")
	fs.BoolVar(&s.Tail, "tail", true, "print one line per record arriving on the stream")
	fs.BoolVar(&s.TailJSON, "tail-json", false, "print each stream record as one JSON line instead (implies -tail)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return s, err
		}
		return s, errUsage // fs has printed the problem and the usage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(usageOut, "unexpected arguments %q\n", fs.Args())
		fs.Usage()
		return s, errUsage
	}
	s.Tail = s.Tail || s.TailJSON

	var err error
	if s.ConfigFile, err = filepath.Abs(s.ConfigFile); err != nil {
		return s, err
	}
	if s.DevDir, err = filepath.Abs(s.DevDir); err != nil {
		return s, err
	}
	if s.LogDir == "" {
		s.LogDir = filepath.Join(s.DevDir, "logs")
	}
	if s.LogDir, err = filepath.Abs(s.LogDir); err != nil {
		return s, err
	}
	addr := getenv(EnvAPIAddr)
	if addr == "" {
		addr = defaultAPIAddr
	}
	if s.APIAddr, err = loopbackAddr(addr); err != nil {
		return s, err
	}
	switch s.FrontDoor = getenv(EnvFrontDoor); s.FrontDoor {
	case "":
		s.FrontDoor = devenv.FrontDoorREST
	case devenv.FrontDoorREST, devenv.FrontDoorHTTP:
	default:
		return s, fmt.Errorf("%s=%q: want %s (API Gateway REST API, the default) or %s (HTTP API), the front doors of cdk synth -c api",
			EnvFrontDoor, s.FrontDoor, devenv.FrontDoorREST, devenv.FrontDoorHTTP)
	}
	s.APIKey = getenv(env.DevAPIKey)
	s.Pepper = getenv(env.Pepper)
	if s.Pepper == "" {
		s.Pepper, s.DevPepper = devPepper, true
	}
	s.StreamName = getenv(env.StreamName)
	if s.StreamName == "" {
		s.StreamName = defaultStream
	}
	s.LogLevel = getenv(env.LogLevel)
	s.AdminAccessKeyID, s.AdminSecretAccessKey = getenv(EnvAdminAccessKeyID), getenv(EnvAdminSecretAccessKey)
	if s.AdminAccessKeyID == "" {
		s.AdminAccessKeyID = devenv.AdminAccessKeyID
	}
	if s.AdminSecretAccessKey == "" {
		s.AdminSecretAccessKey = devenv.AdminSecretAccessKey
	}
	s.MetaGraphURL, s.MetaToken, s.MetaSecret = getenv(env.GraphURL), getenv(env.AccessToken), getenv(env.AppSecret)
	s.MetaCAPIVersion, s.MetaMarketingVersion = env.MetaVersion(getenv, env.CAPIVersion), env.MetaVersion(getenv, env.MarketingVersion)
	for _, iv := range []struct {
		env string
		dst *time.Duration
		def time.Duration
	}{{EnvSweep, &s.SweepInterval, 30 * time.Second}, {EnvSync, &s.AudienceSyncInterval, 30 * time.Second},
		{EnvInsights, &s.InsightsInterval, time.Minute}} {
		*iv.dst = iv.def
		if v := getenv(iv.env); v != "" {
			d, err := time.ParseDuration(v)
			if err != nil || d <= 0 {
				return s, fmt.Errorf("%s=%q: want a positive Go duration such as 30s", iv.env, v)
			}
			*iv.dst = d
		}
	}
	if v := getenv(EnvFaults); v != "" {
		if err := json.Unmarshal([]byte(v), &s.Faults); err != nil {
			return s, fmt.Errorf("%s: %w (e.g. {\"server_error_rate\":0.3,\"seed\":7})", EnvFaults, err)
		}
	}
	if s.MetaGraphURL == "" {
		// The embedded sandbox only knows its own credentials; real ones never go there.
		s.MetaToken, s.MetaSecret = devMetaToken, devMetaSecret
	} else if s.MetaToken == "" {
		return s, fmt.Errorf("%s is set: set %s (and %s) too", env.GraphURL, env.AccessToken, env.AppSecret)
	}
	return s, nil
}

// loopbackAddr checks that addr (DEV_API_ADDR) is a loopback host:port and returns it with
// "localhost" spelled 127.0.0.1. The dev stack has no TLS and accepts a well-known key: it must
// never be reachable from the network.
func loopbackAddr(addr string) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("%s=%q: want host:port, e.g. %s", EnvAPIAddr, addr, defaultAPIAddr)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return "", fmt.Errorf("%s=%q: port must be a number 0-65535 (0 picks a free one)", EnvAPIAddr, addr)
	}
	if host == "localhost" {
		host = "127.0.0.1"
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		what := "a non-loopback address"
		if host == "" || (ip != nil && ip.IsUnspecified()) {
			what = "every network interface"
		}
		return "", errors.New(EnvAPIAddr + "=" + strconv.Quote(addr) + " would listen on " + what +
			": the dev stack serves on loopback only (127.0.0.1, ::1 or localhost), e.g. " + EnvAPIAddr + "=127.0.0.1:3001")
	}
	return net.JoinHostPort(host, port), nil
}
