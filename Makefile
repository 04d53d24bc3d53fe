# Single entry point. `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

GO        ?= go
FUNCTIONS := $(notdir $(patsubst %/,%,$(wildcard functions/*/)))
TOOLS     := $(CURDIR)/.devtools
TOOLS_BIN := $(TOOLS)/bin
CONFIG    ?= infra/config/apps.json
# make dev runs the dev config (the sample plus a test_event_code) unless CONFIG is given.
DEV_CONFIG ?= infra/config/apps.dev.json
RIE_VERSION         := v0.0.0-20261030222936-bef5c4ba774d
STATICCHECK_VERSION := v0.8.2
LAMBDA_FLAGS := -tags lambda.norpc -trimpath -ldflags="-s -w"
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20

.PHONY: help tools build build-host cli chaos loadtest test test-go fuzz-smoke fuzz dev synth cfn-lint openapi-lint deploy destroy bench bench-ingest lint clean

help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-z-]+:.*## / {printf "  \033[36m%-12s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(TOOLS)/node_modules/.installed: $(TOOLS)/package.json $(TOOLS)/package-lock.json
	cd $(TOOLS) && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

$(TOOLS_BIN)/aws-lambda-rie:
	GOBIN=$(TOOLS_BIN) $(GO) install github.com/aws/aws-lambda-runtime-interface-emulator/cmd/aws-lambda-rie@$(RIE_VERSION)

$(TOOLS_BIN)/staticcheck:
	GOBIN=$(TOOLS_BIN) $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)

tools: $(TOOLS)/node_modules/.installed $(TOOLS_BIN)/aws-lambda-rie ## Install the pinned npm emulators, the CDK CLI and the Lambda RIE under .devtools/

build: ## Build one linux/arm64 bootstrap per function into build/lambda/<fn>/
	@for fn in $(FUNCTIONS); do \
	  echo "build build/lambda/$$fn/bootstrap"; \
	  CGO_ENABLED=0 GOOS=linux GOARCH=arm64 $(GO) build $(LAMBDA_FLAGS) -o build/lambda/$$fn/bootstrap ./functions/$$fn || exit 1; \
	done

build-host: ## Build host-architecture bootstraps into build/host/<fn>/ (local runs, RIE)
	@for fn in $(FUNCTIONS); do \
	  echo "build build/host/$$fn/bootstrap"; \
	  CGO_ENABLED=0 $(GO) build $(LAMBDA_FLAGS) -o build/host/$$fn/bootstrap ./functions/$$fn || exit 1; \
	done

test: tools build-host test-go fuzz-smoke ## Run every test (emulators and RIE included) and a short run of every fuzz target

test-go:
	EMULATORS_REQUIRED=1 RIE_BIN=$(TOOLS_BIN)/aws-lambda-rie HOST_BUILD_DIR=$(CURDIR)/build/host \
	  $(GO) test -count=1 -timeout 15m ./...

# Every fuzz target: the ingest parser, the stream envelope decoder, the config loader, the
# Graph API response parser, the API Gateway event decoder. A crash found is kept in the package's testdata/fuzz and becomes a
# regression test of `go test`.
FUZZ_TARGETS := FuzzParseBatch:./shared/domain/appevent FuzzDecode:./shared/domain/envelope FuzzParse:./shared/domain/appconfig FuzzDecoderMatchesDecode:./shared/domain/envelope FuzzAppendPayload:./shared/domain/capi \
  FuzzParseResponse:./shared/adapters/metagraph FuzzAppendString:./shared/domain/jsonenc FuzzVerify:./shared/adapters/jwtverify \
  FuzzDecodeProxyRequest:./shared/adapters/apigw

loadtest: tools ## Load test the pipeline on its own dev stack and model its cost per million events (LOADTEST_FLAGS="--rate 6000 --duration 60s")
	$(GO) run ./infra/cmd/loadtest --out loadtest.json $(LOADTEST_FLAGS)

chaos: tools ## Run the fault-injection suite end to end (CHAOS_LONG=1 for the long variant)
	EMULATORS_REQUIRED=1 $(GO) test -count=1 -v -run 'TestPipelineUnderFaults' ./infra/e2e/chaos/

# The smoke run counts executions instead of timing them: with a duration, Go 1.26's fuzz
# coordinator can report its own deadline as a failure ("context deadline exceeded", no crasher;
# golang/go#75804, fixed in Go 1.27), which a loaded CI machine hits. 100,000 executions take
# 1-6 s per target here.
fuzz-smoke:
	@for t in $(FUZZ_TARGETS); do \
	  echo "fuzz $${t%%:*} for $(or $(FUZZSMOKE),100000x)"; \
	  $(GO) test -run '^$$' -fuzz "^$${t%%:*}\$$" -fuzztime $(or $(FUZZSMOKE),100000x) -fuzzminimizetime 100x $${t#*:} || exit 1; \
	done

fuzz: ## Fuzz every target for 2 minutes each (FUZZTIME=...)
	@for t in $(FUZZ_TARGETS); do \
	  echo "fuzz $${t%%:*} for $(or $(FUZZTIME),2m)"; \
	  $(GO) test -run '^$$' -fuzz "^$${t%%:*}\$$" -fuzztime $(or $(FUZZTIME),2m) $${t#*:} || exit 1; \
	done

cli: ## Build the operator CLI into build/host/retarget (`build/host/retarget --help`)
	CGO_ENABLED=0 $(GO) build -o build/host/retarget ./infra/cmd/retarget

dev: tools ## Run the whole pipeline locally on loopback (API on 127.0.0.1:3000)
	CGO_ENABLED=0 $(GO) build -o build/host/devstack ./infra/cmd/devstack
	exec build/host/devstack -config $(if $(filter command line environment,$(origin CONFIG)),$(CONFIG),$(DEV_CONFIG)) $(DEVSTACK_FLAGS)

# cdk.json's "build" hook runs `make build` before every synth and deploy.
synth: tools ## Synthesise the CloudFormation template into cdk.out/ (offline; cdk-nag runs, a finding fails it)
	$(TOOLS)/node_modules/.bin/cdk synth --quiet -c config=$(CONFIG) $(CDK_FLAGS)

# AWS's CloudFormation linter over every template synth wrote (one per stack): properties and
# types against the resource schemas, references, dependencies. Errors and warnings fail;
# informational rules (style advice on what CDK generates, such as I1022 "prefer Fn::Sub") are
# not run. A finding cfn-lint gets wrong (its schemas lag CloudFormation) is skipped on that one
# resource by the construct, with its reason next to it (infra/stack/cfnlint.go); never across a
# template. cfn-lint is a Python tool (Debian 12 has no package of it); CFN_LINT names another.
CFN_LINT ?= cfn-lint

cfn-lint: ## Lint every synthesised template (cdk.out/*.template.json; run make synth first) with cfn-lint: errors and warnings fail
	@command -v $(CFN_LINT) >/dev/null || { echo "cfn-lint: '$(CFN_LINT)' not found on PATH. Install AWS's CloudFormation linter with 'pipx install cfn-lint' (or pip), or point CFN_LINT at it; Debian 12 packages no cfn-lint." >&2; exit 1; }
	@ls cdk.out/*.template.json >/dev/null 2>&1 || { echo "cfn-lint: no cdk.out/*.template.json: run make synth first" >&2; exit 1; }
	@$(CFN_LINT) --version
	$(CFN_LINT) --non-zero-exit-code warning -- cdk.out/*.template.json
	@echo "cfn-lint: $$(ls cdk.out/*.template.json | wc -l) template(s), no error or warning"

# The OpenAPI document served at /v1/openapi.json, linted with Redocly's recommended rules
# (pinned in .devtools/package.json; no redocly.yaml, so the recommended rules): an error fails.
openapi-lint: $(TOOLS)/node_modules/.installed ## Lint the OpenAPI document (shared/handlers/ingestapi/openapi.json) with Redocly: errors fail
	$(TOOLS)/node_modules/.bin/redocly lint shared/handlers/ingestapi/openapi.json

deploy: tools ## Build and deploy the stack to the current AWS account (cdk deploy; CDK_FLAGS="-c stage=prod ...")
	$(TOOLS)/node_modules/.bin/cdk deploy -c config=$(CONFIG) $(CDK_FLAGS)

destroy: tools ## Delete the stack (retained data, secrets and prod logs stay; see infra/docs/deploy.md)
	$(TOOLS)/node_modules/.bin/cdk destroy -c config=$(CONFIG) $(CDK_FLAGS)

bench: ## Run the hot-path benchmarks (compare runs with benchstat)
	$(GO) test -run '^$$' -bench . -benchmem -count $(or $(COUNT),6) ./shared/...

# The SDK side of BenchmarkParse100: Meta's Node Business SDK on the same events, pinned in
# .devtools/sdkbench (its own package-lock; not part of make tools or CI). See infra/docs/cost.md.
SDKBENCH := $(TOOLS)/sdkbench
$(SDKBENCH)/node_modules/.installed: $(SDKBENCH)/package.json $(SDKBENCH)/package-lock.json
	cd $(SDKBENCH) && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

# The two sides take turns (COUNT rounds of one Go run and one SDK run) so that the shared
# machine's drifting speed falls on both alike.
bench-ingest: $(SDKBENCH)/node_modules/.installed ## Ingest hot path against Meta's Node Business SDK on the same 100 events, in turns: medians and ratios (COUNT=5, SDKBENCH_FLAGS=-all)
	@mkdir -p build
	$(GO) test -c -o build/appevent.test ./shared/domain/appevent/
	@set -o pipefail; : > build/bench-ingest.txt; for i in $$(seq $(or $(COUNT),5)); do \
	  (cd shared/domain/appevent && $(CURDIR)/build/appevent.test -test.run '^$$' -test.bench '^BenchmarkParse100$$') | tee -a build/bench-ingest.txt || exit 1; \
	  (cd $(SDKBENCH) && node bench.js -count 1 $(SDKBENCH_FLAGS)) | tee -a build/bench-ingest.txt || exit 1; \
	done
	@awk -f $(SDKBENCH)/summary.awk build/bench-ingest.txt

lint: $(TOOLS_BIN)/staticcheck ## gofmt, go vet and staticcheck
	@out=$$(gofmt -l $$(git ls-files --cached --others --exclude-standard '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(TOOLS_BIN)/staticcheck ./...

clean: ## Remove build outputs and dev state (keeps .devtools/)
	rm -rf build cdk.out .dev
