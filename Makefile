# Doorman: build, test, lint, demo, install, package. Targets that need the
# kernel (test, demo, deb-test) must run as root; `make deps` installs the
# system packages they use.
GO      ?= go
BIN     := bin
CMDS    := doormand knock doorman-sim doorman-conformance
export CGO_ENABLED ?= 0

# version/VERSION holds the release number. A build of the tag v<release>
# is that release; any other build is a pre-release of it that names its
# commit, such as 1.0.0-dev+01534cf.dirty. Right after tagging a release,
# raise version/VERSION to the next one.
RELEASE  := $(shell cat version/VERSION)
DESCRIBE := $(shell git describe --tags --always --dirty --match 'v[0-9]*' 2>/dev/null)
VERSION  ?= $(if $(filter v$(RELEASE),$(DESCRIBE)),$(RELEASE),$(RELEASE)-dev$(if $(DESCRIBE),+$(subst -,.,$(DESCRIBE))))
LDFLAGS  := -s -w -X github.com/doorman-project/doorman/version.stamp=$(VERSION)

.PHONY: all print-version build test lint fuzz cross demo sim-quick deps clean man install uninstall install-test deb deb-test

all: build

# The version make stamps into the programs.
print-version:
	@echo $(VERSION)

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
	$(GO) vet ./... ./conformance/testdata/exampled ./conformance/testdata/mutants/mutantd
	@if ! command -v staticcheck >/dev/null && [ ! -x "$$($(GO) env GOPATH)/bin/staticcheck" ]; then \
		echo "installing staticcheck $(STATICCHECK_VERSION)"; \
		$(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) || exit 1; \
	fi
	PATH="$$PATH:$$($(GO) env GOPATH)/bin" staticcheck ./... ./conformance/testdata/exampled ./conformance/testdata/mutants/mutantd

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
	GOOS=darwin $(GO) vet ./...

# The first thing a new user runs: the happy and replay scenarios in
# network namespaces, with transcripts. Needs root.
demo: deps build
	@if [ ! -x $(BIN)/doorman-sim ]; then echo "demo: doorman-sim is not built yet"; exit 1; fi
	$(BIN)/doorman-sim --bin $(BIN) run happy replay

# What CI runs with doorman-sim (.github/workflows/sim.yml): the quick
# scenarios, under a minute, with JUnit and JSON results in $(BIN); the
# artifacts of failed scenarios stay in ./doorman-sim-artifacts. Needs root.
sim-quick: deps build
	$(BIN)/doorman-sim --bin $(BIN) run --tag quick --junit $(BIN)/sim-junit.xml --json $(BIN)/sim-results.json

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

# Manual pages: roff from the markdown in docs/ (NAME.SECTION.md), made by
# go-md2man, a tool of this module (go.mod), into $(BIN)/man.
MAN_PAGES := $(patsubst docs/%.md,%,$(wildcard docs/*.[1-8].md))
MAN_DATE  := $(shell git log -1 --format=%cs 2>/dev/null)
man:
	@mkdir -p $(BIN)/man
	@for p in $(MAN_PAGES); do \
		sed -e 's/@VERSION@/$(VERSION)/g' -e 's/@DATE@/$(MAN_DATE)/g' docs/$$p.md | $(GO) tool go-md2man >$(BIN)/man/$$p.tmp && \
		mv $(BIN)/man/$$p.tmp $(BIN)/man/$$p || exit 1; \
	done

# make install [DESTDIR=...] [PREFIX=/usr/local]: doormand, the client as
# doorman-knock (Debian's knockd owns /usr/bin/knock), the 0.81 firewall
# scripts, manual pages, the systemd unit with these paths, documentation
# and examples, and doormand.cf and the guest list in CONFDIR unless they
# exist. PREFIX=/usr/local keeps CONFDIR at doormand's built-in default,
# /usr/local/etc/doormand/doormand.cf.
PREFIX     ?= /usr/local
BINDIR     ?= $(PREFIX)/bin
SBINDIR    ?= $(PREFIX)/sbin
SYSCONFDIR ?= $(if $(filter /usr,$(PREFIX)),/etc,$(PREFIX)/etc)
CONFDIR    ?= $(SYSCONFDIR)/doormand
LIBDIR     ?= $(PREFIX)/lib/doorman
UNITDIR    ?= $(PREFIX)/lib/systemd/system
MANDIR     ?= $(PREFIX)/share/man
DOCDIR     ?= $(PREFIX)/share/doc/doorman
# logrotate reads /etc/logrotate.d only: elsewhere the file is an example.
LOGROTATEDIR ?= $(if $(filter /etc,$(SYSCONFDIR)),/etc/logrotate.d,)
INSTALL    ?= install

# The paths written in packaging/doormand.service and the shipped
# doormand.cf, and what install writes instead.
UNIT_SUBST := /usr/local/sbin/doormand=$(SBINDIR)/doormand \
	/usr/local/etc/doormand/doormand.cf=$(CONFDIR)/doormand.cf \
	/usr/share/doc/doorman/=$(DOCDIR)/
CF_SUBST   := /etc/doorman/guestlist=$(CONFDIR)/guestlist /usr/lib/doorman/=$(LIBDIR)/
# subst FILE PAIRS... > OUT: replace each FROM=TO, failing if FROM is missing.
SUBST := packaging/subst

install: man
	@$(MAKE) --no-print-directory build CMDS='doormand knock' VERSION='$(VERSION)'
	@d='$(DESTDIR)'; \
	$(INSTALL) -d $$d$(SBINDIR) $$d$(BINDIR) $$d$(LIBDIR) $$d$(UNITDIR) $$d$(DOCDIR)/examples \
		$$d$(MANDIR)/man1 $$d$(MANDIR)/man5 $$d$(MANDIR)/man8 $$d$(CONFDIR) && \
	$(INSTALL) -m 755 $(BIN)/doormand $$d$(SBINDIR)/doormand && \
	$(INSTALL) -m 755 $(BIN)/knock $$d$(BINDIR)/doorman-knock && \
	$(INSTALL) -m 750 daemon/firewall/scripts/iptables-add daemon/firewall/scripts/iptables-del $$d$(LIBDIR)/ && \
	for p in $(MAN_PAGES); do $(INSTALL) -m 644 $(BIN)/man/$$p $$d$(MANDIR)/man$${p##*.}/$$p || exit 1; done && \
	$(SUBST) packaging/doormand.service $(UNIT_SUBST) >$(BIN)/doormand.service && \
	$(INSTALL) -m 644 $(BIN)/doormand.service $$d$(UNITDIR)/doormand.service && \
	$(SUBST) packaging/examples/doormand.cf $(CF_SUBST) >$(BIN)/doormand.cf && \
	$(INSTALL) -m 644 README.md LICENSE $$d$(DOCDIR)/ && \
	$(INSTALL) -m 644 $(BIN)/doormand.cf packaging/examples/guestlist packaging/examples/knockcf $$d$(DOCDIR)/examples/ && \
	$(INSTALL) -m 644 packaging/doorman.logrotate $$d$(DOCDIR)/examples/logrotate && \
	if [ -n '$(LOGROTATEDIR)' ]; then $(INSTALL) -d $$d$(LOGROTATEDIR) && \
		$(INSTALL) -m 644 packaging/doorman.logrotate $$d$(LOGROTATEDIR)/doorman; fi && \
	if [ -e $$d$(CONFDIR)/doormand.cf ]; then echo "keeping $$d$(CONFDIR)/doormand.cf"; \
	else $(INSTALL) -m 644 $(BIN)/doormand.cf $$d$(CONFDIR)/doormand.cf; fi && \
	if [ -e $$d$(CONFDIR)/guestlist ]; then echo "keeping $$d$(CONFDIR)/guestlist"; \
	else $(INSTALL) -m 600 packaging/examples/guestlist $$d$(CONFDIR)/guestlist; fi
	@echo "installed doorman $(VERSION) under $(DESTDIR)$(PREFIX); configure $(CONFDIR)/doormand.cf"

# Removes what install wrote except the configuration in CONFDIR.
uninstall:
	rm -f $(DESTDIR)$(SBINDIR)/doormand $(DESTDIR)$(BINDIR)/doorman-knock \
		$(DESTDIR)$(LIBDIR)/iptables-add $(DESTDIR)$(LIBDIR)/iptables-del \
		$(DESTDIR)$(UNITDIR)/doormand.service \
		$(if $(LOGROTATEDIR),$(DESTDIR)$(LOGROTATEDIR)/doorman) \
		$(foreach p,$(MAN_PAGES),$(DESTDIR)$(MANDIR)/man$(subst .,,$(suffix $(p)))/$(p))
	rm -rf $(DESTDIR)$(DOCDIR)
	-rmdir $(DESTDIR)$(LIBDIR)

# Installs into a scratch DESTDIR and checks what was written.
install-test:
	packaging/install-test

# The Debian package, built with dpkg-deb from a make install tree, for the
# architecture Go builds for (GOARCH=arm64 make deb cross-builds).
DEB_ARCH    := $(shell $(GO) env GOARCH | sed -e 's/^386$$/i386/' -e 's/^arm$$/armhf/' -e 's/^ppc64le$$/ppc64el/')
# A semantic pre-release (1.0.0-dev+...) sorts before its release in
# Debian's order only with a tilde: 1.0.0~dev+...-1.
DEB_VERSION  = $(shell echo '$(VERSION)' | sed 's/-/~/')-1
DEB          = $(BIN)/doorman_$(DEB_VERSION)_$(DEB_ARCH).deb
deb:
	rm -rf $(BIN)/deb
	$(MAKE) --no-print-directory install VERSION='$(VERSION)' DESTDIR='$(CURDIR)/$(BIN)/deb' \
		PREFIX=/usr CONFDIR=/etc/doorman LIBDIR=/usr/lib/doorman UNITDIR=/lib/systemd/system
	packaging/deb/build $(BIN)/deb '$(DEB_VERSION)' $(DEB_ARCH) $(DEB)
	@echo $(DEB)

# Installs the package on this machine and runs it in network namespaces
# of its own: install, knock, remove, purge (packaging/deb-test). Needs root;
# refuses to run where a doorman package is installed already.
deb-test: deps deb
	packaging/deb-test $(DEB)

clean:
	rm -rf $(BIN)
