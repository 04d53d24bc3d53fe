// Command retarget is the operator CLI of the pipeline: it sends events to the ingest API,
// shows a user's stored segment state, inspects and replays dead letters, checks the config,
// dry-runs the segment rules and applies them to stored users, reports on, creates and
// backfills the Meta Custom Audiences, and mints dev end-user tokens for make dev.
// It is glue over the shared packages: every rule it applies lives there.
//
//	go build -o build/host/retarget ./infra/cmd/retarget
//	retarget send --sample 50                      # against `make dev`
//	retarget user show sample-shop u-123
//	retarget dlq list
//	retarget rules check --events my-events.jsonl
//	retarget rules apply --dry-run                 # after a rules change: who would move
//	retarget audiences status
//	retarget audiences backfill --segment vip      # an audience added after its segment had members
//	retarget dev token --user u-123                # a /v1/me token for make dev
//
// It works against `make dev` with nothing to set (the dev stack's .dev/endpoints.json, found
// from the working directory up to the module root, or --dev-dir) and, with AWS credentials,
// against a deployed stack (--stack NAME reads its outputs). Flags and the environment
// (AWS_ENDPOINT_URL_<SERVICE>, STATE_TABLE_NAME, EVENT_STREAM_NAME, PEPPER_SECRET_ID,
// META_SECRET_ID, ...) win over both: see endpoints.go.
//
// Output is an aligned table, or JSON with --json. Nothing it prints holds raw personal data or
// a whole identifier digest: user keys and digests appear as short prefixes, identifiers as
// yes/no. Exit codes: 0 success, 1 failure (the message is on stderr), 2 bad command line.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	c := &cli{
		stdin:     os.Stdin,
		stdout:    os.Stdout,
		stderr:    os.Stderr,
		getenv:    os.Getenv,
		now:       time.Now,
		stderrTTY: isTerminal(os.Stderr),
		target:    target{wd: workingDir()},
	}
	os.Exit(c.run(ctx, os.Args[1:]))
}

// isTerminal reports whether f is a character device (a terminal), without x/term.
func isTerminal(f *os.File) bool {
	info, err := f.Stat()
	return err == nil && info.Mode()&os.ModeCharDevice != 0
}
