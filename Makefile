# The single source of commands: README, .ci/run and developers all call these targets.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.DEFAULT_GOAL := help

.PHONY: help
help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $(STAMP)

.PHONY: install
install: $(STAMP) ## create the virtualenv and install the package with test extras

.PHONY: kafka-jars
kafka-jars: $(STAMP) ## fetch the Apache Kafka broker jars from Maven Central (cached)
	$(BIN)/python -c 'from wecom_stream.localkafka import ensure_distribution; print(ensure_distribution())'

.PHONY: run
run: kafka-jars ## start the local Kafka if needed, create topics, run ingress + processors (open auth unless WECOM_STREAM_AUTH says otherwise)
	WECOM_STREAM_AUTH=$${WECOM_STREAM_AUTH:-open} $(BIN)/wecom-stream run

.PHONY: lint
lint: $(STAMP) ## ruff and mypy
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

.PHONY: schema-registry
schema-registry: $(STAMP) ## fetch Apicurio Registry 3.0.9 from Maven Central for the contract tests (~109 MB, cached)
	$(BIN)/python -c 'from tests.support.schema_registry import ensure_apicurio; print(ensure_apicurio())'

.PHONY: asyncapi-parser
asyncapi-parser: $(STAMP) ## npm ci @asyncapi/parser into tests/asyncapi/node_modules (again when its lock file changes)
	$(BIN)/python -c 'from tests.support.npm import ASYNCAPI_PARSER, node_script; print(node_script(ASYNCAPI_PARSER, "check.mjs", install=True) or "Node and npm are needed")'

.PHONY: test
test: lint deploy-check kafka-jars schema-registry asyncapi-parser toxiproxy ## lint, type-check, deploy manifests checked offline, then the whole test suite against a real Kafka and a real schema registry
	$(BIN)/pytest $(PYTEST_ARGS)

.PHONY: test-cluster
test-cluster: kafka-jars ## a local 3-node cluster under faults: leader SIGKILL, rolling restart, scaling, processor SIGKILL (~15 min)
	$(BIN)/pytest tests/cluster -s -p no:cacheprovider $(PYTEST_ARGS)

.PHONY: toxiproxy
toxiproxy: $(STAMP) ## build once into ~/.cache/wecom-stream/tools: the Toxiproxy server v2.12.0 (~1 min cold; needs Go)
	$(BIN)/python -c 'from tests.support.toxiproxy import toxiproxy_binary; print(toxiproxy_binary(install=True))'

# The logs of every process of these runs stay in their own directory (pytest's default one
# is pruned by any other pytest session of the same user).
FAULTS_TMP ?= /tmp/wecom-stream-test-faults
SOAK_TMP ?= /tmp/wecom-stream-soak
SOAK_MINUTES ?= 30

.PHONY: test-faults
test-faults: kafka-jars toxiproxy ## Toxiproxy on every path to Kafka under load: latency, black hole, resets, slow link, proxy down (one node); a leader, a follower cut off from its peers (3 nodes) (~15 min; logs in FAULTS_TMP)
	$(BIN)/pytest tests/faults -m 'not soak' -s -p no:cacheprovider --basetemp=$(FAULTS_TMP) $(PYTEST_ARGS)

.PHONY: soak
soak: kafka-jars toxiproxy ## SOAK_MINUTES (30) at 150 callbacks/s, a fault every few minutes: drift, disk, lag (bench/results/soak.json, docs/img/soak.png; logs in SOAK_TMP)
	WECOM_STREAM_SOAK_MINUTES=$(SOAK_MINUTES) $(BIN)/pytest tests/faults/test_soak.py -m soak -s -p no:cacheprovider --basetemp=$(SOAK_TMP) $(PYTEST_ARGS); \
	status=$$?; $(BIN)/pip install -q '.[bench]' && $(BIN)/python -m bench.soak_plot; exit $$status

.PHONY: k8s-tools
k8s-tools: ## build once into ~/.cache/wecom-stream/k8s-tools: Kubernetes v1.37.2 control plane + kubectl, etcd v3.7.3, kwok v0.8.0, kustomize v5.8.2 (~15 min cold)
	bash deploy/k8s/tools/build.sh

.PHONY: promtool
promtool: $(STAMP) ## build once into ~/.cache/wecom-stream/tools: promtool v0.316.0 (~3-8 min cold; make deploy-check builds it too when Go is on PATH)
	$(BIN)/python -c 'from tests.deploy.tools import promtool; print(promtool(install=True))'

.PHONY: test-k8s
test-k8s: k8s-tools $(STAMP) ## base + every overlay on a local API server with kwok nodes: server dry run, apply, rollouts, a drain held by the PDBs (~1 min)
	$(BIN)/pytest tests/k8s -p no:cacheprovider $(PYTEST_ARGS)

# The image: docker when its daemon answers, else podman (IMAGE_ENGINE=... to choose).
IMAGE ?= wecom-stream:dev
BASE_IMAGE ?=
IMAGE_BUILD_FLAGS ?=
IMAGE_ENGINE ?= $(shell if docker info >/dev/null 2>&1; then echo docker; \
	elif command -v podman >/dev/null; then echo podman; fi)
HOST_CA_BUNDLE := /etc/ssl/certs/ca-certificates.crt
# podman mounts the host's CA bundle into the build's RUN steps, so that pip trusts what the
# host trusts (a proxy's CA); a build-time mount, never part of a layer.
PODMAN_BUILD_FLAGS = $(if $(wildcard $(HOST_CA_BUNDLE)),-v $(HOST_CA_BUNDLE):$(HOST_CA_BUNDLE):ro)

.PHONY: image
image: ## build deploy/docker/Dockerfile as IMAGE (wecom-stream:dev) with docker, else podman; BASE_IMAGE=... builds on another base
	@test -n "$(IMAGE_ENGINE)" || { echo "make image: neither docker (with a running daemon) nor podman found" >&2; exit 1; }
	$(IMAGE_ENGINE) build -f deploy/docker/Dockerfile -t $(IMAGE) \
		$(if $(BASE_IMAGE),--build-arg BASE_IMAGE=$(BASE_IMAGE)) \
		$(if $(filter podman,$(IMAGE_ENGINE)),$(PODMAN_BUILD_FLAGS)) $(IMAGE_BUILD_FLAGS) .

.PHONY: image-base
image-base: ## podman: a Debian bookworm base with Python 3.11 from Debian's packages, for hosts without a registry (cached in ~/.cache/wecom-stream/image-base; prints its name)
	@bash deploy/docker/local-base.sh

.PHONY: test-image
test-image: kafka-jars ## build the image on the local Debian base and run it as deploy/k8s does against a real Kafka (~1-2 min with the base cached; needs root, podman, runc, debootstrap)
	@for tool in podman runc debootstrap; do command -v $$tool >/dev/null || \
		{ echo "make test-image: $$tool missing: apt-get install -y podman runc debootstrap" >&2; exit 1; }; done
	$(BIN)/pytest tests/image -p no:cacheprovider $(PYTEST_ARGS)

.PHONY: test-unit
test-unit: $(STAMP) ## unit tests only (no broker)
	$(BIN)/pytest tests/unit $(PYTEST_ARGS)

.PHONY: bench-ingress
bench-ingress: kafka-jars ## ingress throughput/latency vs a bare aiohttp handler (bench/results/ingress.json)
	$(BIN)/python -m bench.ingress

.PHONY: bench-ingress-peers
bench-ingress-peers: kafka-jars ## ingress vs Benthos v4.27.0 (http_server -> kafka_franz) and the bare handler, CPU per request (builds Benthos once with Go)
	$(BIN)/python -m bench.ingress --only bare ingress1 benthos

.PHONY: bench-processor
bench-processor: kafka-jars ## normalizer throughput vs a bare aiokafka loop (bench/results/processor.json)
	$(BIN)/python -m bench.processor

.PHONY: bench-membership
bench-membership: kafka-jars ## membership: 2,000-member room, 1,000 joins/leaves; time/event, snapshot bytes (bench/results/membership.json)
	$(BIN)/python -m bench.membership

.PHONY: bench-restore
bench-restore: kafka-jars ## state: restore rates, start to next output with 1M/3M ids, memory and disk per entry (bench/results/restore.json)
	$(BIN)/python -m bench.restore

.PHONY: bench-backfill
bench-backfill: kafka-jars ## backfill chat-records: messages/s for 100 customers x 50 messages vs a bare producer (bench/results/backfill.json)
	$(BIN)/python -m bench.backfill

.PHONY: bench-e2e
bench-e2e: kafka-jars ## HTTP callback -> committed chat.message.v2 latency at 800/s, ingress + normalizer (bench/results/e2e.json)
	$(BIN)/python -m bench.e2e

.PHONY: bench-plots
bench-plots: $(STAMP) ## draw docs/img/bench-*.png from bench/results/*.json (installs matplotlib)
	$(BIN)/pip install -q '.[bench]'
	$(BIN)/python -m bench.plots

.PHONY: bench-peers
bench-peers: kafka-jars ## normalizer vs Quix Streams, same handler, exactly-once, side by side (bench/results/peers.json; makes .venv-quix)
	$(BIN)/python -m bench.peers

.PHONY: schemas
schemas: $(STAMP) ## regenerate schemas/json/ (a JSON Schema per topic, AsyncAPI) and docs/topics.md from the models
	$(BIN)/python -m schemas.export

.PHONY: schemas-release
schemas-release: $(STAMP) ## capture the current topic schemas as the released baseline (schemas/json/released/) that the registry test checks changes against
	$(BIN)/python -m schemas.export --release

.PHONY: deploy-render
deploy-render: $(STAMP) ## rewrite the generated files: each registered processor's manifests, KEDA objects, compose service and README rows (deploy/k8s/render.py) and the PrometheusRule (deploy/monitoring, from rules.yaml)
	$(BIN)/python deploy/k8s/render.py
	$(BIN)/python deploy/monitoring/render.py

.PHONY: deploy-check
deploy-check: $(STAMP) ## build every kustomization (pinned kustomize) and validate it offline: Kubernetes 1.37, KEDA and Prometheus Operator CRDs, PromQL, promtool rule checks and alert tests (~15 s warm)
	$(BIN)/python deploy/k8s/render.py --check
	$(BIN)/python deploy/monitoring/render.py --check
	$(BIN)/pytest tests/deploy tests/unit/test_deploy.py -p no:cacheprovider $(PYTEST_ARGS)

.PHONY: format
format: $(STAMP) ## apply ruff's formatter and autofixes
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

.PHONY: kafka-stop
kafka-stop: $(STAMP) ## stop the local Kafka started by `make run`
	$(BIN)/wecom-stream kafka stop

.PHONY: clean
clean: ## remove the virtualenv and caches
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
