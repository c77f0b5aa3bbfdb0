# orders: the two commands a newcomer needs are `make up` and `make test`. `make help` lists the rest.
SHELL := /bin/bash
.DEFAULT_GOAL := help

STACK := deploy/local/stack.sh
SERVICES := deploy/local/services.sh
GO ?= go
STATICCHECK_VERSION := v0.8.2
# Integration tests need the real servers; they carry the `integration` build tag.
TEST_FLAGS ?= -count=1 -timeout 30m

.PHONY: help up down status logs env build lint test-unit test bench stack-up chaos chaos-short

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | column -t -s $$'\t'

up: stack-up build ## install what is missing, start Postgres, Kafka, OpenSearch and the services, print the endpoints
	@$(SERVICES) start
	@echo
	@echo "# The stack is up. Configuration for services, tests and ordersctl:"
	@$(STACK) env
	@$(SERVICES) endpoints

stack-up:
	@$(STACK) start

down: ## stop the services and the servers; leaves no process of ours running
	@$(SERVICES) stop
	@$(STACK) stop

status: ## one line per server and service
	@$(STACK) status; $(SERVICES) status

logs: ## the tail of every server's and service's log (log files live under .local/)
	@$(STACK) logs; $(SERVICES) logs

env: ## the configuration as export lines, for eval
	@$(STACK) env

# The build's identity (orders_build_info, `ordersctl version`), stamped at link time: Go's own VCS
# stamping is off on machines with GOFLAGS=-buildvcs=false.
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
LDFLAGS := -X github.com/orders-oss/orders/internal/buildinfo.Version=$(VERSION) -X github.com/orders-oss/orders/internal/buildinfo.Commit=$(COMMIT)

build: ## build every service and ordersctl into bin/
	@mkdir -p bin
	$(GO) build -ldflags "$(LDFLAGS)" -o bin/ $(addprefix ./,$(dir $(wildcard services/*/main.go cmd/*/main.go)))

lint: ## gofmt, go vet, staticcheck
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) vet -tags integration ./...
	$(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) -tags integration ./...

test-unit: ## the fast tests, no servers needed
	$(GO) test $(TEST_FLAGS) ./...

test: stack-up ## start the stack when it is not running, then run every test (unit and integration), then the short fault suite
	@eval "$$($(STACK) env)" && $(GO) test $(TEST_FLAGS) -tags integration ./...
	@# Last: it kills and restarts the servers the tests above use.
	@$(MAKE) --no-print-directory chaos-short

# The fault suite (internal/chaos, cmd/orderschaos) on the running stack: the services are started (or
# restarted when rebuilt) first, and left running and caught up. CHAOS_FLAGS adds flags (-scenarios,
# -max-faults, -clients, -rate).
CHAOS_FLAGS ?=

chaos: stack-up build ## the fault suite (about 10 minutes): kill -9, SIGSTOP, a late commit, a poison record under load; writes RELIABILITY.md
	@$(SERVICES) start
	@eval "$$($(STACK) env)" && ./bin/orderschaos -suite full -out RELIABILITY.md -as "make chaos" $(CHAOS_FLAGS)

chaos-short: stack-up build ## the short fault suite (under 3 minutes) that ends make test; its report goes to .local/chaos/short.md
	@$(SERVICES) start
	@eval "$$($(STACK) env)" && ./bin/orderschaos -suite short -as "make chaos-short" $(CHAOS_FLAGS)

bench: stack-up ## benchmarks against baselines measured in the same run, written to BENCHMARKS.md
	@eval "$$($(STACK) env)" && $(GO) run ./cmd/ordersbench write && $(GO) run ./cmd/ordersbench relay && $(GO) run ./cmd/ordersbench search && $(GO) run ./cmd/ordersbench orders && $(GO) run ./cmd/ordersbench rebuild && $(GO) run ./cmd/ordersbench history && $(GO) run ./cmd/ordersbench scaleout
