# tinkops build contract: `make run` and `make test` are the two commands a new
# user needs; everything else supports them.

GO        ?= go
BIN       := bin
CMDS      := $(notdir $(wildcard cmd/*))
PKGS      := ./...
# Each fuzz target runs for FUZZTIME under `make fuzz` (the suite runs only
# their seed corpora, testdata/fuzz included).
FUZZTIME  ?= 5m
FUZZ      := ./schema:FuzzLoad ./schema:FuzzRender ./api:FuzzRequestBodies
BENCHTIME ?= 1s

IMAGE     ?= tinkops:dev

.PHONY: all deps build run test bench fuzz lint clean image demo bootimage lab screenshots proto

all: build

# deps fetches every module the build and the tests need, once, at the start:
# vet, the tests and the binaries then need no network (a fresh CI machine
# would otherwise download in the middle of go vet).
deps:
	$(GO) mod download

build: deps
	@mkdir -p $(BIN)
	CGO_ENABLED=0 $(GO) build -trimpath -o $(BIN)/ $(addprefix ./cmd/,$(CMDS))

# run builds tink-server and starts it on the bundled example repository with
# the embedded store in ./tink-data: no other setup.
run: build
	$(BIN)/tink-server --repo examples/repo --data-dir ./tink-data

# demo shows the whole loop on this machine: a Git repository of its own, two
# IPMI BMC simulators, tink-server and two workers; it cleans up after itself.
# Needs git, ipmi_sim (openipmi) and ipmitool, as make test does.
demo: build
	BIN=$(CURDIR)/$(BIN) bash examples/demo/demo.sh

# bootimage builds tinkops's own boot image into $(BIN)/boot (vmlinuz-x86_64,
# initramfs-x86_64: serve it with tink-server --boot-dir $(BIN)/boot): Debian's
# kernel (apt-get download, cached in ~/.cache/tinkops), busybox-static, a
# static tink-worker and shell-script actions. See docs/provision.md.
bootimage:
	@mkdir -p $(BIN)
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags="-s -w" -o $(BIN)/ ./cmd/tink-worker
	bash examples/lab/bootimage/build.sh $(BIN)/boot $(BIN)/tink-worker

# lab provisions a QEMU virtual machine end to end (BMC, netboot, boot image,
# workflow, reboot into the written disk) and prints how long each step took.
# Needs qemu-system-x86 ipxe-qemu qemu-utils cpio busybox-static openipmi
# ipmitool git (.ci/run installs them); it is also part of make test.
lab:
	$(GO) test -count=1 -v -timeout 10m -run '^TestLab$$' ./examples/lab

test: lint
	$(GO) test -count=1 -timeout 15m $(PKGS)

# bench runs every Go benchmark once (benchmarks size their own work) and the
# schema.Load harness on a generated 20,100-object repository.
# The output is kept in $(BIN)/bench.out; benchtable then prints one table of
# every performance target, its figure in this run and whether it was met
# (BENCHMARKS.md explains each). The run fails only if a benchmark failed.
# -p 1: one package's benchmarks at a time. go test runs as many test
# binaries at once as there are cores, and a benchmark sharing the machine's
# two cores with another package's measures neither.
bench:
	@mkdir -p $(BIN)
	@bash -o pipefail -c "$(GO) test -p 1 -run '^$$' -bench . -benchtime $(BENCHTIME) -benchmem -timeout 60m $(PKGS) 2>&1 | tee $(BIN)/bench.out"; \
		status=$$?; $(GO) run ./benchtable $(BIN)/bench.out && exit $$status

# screenshots regenerates docs/ui/*.png: the dashboard's pages on the
# browser tests' fixture fleet, taken by headless Chromium (Debian's chromium).
screenshots:
	TINK_UI_SCREENSHOTS=$(CURDIR)/docs/ui $(GO) test -count=1 -run '^TestUIScreenshots$$' ./cmd/tink-server

fuzz:
	@set -e; for t in $(FUZZ); do \
		echo "fuzz $${t#*:} in $${t%%:*} for $(FUZZTIME)"; \
		$(GO) test -run '^$$' -fuzz "^$${t#*:}$$" -fuzztime $(FUZZTIME) "$${t%%:*}"; \
	done

lint: deps
	@out=$$(gofmt -l $$(find . -name '*.go' -not -path './.git/*')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)

# image builds the tinkops image without pulling anything: static binaries
# from the host into the Dockerfile's "local" stage (FROM scratch).
image:
	rm -rf .image && mkdir -p .image/bin .image/data
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags="-s -w" -o .image/bin/ $(addprefix ./cmd/,$(CMDS))
	cp /etc/ssl/certs/ca-certificates.crt .image/ 2>/dev/null || touch .image/ca-certificates.crt
	docker build --target local -t $(IMAGE) .

# proto regenerates the Go code of Tinkerbell's WorkflowService (committed)
# with pinned generators and Debian's protoc 3.21 (apt-get install
# protobuf-compiler libprotobuf-dev).
PROTOC_GEN_GO      := google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12
PROTOC_GEN_GO_GRPC := google.golang.org/grpc/cmd/protoc-gen-go-grpc@v1.6.2
PROTO_DIR          := api/tinkgrpc/tinkpb
# PROTO_OUT is where the code goes; a test generates it elsewhere to compare.
PROTO_OUT          ?= $(PROTO_DIR)
PROTO_BIN          ?= $(CURDIR)/$(BIN)/proto

proto:
	@mkdir -p $(PROTO_BIN)
	GOBIN=$(PROTO_BIN) $(GO) install $(PROTOC_GEN_GO)
	GOBIN=$(PROTO_BIN) $(GO) install $(PROTOC_GEN_GO_GRPC)
	protoc -I $(PROTO_DIR) -I /usr/include \
		--plugin=protoc-gen-go=$(PROTO_BIN)/protoc-gen-go --go_out=$(PROTO_OUT) --go_opt=paths=source_relative \
		--plugin=protoc-gen-go-grpc=$(PROTO_BIN)/protoc-gen-go-grpc --go-grpc_out=$(PROTO_OUT) --go-grpc_opt=paths=source_relative \
		$(PROTO_DIR)/workflow.proto

clean:
	rm -rf $(BIN) tink-data .image
