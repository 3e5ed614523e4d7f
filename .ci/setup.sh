#!/usr/bin/env bash
# Sets up a fresh machine for lowbit and installs it from this checkout:
# Debian packages (Catch2 v2, ccache, ninja), pinned PyPI packages, then
# `pip install --no-build-isolation .` against the pinned torch.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
for pkg in catch2 ccache ninja-build cmake g++; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need_apt+=("$pkg")
done
if ((${#need_apt[@]})); then
  echo "[setup] apt-get install ${need_apt[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

PY=${PYTHON:-python3}
echo "[setup] pip install pinned requirements"
$PY -m pip install -q --disable-pip-version-check -r .ci/requirements.txt

echo "[setup] building and installing lowbit (ccache keeps rebuilds short)"
$PY -m pip install -q --disable-pip-version-check --no-build-isolation --no-deps .
$PY -c "import lowbit, json; print('[setup] lowbit', json.dumps(lowbit.build_info()))"
