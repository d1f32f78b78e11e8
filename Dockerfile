# Thrifty's images, one build target each:
#   docker build --target operator      -t ghcr.io/thrifty-dev/thrifty-operator:0.1.0 .
#   docker build --target converter     -t ghcr.io/thrifty-dev/thrifty-converter:0.1.0 .
#   docker build --target triton-cpu    -t ghcr.io/thrifty-dev/thrifty-triton-cpu:0.1.0 .
#   docker build --target converter-gpu -t ghcr.io/thrifty-dev/thrifty-converter-gpu:0.1.0 .
# `operator` is the default target (the last stage). docs/images.md says what has been built and tested;
# `make images` builds the same targets with BuildKit and no Docker engine (testbed/thrifty_testbed/images.py).
# Steps that download mount an optional build secret `ca-bundle` (a CA bundle for a TLS-intercepting proxy):
# it is read only while the step runs and is in no layer.

# Slim Debian with CPython 3.11 for the operator and the CPU converter.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm
# NGC TensorRT (CUDA, cuDNN, TensorRT and its Python bindings). converters[gpu] needs TensorRT >= 10.12:
# choose a tag whose release notes list at least that version.
ARG TENSORRT_IMAGE=nvcr.io/nvidia/tensorrt:25.10-py3
# The PyTorch index with CPU-only wheels: PyPI's Linux torch wheel pulls about 3 GB of CUDA libraries.
# Empty: torch from the default index (what machines that cannot reach the PyTorch index do).
ARG TORCH_CPU_INDEX=https://download.pytorch.org/whl/cpu

# uv, copied into the builder stages (a pinned release of its distroless image).
FROM ghcr.io/astral-sh/uv:0.13.9 AS uv

FROM ${PYTHON_IMAGE} AS python-base
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/venv/bin:$PATH
# The unprivileged user every image runs as (uid and gid 10001, as the chart's securityContext expects: above
# the range of host users, so a container escape does not land on one).
RUN groupadd --gid 10001 thrifty \
    && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin thrifty

# Builder stages: uv, and the optional CA bundle secret for downloads (uv ignores a missing SSL_CERT_FILE).
FROM python-base AS builder
COPY --from=uv /uv /usr/local/bin/uv
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    SSL_CERT_FILE=/run/secrets/ca-bundle
RUN uv venv /opt/venv

# ---------------------------------------------------------------- operator
FROM builder AS operator-builder
# Dependencies first, from the project metadata alone, so that source changes reuse this layer. The contract
# package (thrifty-api) is required by name but installed from its folder: PyPI must never be asked for it.
COPY api/pyproject.toml /src/api/pyproject.toml
COPY operator/pyproject.toml /src/operator/pyproject.toml
RUN --mount=type=cache,target=/root/.cache/uv --mount=type=secret,id=ca-bundle \
    mkdir /tmp/deps && grep -v '"thrifty-api"' /src/operator/pyproject.toml > /tmp/deps/pyproject.toml \
    && uv pip install --python /opt/venv/bin/python -r /src/api/pyproject.toml -r /tmp/deps/pyproject.toml
COPY api/ /src/api/
COPY operator/ /src/operator/
# Only the operator package: no torch, no converter frameworks, no optional extras. The kubernetes client's
# asyncio copy (kubernetes.aio, about 70 MB) is never imported: the operator uses the synchronous client.
RUN --mount=type=cache,target=/root/.cache/uv --mount=type=secret,id=ca-bundle \
    uv pip install --python /opt/venv/bin/python --no-deps /src/api /src/operator \
    && rm -rf /opt/venv/lib/python3*/site-packages/kubernetes/aio

# ---------------------------------------------------------------- converter (CPU)
FROM builder AS converter-builder
ARG TORCH_CPU_INDEX
# torch from the CPU-only index first; the extras below then find it satisfied.
RUN --mount=type=cache,target=/root/.cache/uv --mount=type=secret,id=ca-bundle \
    uv pip install --python /opt/venv/bin/python ${TORCH_CPU_INDEX:+--index-url "$TORCH_CPU_INDEX"} "torch>=2.6"
COPY api/pyproject.toml /src/api/pyproject.toml
COPY converters/pyproject.toml /src/converters/pyproject.toml
RUN --mount=type=cache,target=/root/.cache/uv --mount=type=secret,id=ca-bundle \
    mkdir /tmp/deps && grep -v '"thrifty-api"' /src/converters/pyproject.toml > /tmp/deps/pyproject.toml \
    && uv pip install --python /opt/venv/bin/python -r /src/api/pyproject.toml \
    && uv pip install --python /opt/venv/bin/python -r /tmp/deps/pyproject.toml --extra cpu --extra serve --extra s3
COPY api/ /src/api/
COPY converters/ /src/converters/
RUN --mount=type=cache,target=/root/.cache/uv --mount=type=secret,id=ca-bundle \
    uv pip install --python /opt/venv/bin/python --no-deps /src/api /src/converters

# torch, onnx, onnxruntime, openvino, nncf, tritonclient and Triton's CPU build (nvidia-pytriton).
FROM python-base AS converter
LABEL org.opencontainers.image.title="thrifty-converter" \
      org.opencontainers.image.description="Thrifty's CPU converter and profiler (PyTorch, ONNX, OpenVINO, Triton)" \
      org.opencontainers.image.source="https://github.com/thrifty-dev/thrifty" \
      org.opencontainers.image.licenses="Apache-2.0"
# The virtual environment stays owned by root: uid 10001 can run it but not change it.
COPY --from=converter-builder /opt/venv /opt/venv
WORKDIR /work
USER 10001:10001
# The CLIs turn SIGTERM into a clean exit, so a deleted Job's pod stops at once even as PID 1.
ENTRYPOINT ["thrifty-convert"]
CMD ["--help"]

# ---------------------------------------------------------------- triton-cpu
# Triton's CPU build from the nvidia-pytriton wheel, serving ONNX Runtime and OpenVINO variants through its
# Python backend (the chart's `triton.backendMode: python`). No torch: only what model.py imports.
FROM builder AS triton-cpu-builder
COPY api/pyproject.toml /src/api/pyproject.toml
COPY converters/pyproject.toml /src/converters/pyproject.toml
RUN --mount=type=cache,target=/root/.cache/uv --mount=type=secret,id=ca-bundle \
    mkdir /tmp/deps && grep -v '"thrifty-api"' /src/converters/pyproject.toml > /tmp/deps/pyproject.toml \
    && uv pip install --python /opt/venv/bin/python -r /src/api/pyproject.toml \
    && uv pip install --python /opt/venv/bin/python -r /tmp/deps/pyproject.toml --extra serve
COPY api/ /src/api/
COPY converters/ /src/converters/
RUN --mount=type=cache,target=/root/.cache/uv --mount=type=secret,id=ca-bundle \
    uv pip install --python /opt/venv/bin/python --no-deps /src/api /src/converters
# `tritonserver` on PATH: the wheel's binary with its libraries and a prepared backend folder.
RUN python -m thrifty_converters.triton.launcher /opt/triton /opt/venv/bin/tritonserver

FROM python-base AS triton-cpu
LABEL org.opencontainers.image.title="thrifty-triton-cpu" \
      org.opencontainers.image.description="NVIDIA Triton (CPU build from nvidia-pytriton) with ONNX Runtime and OpenVINO" \
      org.opencontainers.image.source="https://github.com/thrifty-dev/thrifty" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=triton-cpu-builder /opt/venv /opt/venv
COPY --from=triton-cpu-builder /opt/triton /opt/triton
USER 10001:10001
EXPOSE 8000 8001 8002
# tritonserver handles SIGTERM itself (it stops accepting, drains, exits); exec form keeps it PID 1.
ENTRYPOINT ["tritonserver"]
CMD ["--help"]

# ---------------------------------------------------------------- converter-gpu
# TensorRT engine builds and GPU profiling. One stage: the venv must see the base image's TensorRT and CUDA.
FROM ${TENSORRT_IMAGE} AS converter-gpu
LABEL org.opencontainers.image.title="thrifty-converter-gpu" \
      org.opencontainers.image.description="Thrifty's GPU converter and profiler (TensorRT, ONNX Runtime GPU)" \
      org.opencontainers.image.source="https://github.com/thrifty-dev/thrifty" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=uv /uv /usr/local/bin/uv
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    PATH=/opt/venv/bin:$PATH
# --system-site-packages: the base image's tensorrt bindings match its CUDA and TensorRT libraries. The
# constraint keeps the resolver on that version instead of a newer PyPI wheel built for another CUDA (and fails
# the build when the base image's TensorRT is older than converters[gpu] needs).
RUN uv venv --system-site-packages --python python3 /opt/venv \
    && python3 -c 'import tensorrt; print(f"tensorrt=={tensorrt.__version__}")' > /opt/base-constraints.txt
COPY api/pyproject.toml /src/api/pyproject.toml
COPY converters/pyproject.toml /src/converters/pyproject.toml
RUN --mount=type=cache,target=/root/.cache/uv --mount=type=secret,id=ca-bundle \
    mkdir /tmp/deps && grep -v '"thrifty-api"' /src/converters/pyproject.toml > /tmp/deps/pyproject.toml \
    && uv pip install --python /opt/venv/bin/python -r /src/api/pyproject.toml \
    && uv pip install --python /opt/venv/bin/python -c /opt/base-constraints.txt \
        -r /tmp/deps/pyproject.toml --extra gpu --extra cpu --extra s3
COPY api/ /src/api/
COPY converters/ /src/converters/
RUN --mount=type=cache,target=/root/.cache/uv --mount=type=secret,id=ca-bundle \
    uv pip install --python /opt/venv/bin/python --no-deps /src/api /src/converters \
    && rm -rf /src
RUN groupadd --gid 10001 thrifty \
    && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin thrifty
WORKDIR /work
USER 10001:10001
ENTRYPOINT ["thrifty-convert"]
CMD ["--help"]

# ---------------------------------------------------------------- operator (default target)
FROM python-base AS operator
LABEL org.opencontainers.image.title="thrifty-operator" \
      org.opencontainers.image.description="Thrifty's Kubernetes operator (kopf)" \
      org.opencontainers.image.source="https://github.com/thrifty-dev/thrifty" \
      org.opencontainers.image.licenses="Apache-2.0"
# The virtual environment stays owned by root: uid 10001 can run it but not change it.
COPY --from=operator-builder /opt/venv /opt/venv
USER 10001:10001
# kopf's liveness endpoint (the chart probes /healthz here).
EXPOSE 8080
ENTRYPOINT ["kopf", "run", "-m", "thrifty_operator.handlers"]
# Defaults for a single-replica operator; the Helm chart passes its own arguments instead.
CMD ["--standalone", "--all-namespaces", "--liveness=http://0.0.0.0:8080/healthz", "--log-format=json"]
