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

.PHONY: all keel keel-init keelctl install test bench example fmt clean

all: keel

keel-init:
	$(GO) build $(GOFLAGS) -ldflags '$(LDFLAGS)' -o bin/keel-init ./cmd/keel-init

keelctl:
	$(GO) build $(GOFLAGS) -ldflags '$(LDFLAGS)' -o bin/keelctl ./cmd/keelctl

# keel embeds keel-init and keelctl, so `keel build` needs nothing else installed.
keel: keel-init keelctl
	cp bin/keel-init cmd/keel/assets/keel-init
	cp bin/keelctl cmd/keel/assets/keelctl
	$(GO) build $(GOFLAGS) -ldflags '$(LDFLAGS)' -o bin/keel ./cmd/keel

# keel is one file: keel-init and keelctl are embedded in it.
install: keel
	install -D -m 0755 bin/keel $(DESTDIR)$(PREFIX)/bin/keel

# Every test, including those that check images with the real tools
# (unsquashfs, fsck.fat, sgdisk, e2fsck, cpio) and boot them in QEMU.
# Nothing is skipped on a machine set up by .ci/run.
test: keel
	$(GO) vet ./...
	KEEL_INIT=$(CURDIR)/bin/keel-init $(GO) test -p 1 -timeout 40m ./...

# The example image: profiles/examples/busybox.yaml, its Debian kernel and
# busybox downloaded by keel into the cache ($(KEEL_CACHE)).
example: keel
	bin/keel build profiles/examples/busybox.yaml -o out/busybox.img
	@echo "boot it with: bin/keel run out/busybox.img   (Ctrl-A X quits)"

# Benchmarks: keel against the reference tools, side by side in one run.
bench: keel
	bench/squashfs.sh
	bench/build.sh
	bench/debian.sh
	$(GO) test -run '^$$' -bench InstallSlot -benchtime 3x ./image/install/

fmt:
	gofmt -w $$(git ls-files '*.go')

clean:
	rm -rf bin out cmd/keel/assets/keel-init cmd/keel/assets/keelctl
