# keel — see README.md.
GO        ?= go
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -s -w -X main.version=$(VERSION)
GOFLAGS   := -trimpath
# keel, keel-init and keelctl are all static: keel-init runs as /init with
# nothing else in the initrd.
export CGO_ENABLED := 0
KEEL_CACHE ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/keel
export KEEL_CACHE

PREFIX    ?= /usr/local

.PHONY: all keel keel-init keelctl install test fuzz reliability bench example fmt clean

all: keel

keel-init:
	$(GO) build $(GOFLAGS) -ldflags '$(LDFLAGS)' -o bin/keel-init ./cmd/keel-init

keelctl:
	$(GO) build $(GOFLAGS) -ldflags '$(LDFLAGS)' -o bin/keelctl ./cmd/keelctl

# keel embeds keel-init and keelctl, for each architecture it builds images
# for (x86_64: no suffix; aarch64: -arm64), so `keel build` needs nothing
# else installed.
keel: keel-init keelctl
	GOARCH=amd64 $(GO) build $(GOFLAGS) -ldflags '$(LDFLAGS)' -o cmd/keel/assets/keel-init ./cmd/keel-init
	GOARCH=amd64 $(GO) build $(GOFLAGS) -ldflags '$(LDFLAGS)' -o cmd/keel/assets/keelctl ./cmd/keelctl
	GOARCH=arm64 $(GO) build $(GOFLAGS) -ldflags '$(LDFLAGS)' -o cmd/keel/assets/keel-init-arm64 ./cmd/keel-init
	GOARCH=arm64 $(GO) build $(GOFLAGS) -ldflags '$(LDFLAGS)' -o cmd/keel/assets/keelctl-arm64 ./cmd/keelctl
	$(GO) build $(GOFLAGS) -ldflags '$(LDFLAGS)' -o bin/keel ./cmd/keel

# keel is one file: keel-init and keelctl are embedded in it.
install: keel
	install -D -m 0755 bin/keel $(DESTDIR)$(PREFIX)/bin/keel

# Every test, including those that check images with the real tools
# (unsquashfs, fsck.fat, sgdisk, e2fsck, cpio) and boot them in QEMU.
# Nothing is skipped on a machine set up by .ci/run. The packages' own
# tests first, two packages at a time; then the QEMU tests alone, which
# run two VMs at a time themselves (TCG takes a core each). Then every
# fuzz target for 3 s from its seeds (about 2 minutes in all).
test: keel
	$(GO) vet ./...
	KEEL_INIT=$(CURDIR)/bin/keel-init $(GO) test -p 2 -timeout 30m $$($(GO) list ./... | grep -v /qemu-tests$$)
	KEEL_INIT=$(CURDIR)/bin/keel-init $(GO) test -timeout 60m ./qemu-tests/
	FUZZTIME=3s FUZZCACHE=fresh GO=$(GO) bench/fuzz.sh

# Every fuzz target, one after the other, for FUZZTIME each (default 60s),
# then a table of executions and crashers (bench/fuzz.sh); the inputs
# found interesting stay in Go's cache and seed the next run.
fuzz:
	FUZZTIME=$(or $(FUZZTIME),60s) GO=$(GO) bench/fuzz.sh

# The example image: profiles/examples/busybox.yaml, its Debian kernel and
# busybox downloaded by keel into the cache ($(KEEL_CACHE)).
example: keel
	bin/keel build profiles/examples/busybox.yaml -o out/busybox.img
	@echo "boot it with: bin/keel run out/busybox.img   (Ctrl-A X quits)"

# The power-cut test with every single-sector fault at every cut point,
# then the VM-kill test at full length: QEMU SIGKILLed at 100 random moments
# of an on-device keelctl install, each followed by a boot that must reach
# "keel: ready" (make test runs 10; each kill and boot takes about half a
# minute under TCG). KEEL_KILLS=N sets the count, KEEL_KILL_SEED=N replays
# a run's delays.
reliability: keel
	$(GO) test -count=1 -run 'TestPowerCut$$' -v ./image/install/ -args -cutmatrix full
	KEEL_INIT=$(CURDIR)/bin/keel-init KEEL_KILLS=$(or $(KEEL_KILLS),100) $(GO) test -count=1 -timeout 3h -run '^TestKill$$' -v ./qemu-tests/

# Benchmarks: keel against the reference tools, side by side in one run.
bench: keel
	bench/squashfs.sh
	bench/build.sh
	bench/debian.sh
	bench/verity.sh
	bench/boot.sh
	bench/delta.sh
	$(GO) test -run '^$$' -bench Update -benchtime 3x ./cmd/keelctl/
	$(GO) test -run '^$$' -bench InstallSlot -benchtime 3x ./image/install/

fmt:
	gofmt -w $$(git ls-files '*.go')

clean:
	rm -rf bin out cmd/keel/assets/keel-init cmd/keel/assets/keelctl cmd/keel/assets/keel-init-arm64 cmd/keel/assets/keelctl-arm64
