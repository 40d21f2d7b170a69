# keel — see README.md.
GO        ?= go
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -s -w -X main.version=$(VERSION)
GOFLAGS   := -trimpath
export CGO_ENABLED ?= 0

.PHONY: all keel test bench vet fmt clean

all: keel

keel:
	$(GO) build $(GOFLAGS) -ldflags '$(LDFLAGS)' -o bin/keel ./cmd/keel

# Every test, including the ones that check images with the real tools
# (unsquashfs, mount). Nothing is skipped on a machine set up by .ci/run.
test:
	$(GO) vet ./...
	$(GO) test -p 1 -timeout 40m ./...

# Benchmarks: keel against the reference tools, side by side in one run.
bench: keel
	bench/squashfs.sh

fmt:
	gofmt -w $$(git ls-files '*.go')

clean:
	rm -rf bin out
