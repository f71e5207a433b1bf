# Build and test bagpipe. `make test` is what CI runs (.ci/run): go vet, every
# test (including those needing root, daemons and network namespaces) and a
# short fuzzing smoke run of the BGP message decoder.

GO ?= go
export PATH := /usr/local/go/bin:$(PATH)

.PHONY: all build test fuzz-smoke unit vet fmt clean demo demo-check demo-down

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

## clean: remove build and test output
clean:
	rm -rf bin
	rm -f coverage.out coverage.html *.coverprofile
	find . -name '*.test' -type f -delete
