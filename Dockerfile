# syntax=docker/dockerfile:1
# mindx-fault-exporter container image: pure Python, built for linux/amd64 and linux/arm64 with
#   docker buildx build --platform linux/amd64,linux/arm64 -t REGISTRY/mindx-fault-exporter:0.1.0 --push .
# See docs/deployment.md. Lint: `hadolint Dockerfile` (tests/test_deploy.py runs it).

# Builder: install the package and its dependencies (binary wheels exist for both architectures,
# so no compiler is needed) into a virtual environment that the final stage copies whole.
FROM python:3.11-slim-bookworm AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_INPUT=1
RUN python3 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
COPY pyproject.toml README.md ./
COPY exporter ./exporter
# The same install command as the README's (tests/test_deploy.py checks this), without pip's
# cache; pip itself is then removed from the environment, the exporter does not need it.
RUN python3 -m pip install --no-cache-dir . \
    && python3 -m pip uninstall --yes --quiet pip

# Final stage: the Python runtime and the installed environment only: no compiler, no pip cache,
# no sources or tests.
FROM python:3.11-slim-bookworm
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="mindx-fault-exporter" \
      org.opencontainers.image.description="Prometheus exporter for Huawei MindX DL fault information (Ascend NPU clusters on Kubernetes)" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://github.com/mindx-fault-exporter/mindx-fault-exporter" \
      org.opencontainers.image.documentation="https://github.com/mindx-fault-exporter/mindx-fault-exporter/blob/main/docs/deployment.md"
COPY --from=builder /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
# A fixed non-root UID/GID (the Kubernetes manifests run as the same 65532); no home, no shell use.
USER 65532:65532
EXPOSE 9847
ENTRYPOINT ["mindx-fault-exporter"]
