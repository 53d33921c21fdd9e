# The sidecar-injector image: `docker build -t sidecar-injector .` from the repository root.
# Base pinned by tag; pin it by digest too (python:<tag>@sha256:...) in your registry mirror.
ARG PYTHON_IMAGE=python:3.11.13-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_ROOT_USER_ACTION=ignore
# The venv has no pip of its own: the build stage's pip installs into it, so no installer
# is shipped in the image.
RUN python -m venv --without-pip /opt/venv
# Dependencies first, exactly as locked (hashes checked, wheels only: no compiler needed).
# This layer is rebuilt only when the lock file changes.
COPY requirements.txt /tmp/requirements.txt
RUN python -m pip --python /opt/venv/bin/python install \
        --require-hashes --no-deps --only-binary=:all: -r /tmp/requirements.txt
# The wheel's build backend (setuptools, wheel), locked the same way, in a venv of its own
# that stays in this stage.
COPY requirements-build.txt /tmp/requirements-build.txt
RUN python -m venv --without-pip /opt/build \
 && python -m pip --python /opt/build/bin/python install \
        --require-hashes --no-deps --only-binary=:all: -r /tmp/requirements-build.txt
# Then the application itself, as a wheel built from the sources with that backend only (no
# build isolation, no index: nothing is fetched), installed, and checked against the lock.
WORKDIR /src
COPY pyproject.toml README.md ./
COPY injector ./injector
RUN python -m pip --python /opt/build/bin/python wheel \
        --no-deps --no-build-isolation --no-index --wheel-dir /dist . \
 && python -m pip --python /opt/venv/bin/python install --no-deps --no-index /dist/*.whl \
 && python -m pip --python /opt/venv/bin/python check

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="sidecar-injector" \
      org.opencontainers.image.description="Kubernetes mutating admission webhook that injects sidecars from ConfigMap templates" \
      org.opencontainers.image.licenses="Apache-2.0"
# No installers at run time. `pip uninstall` exits 0 even when it removes nothing (a
# distribution's own pip, say), so the build fails if any of them is still importable or
# on PATH.
RUN PIP_ROOT_USER_ACTION=ignore python -m pip uninstall --yes --quiet pip setuptools wheel \
 && python -c 'import importlib.util as u, os, re, sys; \
        left = [m for m in ("pip", "setuptools", "wheel") if u.find_spec(m)] + [ \
            os.path.join(d, f) for d in os.get_exec_path() if os.path.isdir(d) \
            for f in os.listdir(d) if re.fullmatch(r"(pip|wheel|easy_install)[0-9.-]*", f)]; \
        sys.exit(f"installers left in the image: {left}" if left else None)'
COPY --from=build /opt/venv /opt/venv
# `serve --dev` serves ./examples/templates: the examples ship, so that
# `docker run IMAGE serve --dev` works from the image alone.
WORKDIR /opt/sidecar-injector
COPY examples/templates examples/templates
# The root filesystem is read-only at run time (the chart mounts an emptyDir on /tmp):
# bytecode was compiled at install time and is never written.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp
# Numeric, so that Kubernetes can check runAsNonRoot; the chart runs as the same IDs.
USER 65532:65532
# HTTPS /mutate and plain HTTP /metrics, /healthz, /readyz (the service's default ports).
EXPOSE 8443 8080
ENTRYPOINT ["sidecar-injector"]
CMD ["serve"]
