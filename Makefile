# Sluice — secure access gateway. Run `make` (or `make help`) for the targets.

SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

GO       ?= go
BIN      ?= bin/sluice
FUZZTIME ?= 30s
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -X main.version=$(VERSION)

# The PostgreSQL end-to-end tests that run over every tunnel transport.
E2E_PG_TESTS := Tunnel|Psql|Upstream|Pgbench|Copy|Hundred|Pgx|Native|Garbage|Stalled|Oversize|Vanish|Revoked|Masking|Guardrail|Allowed|Policy|Inspection|CLI|Memory|Metrics

.PHONY: help build deps demo test fuzz lint proto bench bench-quick soak

help: ## List the targets
	@echo "Usage: make <target> [FUZZTIME=30s]"
	@echo
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | \
		awk 'BEGIN {FS = ":.*## "} {printf "  %-8s %s\n", $$1, $$2}'

build: ## Build bin/sluice
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/sluice

deps: ## Install system dependencies (PostgreSQL server + client, CA certificates) if missing
	scripts/install-deps.sh

demo: deps build ## Run gateway + agent + a scratch PostgreSQL (and MariaDB) on loopback, ready for psql and mysql
	$(BIN) demo

test: deps ## go vet and all tests (what CI runs)
	$(GO) vet ./...
	$(GO) test -count=1 -timeout 30m ./...
	@echo "==> the PostgreSQL end-to-end suite again, over the QUIC tunnel"
	SLUICE_E2E_TUNNEL=quic $(GO) test -count=1 -timeout 20m -run '$(E2E_PG_TESTS)' ./e2e

fuzz: ## Run every Fuzz* target in the tree for FUZZTIME each (default 30s)
	@found=0; \
	for dir in $$(grep -rlE --include='*_test.go' '^func Fuzz[A-Za-z0-9_]*\(' . | xargs -r -n1 dirname | sort -u); do \
		pkg=$$($(GO) list "$$dir"); \
		for fn in $$($(GO) test -list 'Fuzz.*' "$$pkg" | grep -E '^Fuzz'); do \
			found=$$((found + 1)); \
			echo "==> $$pkg $$fn ($(FUZZTIME))"; \
			$(GO) test -run '^$$' -fuzz "^$${fn}\$$" -fuzztime $(FUZZTIME) "$$pkg"; \
		done; \
	done; \
	echo "fuzz: ran $$found target(s)"

lint: ## gofmt (must list nothing) and go vet
	@out=$$(gofmt -l $$(git ls-files --cached --others --exclude-standard '*.go' 2>/dev/null || find . -name '*.go' -not -path './vendor/*')); \
	if [[ -n "$$out" ]]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

bench: deps ## Full benchmark (< ~18 min): every path and workload (PostgreSQL and MySQL), targets, micro benchmarks; see bench/README.md
	scripts/install-bench-deps.sh
	$(GO) build -o bin/sluicebench ./bench/cmd/sluicebench
	bin/sluicebench $(BENCH_FLAGS)

bench-quick: deps ## One benchmark round (< ~5 min): -S simple c=1 and c=8, the streams, the MySQL paths, targets
	scripts/install-bench-deps.sh
	$(GO) build -o bin/sluicebench ./bench/cmd/sluicebench
	bin/sluicebench -quick $(BENCH_FLAGS)

soak: deps ## 5 minutes of pgbench -c 8 per tunnel transport with the agent's path cut every 30 s; reports failed transactions
	SLUICE_SOAK=5m SLUICE_SOAK_CUT_EVERY=30s $(GO) test -count=1 -timeout 20m -run TestSoakTunnelCuts -v ./e2e/ > soak.log 2>&1; \
	status=$$?; grep -E 'soak over|^\s*(--- |ok|FAIL)' soak.log; echo "full log: soak.log"; exit $$status

proto: ## Regenerate the committed protobuf/gRPC Go code (proto/gen.sh)
	proto/gen.sh
