# restream-operator: the commands people and CI use. `make help` lists them.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=

.DEFAULT_GOAL := help
.PHONY: help venv lint crd deploy kind-up test test-unit cluster-build cluster-up cluster-down demo

help: ## list the targets
	@grep -hE '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-20s %s\n", $$1, $$2}'

$(PY): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	@touch $(PY)

venv: $(PY) console-assets ## create .venv with the package and its dev tools

# The console's third-party browser files: hls.js from npm (package-lock.json pins it),
# copied into the package, never committed. Without npm the console still runs, and its
# LiveStream page says the HLS preview is unavailable; in CI a missing npm fails.
VENDOR := operator/restream_operator/console/static/vendor
.PHONY: console-assets
console-assets: $(VENDOR)/hls.min.js ## the console's browser files from npm (hls.js)
$(VENDOR)/hls.min.js: package.json package-lock.json
	@command -v npm >/dev/null || { echo "make: no npm (bash hack/packages.sh assets): the console's HLS preview will be unavailable" >&2; [ -z "$$CI" ] || exit 1; exit 0; }
	npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
	mkdir -p $(VENDOR)
	cp node_modules/hls.js/dist/hls.min.js node_modules/hls.js/LICENSE $(VENDOR)/

lint: $(PY) lint-chart ## ruff, mypy --strict, and lint-chart
	$(VENV)/bin/ruff check operator tests hack bench
	$(VENV)/bin/ruff format --check operator tests hack bench
	$(VENV)/bin/mypy

# The Go tools (helm, helm-docs, actionlint) come from build.sh's cache, as in the tests.
.PHONY: lint-chart chart-docs
lint-chart: $(PY) ## helm lint --strict, the chart's README up to date, actionlint on .github/workflows
	@bin=$$(bash hack/localcluster/build.sh) && set -x && \
	  "$$bin/helm" lint --strict charts/restream-operator && \
	  "$$bin/helm" lint --strict charts/restream-operator --set watchNamespaces='{a,b}' \
	    --set 'imagePullSecrets[0].name=regcred' --set webhook.certManager.enabled=true \
	    --set console.enabled=true --set 'console.publicURLs={https://console.example.com}' && \
	  $(PY) hack/chart_docs.py "$$bin" --check && \
	  "$$bin/actionlint" -no-color .github/workflows/*.yml

chart-docs: $(PY) ## regenerate charts/restream-operator/README.md from values.yaml (helm-docs)
	$(PY) hack/chart_docs.py "$$(bash hack/localcluster/build.sh)"

# The chart renders its copy as a template (templates/crds.yaml), so that `helm upgrade`
# upgrades the CRD; a test fails when the copy differs.
crd: $(PY) ## regenerate crds/ (and the chart's copy, files/crds/) from the models
	$(VENV)/bin/restream-operator crd > crds/restream.dev_livestreams.yaml
	cp crds/restream.dev_livestreams.yaml charts/restream-operator/files/crds/

deploy: $(PY) cluster-build ## regenerate deploy/ (plain manifests) from the Helm chart
	$(PY) hack/deploy.py "$$(bash hack/localcluster/build.sh)/helm"

# preflight comes first: a machine that lacks nginx (or anything else a tier runs) is told
# at once, with the command that installs it, before minutes of building. Under
# RESTREAM_REQUIRE_TOOLS a test whose tool is missing fails; it is never skipped.
.PHONY: preflight
preflight: ## check that this machine has what `make test` runs (else: the command that installs it)
	@bash hack/preflight.sh

test: preflight $(PY) cluster-build console-assets ## every test tier: unit, cluster (real control plane), media, e2e; the cluster tier again on the oldest Kubernetes
	RESTREAM_REQUIRE_TOOLS=1 $(PY) -m pytest $(PYTEST_ARGS)
	@$(MAKE) --no-print-directory test-cluster-oldest

# The README claims the oldest minor in versions.env (KUBERNETES_OLDEST_VERSION): the
# cluster tier runs against that API server too (build.sh: RESTREAM_KUBERNETES=oldest).
.PHONY: test-cluster-oldest
test-cluster-oldest: $(PY) console-assets ## the cluster tier against the oldest Kubernetes the README claims
	@RESTREAM_KUBERNETES=oldest bash hack/localcluster/build.sh >/dev/null
	RESTREAM_KUBERNETES=oldest RESTREAM_REQUIRE_TOOLS=1 $(PY) -m pytest -m cluster tests/cluster_tests $(PYTEST_ARGS)

test-unit: $(PY) console-assets ## only the tests that need no external process
	$(PY) -m pytest -m 'not cluster and not media and not e2e' $(PYTEST_ARGS)

.PHONY: test-e2e
test-e2e: $(PY) cluster-build ## the node tier: a real kubelet + containerd node (root; see hack/localcluster/node.py)
	$(PY) -m pytest -m e2e $(PYTEST_ARGS)

cluster-build: ## build (or reuse from the cache) the pinned Kubernetes binaries (RESTREAM_KUBERNETES=oldest: the oldest claimed)
	@bash hack/localcluster/build.sh >/dev/null

NODE ?= off
cluster-up: $(PY) cluster-build ## start the local cluster and leave it running (NODE=auto|on: a real node too)
	@$(PY) -m hack.localcluster up --node $(NODE)

cluster-down: $(PY) ## stop what cluster-up or demo started: processes, the real node, files
	@$(PY) -m hack.localcluster down

kind-up: ## on a machine with Docker and kind: images, kind cluster, chart, example
	bash hack/kind-up.sh

demo: $(PY) cluster-build ## the main job: local cluster (real node if possible), operator, LiveStream
	@[ -f .cluster/state.json ] || { bash hack/packages.sh node || true; $(PY) -m hack.localcluster up --node auto; }
	@$(PY) -m hack.demo

.PHONY: publish
DURATION ?= 0
publish: $(PY) ## publish a test pattern to the demo's ingest (DURATION=0: until Ctrl-C)
	@$(PY) -m hack.demo publish $(DURATION)

.PHONY: screenshots
screenshots: $(PY) cluster-build ## the console's screenshots in docs/console/, made by its browser tests
	RESTREAM_SCREENSHOTS=docs/console $(PY) -m pytest -q tests/cluster_tests/test_console_accessibility.py tests/media/test_console_live.py

.PHONY: images
images: console-assets ## build, check and export both images on a private dockerd (FORCE=1 rebuilds)
	@bash hack/images/build.sh
