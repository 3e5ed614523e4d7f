#!/usr/bin/env bash
# The README's demo command: set everything up, then run the main demo.
set -euo pipefail
cd "$(dirname "$0")/.."
bash .ci/setup.sh
${PYTHON:-python3} -m lowbit.demo
