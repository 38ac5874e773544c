# docker-trustcache — build, install, test.
SHELL := /bin/bash
#
#   make demo      set up a local Docker engine, BuildKit, registry and cosign (e2e/setup.sh:
#                  e2e/install.sh, then e2e/start.sh),
#                  install the plugin, and run the headline scenario
#   make test      unit tests (race detector), release-check, then the e2e suite against real servers
#   make install   build and install the plugin into $DOCKER_CONFIG/cli-plugins (default ~/.docker)
#   make release   static binaries for every platform in PLATFORMS, and their checksums, in dist/
#   make image     the gateway image (IMAGE) for `docker trustcache serve` and `builder create`

GO            ?= go
VERSION       ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS       := -s -w -X main.version=$(VERSION)
# The plugin is built static: no dynamic loader at start-up, which every docker CLI command that runs
# it pays (about 3 ms of its metadata command here, 5 ms of a verification: docs/performance.md).
# Only for the binary: the race detector needs cgo.
STATIC        := CGO_ENABLED=0
# grpcnotrace: gRPC (the gateway's) without golang.org/x/net/trace and html/template, whose package
# initialisation every command paid (docs/performance.md). The gateway never enables gRPC tracing.
TAGS          := grpcnotrace
BIN           := bin/docker-trustcache
DOCKER_CONFIG ?= $(HOME)/.docker
E2E_DIR       ?= $(or $(TRUSTCACHE_E2E_DIR),/tmp/trustcache-e2e)
E2E_TIMEOUT   ?= 60m
FUZZTIME      ?= 30s
DIST          := dist
PLATFORMS     := linux/amd64 linux/arm64 darwin/amd64 darwin/arm64 windows/amd64 windows/arm64
# The version LDFLAGS stamps: VERSION itself asks git again on every use.
STAMPED       := $(patsubst main.version=%,%,$(filter main.version=%,$(LDFLAGS)))

IMAGE         ?= docker-trustcache:$(VERSION)
IMAGE_LATEST  ?= docker-trustcache:latest
DOCKER        ?= docker

.PHONY: image all build build-kms install uninstall release release-check test unit unit-tests unit-hermetic vet shellcheck e2e e2e-setup e2e-teardown demo bench fuzz clean

all: build

build:
	$(STATIC) $(GO) build -tags '$(TAGS)' -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/docker-trustcache

# The plugin with sigstore's cloud KMS providers (awskms://, gcpkms://, azurekms://, hashivault://
# keys): a larger binary with a slower start (docs/performance.md), so not the default.
build-kms:
	$(STATIC) $(GO) build -tags 'kms $(TAGS)' -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/docker-trustcache

install: build
	mkdir -p $(DOCKER_CONFIG)/cli-plugins
	install -m 0755 $(BIN) $(DOCKER_CONFIG)/cli-plugins/docker-trustcache

uninstall:
	rm -f $(DOCKER_CONFIG)/cli-plugins/docker-trustcache

# The gateway image: the static plugin binary and nothing else (no shell, no package manager), run
# as the unprivileged user 65532, entrypoint `docker-trustcache trustcache` (so `docker run IMAGE
# serve …`), DOCKER_CONFIG (registry credentials, the ledger) at /var/lib/trustcache. Built offline
# with `docker import` of a rootfs assembled here: no base image to pull. The host's CA bundle is
# copied in so the gateway can reach registries over TLS. Tagged IMAGE and IMAGE_LATEST (the default
# --gateway-image of builder create; IMAGE_LATEST= to skip).
# docs/builder.md and docs/serve.md show how it is run.
image: build
	@set -e; tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; root=$$tmp/rootfs; \
	mkdir -p $$root/usr/local/bin $$root/etc/ssl/certs $$root/tmp $$root/run/trustcache $$root/var/lib/trustcache; \
	chmod 1777 $$root/tmp $$root/run/trustcache $$root/var/lib/trustcache; \
	install -m 0755 $(BIN) $$root/usr/local/bin/docker-trustcache; \
	if [ -f /etc/ssl/certs/ca-certificates.crt ]; then cp /etc/ssl/certs/ca-certificates.crt $$root/etc/ssl/certs/; fi; \
	printf 'root:x:0:0:root:/:/nonexistent\nnonroot:x:65532:65532:nonroot:/nonexistent:/nonexistent\n' >$$root/etc/passwd; \
	printf 'root:x:0:\nnonroot:x:65532:\n' >$$root/etc/group; \
	id=$$(tar -C $$root --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -c . | $(DOCKER) import \
	  --change 'USER 65532:65532' \
	  --change 'ENV DOCKER_CONFIG=/var/lib/trustcache' \
	  --change 'ENTRYPOINT ["/usr/local/bin/docker-trustcache", "trustcache"]' \
	  --change 'CMD ["serve", "--help"]' \
	  - $(IMAGE)); \
	if [ -n "$(IMAGE_LATEST)" ]; then $(DOCKER) tag $$id $(IMAGE_LATEST); fi; \
	echo "$(IMAGE) $(IMAGE_LATEST) $$id"

# Release files, named as compose names its own (one flat file per platform, the same name in every
# release); installing is renaming to docker-trustcache[.exe] (README, Install):
#   dist/docker-trustcache-<os>-<arch>[.exe]   dist/checksums.txt (sha256sum format)
release:
	rm -rf $(DIST) && mkdir -p $(DIST)
	@set -e; for p in $(PLATFORMS); do \
	  os=$${p%/*}; arch=$${p#*/}; out=$(DIST)/docker-trustcache-$$os-$$arch; \
	  if [ $$os = windows ]; then out=$$out.exe; fi; \
	  echo "$(STATIC) GOOS=$$os GOARCH=$$arch $(GO) build -tags '$(TAGS)' -trimpath -ldflags '$(LDFLAGS)' -o $$out ./cmd/docker-trustcache"; \
	  $(STATIC) GOOS=$$os GOARCH=$$arch $(GO) build -tags '$(TAGS)' -trimpath -ldflags '$(LDFLAGS)' -o $$out ./cmd/docker-trustcache; \
	done
	cd $(DIST) && sha256sum docker-trustcache-* > checksums.txt

# Builds the release and checks it as a user would receive it: the checksums verify, every binary is
# a static build for its platform stamped with the version, and the host's one reports that version
# (cmd/docker-trustcache/release_test.go).
release-check: release
	cd $(DIST) && sha256sum --strict -c checksums.txt
	$(GO) test -count=1 -run '^TestRelease$$' ./cmd/docker-trustcache \
	  -args -dist '$(abspath $(DIST))' -platforms '$(PLATFORMS)' -version '$(STAMPED)'

# The whole suite: what CI runs.
test: unit release-check e2e

vet: shellcheck
	@unformatted=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$unformatted" ]; then echo "gofmt needed:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...
	$(GO) vet -tags e2e ./...
	$(GO) vet -tags kms ./keys

# The e2e and CI scripts. shellcheck comes from Debian's packages (e2e/install.sh --apt installs it).
shellcheck:
	@command -v shellcheck >/dev/null || bash e2e/install.sh --apt
	shellcheck -x e2e/*.sh action.sh .ci/run

# Unit tests, race detector on; fuzz seed corpora run as ordinary tests.
unit: vet unit-tests

unit-tests:
	$(GO) test -race -count=1 ./...
	$(GO) test -tags kms -count=1 -run 'KMS|LoadSigner' ./keys

# The unit tests again as a developer runs them after `make demo`: the e2e services up (dockerd,
# buildkitd, the registry), their env sourced into the shell, the plugin installed. Unit tests are
# hermetic: what runs on the machine must not change their result (.ci/run runs this after make test).
unit-hermetic: install
	. $(E2E_DIR)/env && $(GO) test -count=1 ./...

e2e-setup:
	bash e2e/setup.sh

e2e-teardown:
	bash e2e/teardown.sh

e2e: e2e-setup
	. $(E2E_DIR)/env && $(GO) test -tags e2e -count=1 -timeout $(E2E_TIMEOUT) -v ./e2e/... 2>&1 | tee $(E2E_DIR)/e2e-test.log; exit $${PIPESTATUS[0]}

demo: e2e-setup install
	. $(E2E_DIR)/env && bash e2e/demo.sh

# Go benchmarks (request counts, cold vs warm), then the whole-process table against cosign and
# plain buildx (e2e/bench.sh; needs the e2e services).
bench: e2e-setup
	$(GO) test -run '^$$' -bench . -benchmem ./verify/ ./internal/...
	. $(E2E_DIR)/env && bash e2e/bench.sh

# Each native fuzzer for FUZZTIME.
fuzz:
	@set -e; for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
	    echo "== $$pkg $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg; \
	  done; done

clean:
	rm -rf bin $(DIST)
