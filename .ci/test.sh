#!/usr/bin/env bash
# Sets up a fresh machine (via setup.sh), then runs every test:
#   1. Catch2 suites (cpp/core, cpp/kernels) through ctest;
#   2. the same suites once more under ASan + UBSan;
#   3. pytest against the installed package (every kernel path this CPU has is exercised by the
#      ISA-path tests, which compare each path with the scalar reference);
#   4. pytest once more on a test build whose AVX-512 sources run on emulated intrinsics
#      (LOWBIT_EMULATE_AVX512), so the avx512 path and the ops' handling of its tile shapes are
#      exercised on CPUs without AVX-512 too (they are the default path of that build).
set -euo pipefail
cd "$(dirname "$0")/.."
bash .ci/setup.sh

PY=${PYTHON:-python3}
JOBS=$(nproc)

echo "[test] Catch2 suites"
cmake -S . -B build/ci-cpp -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DLOWBIT_BUILD_EXTENSION=OFF -DLOWBIT_BUILD_TESTS=ON >/dev/null
ninja -C build/ci-cpp -j"$JOBS" --quiet   # errors still print
ctest --test-dir build/ci-cpp --output-on-failure -j"$JOBS"

echo "[test] Catch2 suites under ASan + UBSan"
cmake -S . -B build/ci-asan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DLOWBIT_BUILD_EXTENSION=OFF -DLOWBIT_BUILD_TESTS=ON -DLOWBIT_SANITIZE=ON >/dev/null
ninja -C build/ci-asan -j"$JOBS" --quiet
ctest --test-dir build/ci-asan --output-on-failure -j"$JOBS"

echo "[test] pytest"
# Run from tests/ so `import lowbit` resolves to the installed package, not python/ sources.
$PY -m pytest -q -p no:cacheprovider tests

echo "[test] pytest on the emulated AVX-512 paths"
# A dev build loaded through LOWBIT_DEV_BUILD with the sources on PYTHONPATH; only its AVX-512
# sources and two feature-reporting files are compiled differently from a normal build.
cmake -S . -B build/ci-emu -G Ninja -DCMAKE_BUILD_TYPE=Release -DLOWBIT_EMULATE_AVX512=ON >/dev/null
ninja -C build/ci-emu -j"$JOBS" --quiet
LOWBIT_DEV_BUILD=build/ci-emu PYTHONPATH=python $PY -c \
  "import lowbit; f = lowbit.build_info()['cpu_features']; assert f['avx512_emulated'] or f['avx512f'], f"
LOWBIT_DEV_BUILD=build/ci-emu PYTHONPATH=python $PY -m pytest -q -p no:cacheprovider tests
