// Package devenv holds the fixed names and public stand-in credentials of the dev stack (`make
// dev`), and its endpoints file (.dev/endpoints.json, what a running dev stack started and
// where): the dev stack uses them, and so do the tools that talk to it (the operator CLI, the
// load test), from this one definition. Nothing here is a secret: the pepper and the Meta credentials only ever
// key local data and open the local Meta sandbox.
package devenv

const (
	// StateTable is the segment state table in dynalite.
	StateTable = "retarget-state"
	// RateTable is the ingest function's per-app request count table in dynalite, created
	// with API=http only (the HTTP API front door's rate limit, infra/docs/front-door.md).
	RateTable = "retarget-rate"
	// Stream is the default event stream in kinesalite (EVENT_STREAM_NAME overrides it).
	Stream = "retarget-events"
	// LogDir is the default folder of the logs, dead letters and mapping failures: logs/ in
	// the state folder Dir.
	LogDir = Dir + "/logs"
	// DeadLettersFile is the forwarder's dead letters, JSON lines, in the log folder.
	DeadLettersFile = "dead-letters.jsonl"
	// Pepper is the built-in pseudonym pepper (PSEUDONYM_PEPPER overrides it): public, so user
	// keys made with it are no secret.
	Pepper = "dev-pepper-not-a-secret-0123456789"
	// MetaAccessToken and MetaAppSecret are what the dev stack's Meta sandbox accepts.
	MetaAccessToken = "dev-meta-access-token"
	MetaAppSecret   = "dev-meta-app-secret"
	// AdminAccessKeyID and AdminSecretAccessKey are the dev admin's AWS credentials: the dev
	// stack's gateway checks the SigV4 signature of the IAM routes (/v1/users/..., POST
	// /v1/server/events) against them, as API Gateway checks a caller's IAM credentials.
	// EnvAdminAccessKeyID and EnvAdminSecretAccessKey override them. They open nothing but a
	// dev stack on loopback.
	AdminAccessKeyID     = "AKIDRETARGETDEV"
	AdminSecretAccessKey = "retarget-dev-admin-secret"
	// AdminUserARN is the IAM user the dev admin credentials stand for (the request context's
	// identity.userArn); AdminCaller is its principal id (identity.caller).
	AdminUserARN = "arn:aws:iam::000000000000:user/retarget-dev-admin"
	AdminCaller  = "AIDARETARGETDEVADMIN"
	// APIRegion is the region the dev stack's API checks signatures for (service execute-api).
	APIRegion = "us-east-1"
)

// Environment variables of the dev stack's own, which the tools that start one set (the load
// test, the end-to-end suites). It also reads some of the functions' (package env).
const (
	EnvAPIAddr = "DEV_API_ADDR"           // where the API listens; loopback only
	EnvFaults  = "META_SANDBOX_FAULTS"    // faults the sandbox injects from the start, JSON as POST /_sandbox/faults takes
	EnvSweep   = "SEGMENT_SWEEP_INTERVAL" // how often the segment sweeper runs (Go duration, default 30s)
	EnvSync    = "AUDIENCE_SYNC_INTERVAL" // how often audience sync runs (Go duration, default 30s)
	// EnvInsights is how often the insights run pulls ad sets and spend (Go duration, default
	// 60s; daily in AWS).
	EnvInsights = "INSIGHTS_INTERVAL"
	// EnvAdminAccessKeyID and EnvAdminSecretAccessKey replace the dev admin credentials
	// (default AdminAccessKeyID / AdminSecretAccessKey).
	EnvAdminAccessKeyID     = "DEV_ADMIN_ACCESS_KEY_ID"
	EnvAdminSecretAccessKey = "DEV_ADMIN_SECRET_ACCESS_KEY"
	// EnvFrontDoor is the front door the dev stack emulates, as `cdk synth -c api=...`:
	// FrontDoorREST (the default) or FrontDoorHTTP.
	EnvFrontDoor = "API"
)

// Front doors (EnvFrontDoor), named as the stack's -c api=... names them.
const (
	FrontDoorREST = "rest"
	FrontDoorHTTP = "http"
)
