#!/usr/bin/env bash
# Installs what the report.html browser test needs: Debian's chromium + chromium-driver (apt).
# Idempotent: does nothing when both binaries are already there. Selenium comes from the `test`
# extra of pyproject.toml. Needs root (CI runs as root) or sudo.
set -euo pipefail
if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then
  echo "install-browser: $(chromium --version 2>/dev/null | head -1) and chromedriver already installed"
  exit 0
fi
SUDO=""
[[ $(id -u) -eq 0 ]] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
# apt may be busy (another job, unattended upgrades): wait for its lock instead of failing.
$SUDO apt-get -o DPkg::Lock::Timeout=600 update -qq
$SUDO apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends chromium chromium-driver
chromium --version
chromedriver --version
