# Build and test bagpipe. `make test` is what CI runs (.ci/run): go vet, every
# test (including those needing root, daemons and network namespaces) and a
# short fuzzing smoke run of the BGP message decoder.

GO ?= go
export PATH := /usr/local/go/bin:$(PATH)

.PHONY: all build test fuzz-smoke unit vet fmt clean demo demo-check demo-down bench

all: build

## build: compile every command into bin/
build:
	mkdir -p bin
	$(GO) build -o bin/ ./cmd/...

## demo: build, bring up a multi-node lab on this machine, check it, stay up until Ctrl-C
demo: build
	./bin/bagpipe-demo

## demo-check: the same without waiting: exit non-zero if a check failed
demo-check: build
	./bin/bagpipe-demo --check

## demo-down: remove what a crashed demo left behind
demo-down: build
	./bin/bagpipe-demo down

## test: vet, run all tests, then the fuzz smoke run
test: unit fuzz-smoke

unit: vet
	$(GO) test -count=1 -timeout 25m ./...

## fuzz-smoke: fuzz the BGP message decoder for 30 s
fuzz-smoke:
	$(GO) test ./internal/codec -run '^$$' -fuzz FuzzDecode -fuzztime 30s

## vet: go vet every package
vet:
	$(GO) vet ./...

## fmt: gofmt every Go file in place
fmt:
	gofmt -w $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './.git/*')

## bench: run bagpipe-scale's standard scenarios (as root) and write BENCHMARKS.md
##   BENCH_DRIVER (linux), BENCH_DAEMON (our bagpipe-bgp), BENCH_LABEL, BENCH_DIR
##   (JSON results; every *.json there goes into the report, e.g. an upstream run)
BENCH_DRIVER ?= linux
BENCH_DAEMON ?= $(CURDIR)/bin/bagpipe-bgp --config-file {conf}
BENCH_LABEL ?= bagpipe (Go)
BENCH_DIR ?= /tmp/bagpipe-bench
BENCH_SCALE ?= ./bin/bagpipe-scale
BENCH_NOTE ?= Daemon built from commit $(shell git describe --always --dirty 2>/dev/null); \
  \`make bench\` = the commands below.
BENCH_FLAGS = --driver $(BENCH_DRIVER) --daemon '$(BENCH_DAEMON)' --label '$(BENCH_LABEL)'
bench: build
	mkdir -p $(BENCH_DIR)
	-$(BENCH_SCALE) idle $(BENCH_FLAGS) --json $(BENCH_DIR)/idle-$(BENCH_DRIVER).json
	-$(BENCH_SCALE) ingest $(BENCH_FLAGS) --routes 10000 --instances 10 --json $(BENCH_DIR)/ingest-10k-$(BENCH_DRIVER).json
	-$(BENCH_SCALE) ingest $(BENCH_FLAGS) --routes 100000 --instances 10 --json $(BENCH_DIR)/ingest-100k-$(BENCH_DRIVER).json
	-$(BENCH_SCALE) ingest $(BENCH_FLAGS) --routes 1000000 --instances 10 --json $(BENCH_DIR)/ingest-1M-$(BENCH_DRIVER).json
	-$(BENCH_SCALE) ingest $(BENCH_FLAGS) --family vpnv4 --routes 100000 --instances 10 --json $(BENCH_DIR)/ingest-vpnv4-100k-$(BENCH_DRIVER).json
	-$(BENCH_SCALE) attach $(BENCH_FLAGS) --ports 1000 --json $(BENCH_DIR)/attach-1000-$(BENCH_DRIVER).json
	-$(BENCH_SCALE) convergence $(BENCH_FLAGS) --samples 100 --json $(BENCH_DIR)/convergence-100-$(BENCH_DRIVER).json
	$(BENCH_SCALE) report --out BENCHMARKS.md --note "$(BENCH_NOTE)" $(BENCH_DIR)/*.json

## clean: remove build and test output
clean:
	rm -rf bin
	rm -f coverage.out coverage.html *.coverprofile
	find . -name '*.test' -type f -delete
