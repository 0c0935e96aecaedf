# gavel: make help lists the targets.
GO        ?= go
BIN       ?= bin
PKGS      ?= ./...
FUZZTIME  ?= 30s
BENCHTIME ?= 2s

.PHONY: help run build test test-short bench fuzz generate lint fmt tidy clean image

help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  %-12s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

run: ## run gavel on its embedded default (no services needed)
	$(GO) run ./cmd/gavel serve --log-format text

build: ## build gavel and gavel-bench into ./bin
	$(GO) build -o $(BIN)/ ./cmd/...

test: ## run every test with the race detector (needs nginx for the end-to-end test)
	$(GO) test -race -count=1 $(PKGS)

test-short: ## run the fast tests only
	$(GO) test -short -count=1 $(PKGS)

bench: ## run the Go benchmarks
	$(GO) test -run '^$$' -bench . -benchmem -benchtime $(BENCHTIME) $(PKGS)

fuzz: ## run every fuzz target for FUZZTIME each
	@set -e; for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
	    echo "== $$pkg $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg; \
	  done; \
	done

generate: ## regenerate golden files and generated config
	$(GO) generate ./...
	$(GO) test ./extauthz -run 'Golden' -update
	$(GO) test ./envoy -run 'Golden' -update
	$(GO) test ./api/hooks -run 'Golden' -update
	$(GO) test ./deploy -run 'Generated' -update

IMAGE   ?= gavel:dev
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)

image: ## build the container image IMAGE (docker, else podman)
	@engine=$$(command -v docker || command -v podman) || { \
	  echo "make image needs docker or podman; neither is installed"; exit 1; }; \
	$$engine build --build-arg VERSION=$(VERSION) -t $(IMAGE) .

lint: ## gofmt, go vet, staticcheck when installed
	@test -z "$$(gofmt -l .)" || (echo "gofmt would change:"; gofmt -l .; exit 1)
	$(GO) vet $(PKGS)
	@if command -v staticcheck >/dev/null; then staticcheck $(PKGS); else echo "staticcheck not installed; skipped"; fi

clean: ## remove build output and local data
	rm -rf $(BIN) gavel-data
