# kpipe — Kubernetes operator that runs Kafka consumer pipelines and scales them on lag.

SHELL := /usr/bin/env bash -o pipefail
.SHELLFLAGS := -ec

BIN ?= $(CURDIR)/bin
IMG ?= ghcr.io/kpipe-io/kpipe:dev
CONTROLLER_TOOLS_VERSION ?= v0.23.0
CONTROLLER_GEN ?= $(BIN)/controller-gen-$(CONTROLLER_TOOLS_VERSION)
# golangci-lint v2 with the kube-api-linter module plugin linked in, built from
# hack/tools/golangci-lint (its go.mod and go.sum must pin the same two versions).
# kube-api-linter has no releases: its version is the pseudo-version of a commit.
GOLANGCI_LINT_VERSION ?= v2.15.0
KUBE_API_LINTER_VERSION ?= v0.0.0-20260716143926-092fe0c72997
GOLANGCI_LINT ?= $(BIN)/golangci-lint-$(GOLANGCI_LINT_VERSION)-kal-$(lastword $(subst -, ,$(KUBE_API_LINTER_VERSION)))
GOLANGCI_LINT_FLAGS ?=
GINKGO_FLAGS ?=
TEST_TIMEOUT ?= 25m
# Images written as tarballs by hack/tools/image (no Docker engine): `make image` writes the
# kpipe image ($(IMG)) to $(IMAGES)/kpipe.tar; the node suite adds Kafka, pause and CoreDNS.
IMAGES ?= $(BIN)/images
IMAGE_ARCH ?= $(shell go env GOARCH)
IMAGE_TOOL ?= $(BIN)/image-tool
LINUX_BIN := $(BIN)/linux-$(IMAGE_ARCH)
NODE_E2E_TIMEOUT ?= 20m

.PHONY: all
all: build

##@ General

.PHONY: help
help: ## Show the targets.
	@awk 'BEGIN {FS = ":.*##"} /^[a-zA-Z_-]+:.*?##/ { printf "  %-16s %s\n", $$1, $$2 } /^##@/ { printf "\n%s\n", substr($$0, 5) }' $(MAKEFILE_LIST)

##@ Development

.PHONY: generate
generate: $(CONTROLLER_GEN) ## Generate deepcopy code.
	$(CONTROLLER_GEN) object paths="./api/..."

.PHONY: manifests
manifests: $(CONTROLLER_GEN) ## Generate the CRD and RBAC under config/.
	$(CONTROLLER_GEN) rbac:roleName=kpipe-manager crd paths="./..." \
		output:crd:artifacts:config=config/crd/bases output:rbac:artifacts:config=config/rbac

# What charts/kpipe copies from config/ (test/chart fails when a copy is stale).
CHART_COPIES := config/crd/bases/kpipe.io_kafkapipelines.yaml:charts/kpipe/crds/kpipe.io_kafkapipelines.yaml \
	config/rbac/role.yaml:charts/kpipe/files/role.yaml \
	config/rbac/kafkapipeline_editor_role.yaml:charts/kpipe/files/kafkapipeline_editor_role.yaml \
	config/rbac/kafkapipeline_viewer_role.yaml:charts/kpipe/files/kafkapipeline_viewer_role.yaml \
	config/rbac/metrics_reader_role.yaml:charts/kpipe/files/metrics_reader_role.yaml

.PHONY: chart
chart: manifests ## Copy the generated CRD and RBAC from config/ into the Helm chart (charts/kpipe).
	@for c in $(CHART_COPIES); do cp $${c%%:*} $${c##*:}; done

.PHONY: fmt
fmt: ## gofmt the code.
	gofmt -w $$(git ls-files -co --exclude-standard -- '*.go')

.PHONY: vet
vet: ## go vet.
	go vet ./...

.PHONY: lint
lint: $(GOLANGCI_LINT) ## golangci-lint (.golangci.yml), then kube-api-linter on api/ (.golangci-kal.yml).
	@rc=0; \
	  echo "$(GOLANGCI_LINT) run $(GOLANGCI_LINT_FLAGS) ./..."; \
	  $(GOLANGCI_LINT) run $(GOLANGCI_LINT_FLAGS) ./... || rc=1; \
	  echo "$(GOLANGCI_LINT) run --config .golangci-kal.yml $(GOLANGCI_LINT_FLAGS) ./api/..."; \
	  $(GOLANGCI_LINT) run --config .golangci-kal.yml $(GOLANGCI_LINT_FLAGS) ./api/... || rc=1; \
	  exit $$rc

.PHONY: lint-fix
lint-fix: GOLANGCI_LINT_FLAGS += --fix
lint-fix: lint ## make lint, applying the fixes the linters offer.

.PHONY: golangci-lint
golangci-lint: $(GOLANGCI_LINT) ## Build the pinned golangci-lint (with kube-api-linter) into bin/.

.PHONY: verify
verify: ## Fail when gofmt, go vet, the generated files or the linters are not clean.
	@out=$$(gofmt -l $$(git ls-files -co --exclude-standard -- '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi
	go vet ./...
	hack/verify-generated.sh
	@$(MAKE) --no-print-directory lint

.PHONY: test
test: verify envtest image ## Verify, then run every test (unit, envtest, end-to-end, the image against the Dockerfile).
	KUBEBUILDER_ASSETS="$$(cat $(BIN)/.envtest-assets)" KPIPE_IMAGE_TAR=$(IMAGES)/kpipe.tar \
	  go test ./... -count=1 -timeout $(TEST_TIMEOUT) $(GINKGO_FLAGS)

.PHONY: test-node
test-node: ## The node suite on a real single-node cluster (Linux, root; its binaries are built once into bin/).
	@if [ "$$(uname -s)" != Linux ] || [ "$$(id -u)" != 0 ]; then \
	  echo "test-node: skipped: the node suite needs Linux and root (containerd, the kubelet, iptables)"; exit 0; fi; \
	$(MAKE) --no-print-directory envtest node-assets image node-images && \
	KPIPE_NODE_E2E_TIMEOUT=$(NODE_E2E_TIMEOUT) hack/node/e2e.sh $(GINKGO_FLAGS)

.PHONY: node-up
node-up: envtest node-assets image node-images ## Start the real single-node cluster with kpipe's images loaded (Linux, root).
	hack/node/cluster.sh up $(IMAGES)/kpipe.tar $(IMAGES)/kafka.tar

.PHONY: node-down
node-down: ## Stop the node cluster and remove what it left (processes, mounts, cni0, iptables chains).
	hack/node/cluster.sh down

.PHONY: node-assets
node-assets: ## Build (once) kubelet, kube-controller-manager, kube-scheduler, kube-proxy, CoreDNS, crictl and helm into bin/node.
	@hack/node/assets.sh >/dev/null

.PHONY: demo
demo: envtest build ## The whole loop on this machine: embedded Kafka, control plane, operator, replicas. DEMO_FLAGS=-keep-running keeps it up.
	KUBEBUILDER_ASSETS="$$(cat $(BIN)/.envtest-assets)" go run ./hack/demo -kpipe $(BIN)/kpipe $(DEMO_FLAGS)

.PHONY: bench
bench: envtest ## Benchmarks against the peers, one table of ratios (a few minutes; not part of test).
	@hack/bench.sh

.PHONY: envtest
envtest: ## Build (once) or find kube-apiserver, etcd and kubectl for envtest.
	@mkdir -p $(BIN)
	@hack/envtest-assets.sh > $(BIN)/.envtest-assets.tmp && mv $(BIN)/.envtest-assets.tmp $(BIN)/.envtest-assets
	@echo "envtest binaries: $$(cat $(BIN)/.envtest-assets)"

##@ Build

.PHONY: build
build: ## Build bin/kpipe.
	CGO_ENABLED=0 go build -trimpath -o $(BIN)/kpipe .

.PHONY: run
run: build ## Run the operator against the cluster of the current kubeconfig.
	$(BIN)/kpipe manager --leader-elect=false --pipeline-image $(IMG)

.PHONY: install
install: manifests ## Install the CRD into the cluster of the current kubeconfig.
	kubectl apply --server-side -k config/crd

.PHONY: docker-build
docker-build: ## Build the container image (needs a Docker engine; `make image` does not).
	docker build -t $(IMG) .

.PHONY: image
image: $(IMAGE_TOOL) ## Build the kpipe image without a Docker engine: $(IMAGES)/kpipe.tar (docker-archive, tagged $(IMG)).
	CGO_ENABLED=0 GOOS=linux GOARCH=$(IMAGE_ARCH) go build -trimpath -ldflags "-s -w" -o $(LINUX_BIN)/kpipe .
	$(IMAGE_TOOL) -tag $(IMG) -arch $(IMAGE_ARCH) -file $(LINUX_BIN)/kpipe:/kpipe \
	  -entrypoint /kpipe -cmd manager -out $(IMAGES)/kpipe.tar
	@echo "image $(IMG): $(IMAGES)/kpipe.tar"

.PHONY: node-images
node-images: $(IMAGE_TOOL) node-assets ## The node suite's other images: Kafka (kfake), pause, CoreDNS.
	CGO_ENABLED=0 GOOS=linux GOARCH=$(IMAGE_ARCH) go build -trimpath -ldflags "-s -w" -o $(LINUX_BIN)/kafka ./hack/node/kafka
	CGO_ENABLED=0 GOOS=linux GOARCH=$(IMAGE_ARCH) go build -trimpath -ldflags "-s -w" -o $(LINUX_BIN)/pause ./hack/node/pause
	$(IMAGE_TOOL) -tag kpipe.local/kafka:dev -arch $(IMAGE_ARCH) -file $(LINUX_BIN)/kafka:/kafka -entrypoint /kafka -out $(IMAGES)/kafka.tar
	$(IMAGE_TOOL) -tag kpipe.local/pause:dev -arch $(IMAGE_ARCH) -file $(LINUX_BIN)/pause:/pause -entrypoint /pause -out $(IMAGES)/pause.tar
	$(IMAGE_TOOL) -tag kpipe.local/coredns:dev -arch $(IMAGE_ARCH) -file "$$(hack/node/assets.sh)/coredns:/coredns" -entrypoint /coredns -out $(IMAGES)/coredns.tar

$(CONTROLLER_GEN):
	@mkdir -p $(BIN)
	GOBIN=$(BIN) go install sigs.k8s.io/controller-tools/cmd/controller-gen@$(CONTROLLER_TOOLS_VERSION)
	mv $(BIN)/controller-gen $(CONTROLLER_GEN)

# Rebuilt on every use: go build is a no-op when nothing changed.
.PHONY: $(IMAGE_TOOL)
$(IMAGE_TOOL):
	@mkdir -p $(BIN)
	go build -C hack/tools/image -trimpath -o $(IMAGE_TOOL) .

LINT_TOOLS := hack/tools/golangci-lint
$(GOLANGCI_LINT): $(LINT_TOOLS)/go.mod $(LINT_TOOLS)/go.sum $(LINT_TOOLS)/main.go
	@mkdir -p $(BIN)
	@for want in github.com/golangci/golangci-lint/v2@$(GOLANGCI_LINT_VERSION) sigs.k8s.io/kube-api-linter@$(KUBE_API_LINTER_VERSION); do \
	  have=$$(go list -C $(LINT_TOOLS) -m -f '{{.Path}}@{{.Version}}' $${want%@*}); \
	  if [ "$$have" != "$$want" ]; then echo "$(LINT_TOOLS)/go.mod requires $$have, the Makefile pins $$want" >&2; exit 1; fi; \
	done
	go build -C $(LINT_TOOLS) -trimpath -o $(GOLANGCI_LINT) .
