# Every target creates what it needs: a fresh clone with Python 3.11 is enough.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test lint typecheck unit e2e bench venv clean lock image-tools prometheus release

# What tests/chart/test_image.py builds and runs the Dockerfile with (Debian packages of the
# same names). Without them the image tests are skipped, saying why.
IMAGE_TOOLS := buildah podman runc mmdebstrap

$(STAMP): requirements-dev.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet --require-hashes -r requirements-dev.txt
	$(BIN)/pip install --quiet --no-deps -e .
	touch $(STAMP)

venv: $(STAMP)

## run: set everything up and start the webhook in dev mode (throwaway TLS, example templates)
run: $(STAMP)
	$(BIN)/sidecar-injector serve --dev

## test: set everything up and run linters, type checks, the unit suite and the e2e suite
test: lint typecheck unit e2e

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP) image-tools prometheus
	$(BIN)/pytest -q

## image-tools: install the missing IMAGE_TOOLS with apt-get, when root on a Debian machine
image-tools:
	@missing="$(strip $(foreach tool,$(IMAGE_TOOLS),$(if $(shell command -v $(tool)),,$(tool))))"; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then \
		echo "image-tools: $$missing missing and not installable here (needs root and apt-get);" \
			"the image tests will be skipped"; exit 0; fi; \
	echo "image-tools: installing $$missing"; \
	export DEBIAN_FRONTEND=noninteractive; \
	apt-get install -y -q $$missing >/dev/null 2>&1 \
		|| { apt-get update -q >/dev/null && apt-get install -y -q $$missing >/dev/null; } \
		|| echo "image-tools: apt-get could not install $$missing; the image tests will be skipped"

## prometheus: Debian's prometheus and promtool, unpacked into .cache/prometheus/ (not installed:
## no service starts), for the monitoring tests; as root, apt-get update first if need be
prometheus: $(STAMP)
	@$(BIN)/python scripts/fetch_prometheus.py --update >/dev/null \
		|| echo "prometheus: not obtainable here; the Prometheus and promtool tests will be skipped"

## e2e: the real service process driven like the kube-apiserver drives it (E2E_KUBECONFIG: a cluster)
e2e: $(STAMP)
	$(BIN)/pytest -q e2e

## bench: load benchmark of /mutate against a fixed-response baseline; writes bench/results.md
bench: $(STAMP)
	$(BIN)/python bench/run.py

## release: build the image and push it and the chart (OCI) to REGISTRY=host[:port][/path]
## (REGISTRY_CA=<the registry's CA file>, or PLAIN_HTTP=1; BUILDAH=<buildah|podman|docker and
## global flags>, BUILD_ARGS=<extra build flags>): docs/chart.md#releasing
release: $(STAMP)
	$(BIN)/python scripts/release.py

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache .hypothesis build *.egg-info

## lock: re-pin requirements*.txt (with hashes) from the ranges in pyproject.toml (build-system too)
lock:
	$(PYTHON) -m venv .cache/pip-tools
	.cache/pip-tools/bin/pip install --quiet --upgrade 'pip-tools>=7'  # 7: --all-build-deps
	.cache/pip-tools/bin/pip-compile -q --strip-extras --generate-hashes --allow-unsafe \
		--no-emit-index-url --no-emit-find-links -o requirements.txt pyproject.toml
	.cache/pip-tools/bin/pip-compile -q --strip-extras --generate-hashes --allow-unsafe \
		--no-emit-index-url --no-emit-find-links --extra dev -o requirements-dev.txt pyproject.toml
	.cache/pip-tools/bin/pip-compile -q --strip-extras --generate-hashes --allow-unsafe \
		--no-emit-index-url --no-emit-find-links --all-build-deps --only-build-deps \
		-o requirements-build.txt pyproject.toml
