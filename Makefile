# Slipway is a Go workspace of several modules; every target runs over all
# of them (go list -m lists the workspace's modules).
GO       ?= go
MODDIRS  := $(shell $(GO) list -m -f '{{.Dir}}')
PKGS     := $(addsuffix /...,$(MODDIRS))
BENCHTIME ?= 3s
FUZZTIME  ?= 30s

# The tests run through gotestsum (a tool of the pkg/testkit module, pinned
# there: `go tool gotestsum`), which reads `go test -json` and prints a line
# per package as it finishes, in the order they finish, and the failures in
# full at the end. Plain `go test` over several packages holds each result
# back until every package listed before it is done, which made a run look
# stuck for minutes. TESTFORMAT=testname prints a line per test;
# TESTFORMAT=standard-verbose is `go test -v`.
GOTESTSUM  := $(GO) tool gotestsum
TESTFORMAT ?= pkgname
TESTJSON   := bin/test.json

.PHONY: all test test-static test-short bench chaos soak lint build generate fuzz clean docker-up docker-down screenshots

all: lint test build

## test: every test of every module, with the race detector (fuzz seed corpora
## included); a line per package as it finishes, then the ten slowest tests
## (-ldflags=-w: test binaries without DWARF link in about two thirds of the
## time; panics and race reports still name files and lines)
test:
	@mkdir -p bin
	@echo "compiling with the race detector (a first run compiles every dependency: minutes), then a line per package"
	$(GOTESTSUM) --format $(TESTFORMAT) --format-hide-empty-pkg --jsonfile $(TESTJSON) --raw-command -- \
		$(GO) test -json -race -ldflags=-w -count=1 -timeout 15m $(PKGS)
	@echo "slowest tests:"; $(GOTESTSUM) tool slowest --jsonfile $(TESTJSON) --num 10

## test-static: build the images' binaries as their Dockerfiles do
## (CGO_ENABLED=0, -trimpath) and check that they are static; a build of
## every dependency of its own, so apart from make test (CI runs both; make
## test checks from the package lists that no dependency needs cgo)
test-static:
	SLIPWAY_STATIC_BUILD=1 $(GO) test -count=1 -timeout 15m -run '^TestBinariesBuildStatic$$' -v ./deploy

## docker-up: start a Docker engine for the Docker tests (Debian's docker.io,
## as root; vfs storage, no iptables, no bridge; a Swarm manager), its state
## under DOCKER_DIR; prints the export DOCKER_HOST=... line to use, so
## `eval "$(make -s docker-up)"` points this shell at it. Without an engine
## the Docker tests skip, or fail under CI=true
DOCKER_DIR ?= /tmp/slipway-docker
docker-up:
	@scripts/docker-up $(DOCKER_DIR)

## docker-down: stop the engine docker-up started (DOCKER_DIR is kept)
docker-down:
	@scripts/docker-down $(DOCKER_DIR)

## test-short: the same without the race detector, for a quick loop
test-short:
	$(GOTESTSUM) --format $(TESTFORMAT) --format-hide-empty-pkg --raw-command -- \
		$(GO) test -json -ldflags=-w -count=1 -timeout 15m $(PKGS)

## bench: benchmarks (ingest vs raw JetStream and others); see docs/benchmarks.md
bench:
	$(GO) test -run='^$$' -bench=. -benchmem -benchtime=$(BENCHTIME) -timeout 30m $(PKGS)

## chaos: the chaos run at full size (1000 pushes, 50 repositories, 3 stages,
## instance kills, a registry outage, Marathon 503s, a Docker host in prd:
## needs an engine, see docker-up); prints the report
CHAOS_PUSHES ?= 1000
CHAOS_REPOS  ?= 50
chaos:
	SLIPWAY_CHAOS_PUSHES=$(CHAOS_PUSHES) SLIPWAY_CHAOS_REPOS=$(CHAOS_REPOS) \
		$(GO) test -count=1 -timeout 60m -run '^TestChaos$$' -v ./cmd/slipway

## soak: steady load for SOAK_DURATION; reports memory and goroutines per
## service process at the start and the end
SOAK_DURATION ?= 5m
SOAK_RATE     ?= 5
soak:
	SLIPWAY_SOAK_DURATION=$(SOAK_DURATION) SLIPWAY_SOAK_RATE=$(SOAK_RATE) \
		$(GO) test -count=1 -timeout 0 -run '^TestSoak$$' -v ./cmd/slipway

## screenshots: refresh the console's screenshots in docs/images/console
## (the browser tests write them to bin/screenshots on every run; only this
## target replaces the committed ones, on purpose). Needs Chromium
screenshots:
	@mkdir -p docs/images/console
	SLIPWAY_SCREENSHOTS=$(CURDIR)/docs/images/console \
		$(GO) test -count=1 -timeout 15m -run '^TestConsole' -v ./cmd/slipway

## lint: gofmt and go vet over every module
lint:
	@out=$$(gofmt -l $(MODDIRS)); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)

## build: the binaries into ./bin
build:
	@mkdir -p bin
	$(GO) build -o bin/ ./cmd/slipway ./services/ingest/cmd/ingest ./services/deployer/cmd/deployer ./services/promoter/cmd/promoter ./services/notifier/cmd/notifier ./services/console/cmd/console ./tools/marathon-emulator

## generate: regenerate docs/schemas, docs/asyncapi.yaml and the event table in docs/events.md
generate:
	$(GO) run ./pkg/events/schema/cmd/gen-schemas

## fuzz: run every fuzz target for FUZZTIME each
fuzz:
	@for f in $$($(GO) test -list '^Fuzz' ./services/ingest/formats/ | grep '^Fuzz'); do \
		echo "== $$f"; $(GO) test -run='^$$' -fuzz="^$$f$$" -fuzztime=$(FUZZTIME) ./services/ingest/formats/ || exit 1; \
	done

clean:
	rm -rf bin
