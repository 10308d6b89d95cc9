# Doorman: build, test, lint, demo. Targets that need the kernel (test, demo)
# must run as root; `make deps` installs the system packages they use.
GO      ?= go
BIN     := bin
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)
CMDS    := doormand knock doorman-sim doorman-conformance
export CGO_ENABLED ?= 0

.PHONY: all build test lint fuzz cross demo deps clean

all: build

build:
	@mkdir -p $(BIN)
	@for c in $(CMDS); do \
		if [ -d cmd/$$c ]; then $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/$$c ./cmd/$$c || exit 1; fi; \
	done

# The README's test command. Kernel tests (TestIntegration*) skip unless root.
# With the race detector when a C compiler is there (-race needs cgo), so
# every package with locks is checked. One package at a time (-p 1): the
# end-to-end tests judge timing (doors, timeouts) and must not compete for
# the two cores with each other; within a package, tests that only wait
# (the firewall's door tests, each in namespaces of its own) run 8 at once.
# The binaries are built once for every package's end-to-end tests.
RACE := $(if $(shell command -v gcc 2>/dev/null),-race,)
test: deps build
	CGO_ENABLED=$(if $(RACE),1,0) DOORMAN_BIN=$(CURDIR)/$(BIN) \
		$(GO) test $(RACE) -p 1 -parallel 8 -count=1 -timeout 30m ./...

STATICCHECK_VERSION ?= v0.8.2

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	@if ! command -v staticcheck >/dev/null && [ ! -x "$$($(GO) env GOPATH)/bin/staticcheck" ]; then \
		echo "installing staticcheck $(STATICCHECK_VERSION)"; \
		$(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) || exit 1; \
	fi
	PATH="$$PATH:$$($(GO) env GOPATH)/bin" staticcheck ./...

# Every fuzz target, briefly (FUZZTIME each). A count, not a duration: with
# a duration, Go 1.26's fuzz coordinator can fail a target with "context
# deadline exceeded" at the deadline (golang/go#75804, fixed in Go 1.27).
FUZZTIME ?= 100000x
fuzz:
	@for pkg in $$($(GO) list ./...); do \
		dir=$$($(GO) list -f '{{.Dir}}' $$pkg); \
		for f in $$(grep -ho '^func Fuzz[A-Za-z0-9_]*' $$dir/*_test.go 2>/dev/null | sed 's/func //'); do \
			echo "fuzz $$pkg $$f"; \
			out=$$($(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) -fuzzminimizetime 10x $$pkg 2>&1) || { echo "$$out"; exit 1; }; \
		done; \
	done

# The client must build for every platform users have.
cross:
	@for os in linux darwin windows freebsd; do \
		echo "GOOS=$$os go build ./cmd/knock"; GOOS=$$os $(GO) build -o /dev/null ./cmd/knock || exit 1; \
	done
	GOOS=darwin $(GO) build ./...

# The first thing a new user runs: the happy and replay scenarios in
# network namespaces, with transcripts. Needs root.
demo: deps build
	@if [ ! -x $(BIN)/doorman-sim ]; then echo "demo: doorman-sim is not built yet"; exit 1; fi
	$(BIN)/doorman-sim --bin $(BIN) run happy replay

# System packages the kernel tests and the demo use (Debian).
deps:
	@missing=""; \
	command -v nft >/dev/null || missing="$$missing nftables"; \
	command -v iptables >/dev/null || missing="$$missing iptables"; \
	command -v ip >/dev/null || missing="$$missing iproute2"; \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			echo "installing:$$missing"; \
			DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
			DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
		else echo "missing:$$missing (kernel tests will skip)"; fi; \
	fi

clean:
	rm -rf $(BIN)
