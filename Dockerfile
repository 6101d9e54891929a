# aidbox-operator image: `docker build -t aidbox-operator:0.1.0 .`
# The tag must be the version in pyproject.toml (deploy/ and the Helm chart use it).
# Base pinned to a patch release; pin by digest too in your registry if you need
# reproducible rebuilds (python:3.11.13-slim-bookworm@sha256:...).

# -- builder: a wheel of the project, installed with its pinned dependencies into a venv ----
FROM python:3.11.13-slim-bookworm AS builder
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
RUN python -m venv /opt/venv
COPY pyproject.toml ./
COPY src ./src
# Only the runtime dependencies (pinned with == in pyproject.toml): no [dev] extras.
RUN /opt/venv/bin/pip wheel --no-deps --wheel-dir /wheels . \
 && /opt/venv/bin/pip install /wheels/aidbox_operator-*.whl \
 && /opt/venv/bin/pip uninstall -y pip

# -- runtime: the venv only, run as a non-root numeric user --------------------------------
FROM python:3.11.13-slim-bookworm
ENV PATH=/opt/venv/bin:$PATH PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
# kopf names itself after getpass.getuser(): without USER it looks uid 65532 up in /etc/passwd,
# which has no such entry, and the operator dies at start (seen on a real node).
ENV USER=aidbox-operator
COPY --from=builder /opt/venv /opt/venv
# 65532 = "nonroot" by convention; numeric so that runAsNonRoot can verify it.
USER 65532:65532
EXPOSE 8080 8081
ENTRYPOINT ["aidbox-operator", "run"]
CMD ["--all-namespaces", "--log-format", "json", "--health-endpoint", "http://0.0.0.0:8080/healthz"]
