# The harness image: fetch, proxy, eval, analyze, report, and (run as the `sandbox` service) the
# executor for generated code. Pinned Python dependencies (docker/requirements.lock) in their own
# layer before the source, so a code change rebuilds only the last layers.
#
# BASE_IMAGE: any Debian bookworm image (python3 3.11). Where nothing can be pulled, build one with
# debootstrap (see .ci/compose-e2e.sh). Extra CA certificates: put *.crt files in docker/certs/.
ARG BASE_IMAGE=debian:bookworm-slim
FROM ${BASE_IMAGE}

ENV DEBIAN_FRONTEND=noninteractive \
    LANG=C.UTF-8 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
    REQUESTS_CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt \
    PIP_CERT=/etc/ssl/certs/ca-certificates.crt

COPY docker/certs/ /usr/local/share/ca-certificates/extra/
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv ca-certificates \
 && find /usr/local/share/ca-certificates/extra -type f ! -name '*.crt' -delete \
 && update-ca-certificates \
 && rm -rf /var/lib/apt/lists/*

# The sandbox runs as this user (compose sets `user:`); the harness services run as root.
RUN groupadd --gid 10001 sandbox && useradd --uid 10001 --gid 10001 --no-create-home --shell /usr/sbin/nologin sandbox

RUN python3 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    VIRTUAL_ENV=/opt/venv

# Dependency layer: changes only when docker/requirements.lock changes.
COPY docker/requirements.lock /tmp/requirements.lock
RUN pip install --no-compile -r /tmp/requirements.lock && rm /tmp/requirements.lock

# Source layer. Fixture datasets are part of the demo config, so they ship in the image.
WORKDIR /app
COPY pyproject.toml ./
COPY harness/ harness/
COPY configs/ configs/
COPY tests/fixtures/ tests/fixtures/
# A dependency missing from requirements.lock fails the build; a version outside pyproject's range
# is printed (the lock is what was tested; fix the range or regenerate the lock).
RUN pip install --no-deps --no-compile . \
 && { pip check > /tmp/pip-check.txt || true; cat /tmp/pip-check.txt; ! grep -q "which is not installed" /tmp/pip-check.txt; } \
 && rm -f /tmp/pip-check.txt \
 && mkdir -p /app/data/models /app/results

# nltk data (IFEval's punkt_tab) lives in the data volume, put there by `harness fetch`; never fetched at eval time.
ENV NLTK_DATA=/app/data/nltk_data \
    HF_HUB_DISABLE_TELEMETRY=1
ENTRYPOINT []
CMD ["harness", "--help"]
