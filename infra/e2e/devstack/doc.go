// Package devstack holds no code, only tests of the dev stack as its users see it: they build
// the binary `make dev` runs (./infra/cmd/devstack) and the operator CLI, start the dev stack on
// free loopback ports with its state and logs in temporary folders (never the repository's
// .dev), and talk to it from outside: its console lines, its endpoints file (package devenv
// holds that contract, with the dev names and credentials), its API, the emulators and the
// Meta Graph sandbox it started.
//
//   - TestDevstack: every ingest answer, the records on the stream, the tail lines, the events
//     at the Meta sandbox, segments and audiences, and a clean stop on SIGTERM;
//     TestDevstackSIGKILLLeavesNoEmulators and TestDevstackRefusesNonLoopbackAddress.
//   - TestDevstackEndpointsFile: the endpoints file against the console, and the CLI with
//     nothing but that file.
//   - TestErasureEndToEnd: an erased user leaves every audience and is neither forwarded nor
//     segmented again until an explicit consent grant.
//   - TestAuthorizationMatrix: every route of the access table (shared/domain/access) with
//     every credential case (keys, end-user tokens valid and forged, SigV4 valid and not)
//     answers as the access model says; a token reaches its own user only; an erased user
//     comes back only by an explicit grant.
//   - TestHTTPFrontDoor: the dev stack with API=http (the HTTP API front door): the key
//     authorizer's 202/401/403, events at the Meta sandbox, an app's 429 with Retry-After and
//     its count in the rate table, SigV4 on the IAM routes, /v1/me with a dev token.
//   - TestNoRawPIIAnywhere: no raw personal value anywhere the pipeline writes, except where
//     Meta's contract needs one (see infra/docs/security.md).
//
// The dev stack's own code is unit-tested in its package. Run these with
//
//	EMULATORS_REQUIRED=1 go test -count=1 ./infra/e2e/devstack/
//
// (about a minute). The tests that start a dev stack need the emulators of `make tools` and
// skip without them unless EMULATORS_REQUIRED=1.
package devstack
