#!/usr/bin/env bash
# The GPU check for the lent GPU machine (/work/.library/device/README.md): the
# real-GPU tests (tests/gpu) and the GPU benchmark (benchmarks/gpu.py), in under
# 8 minutes, each step under its own `timeout`.
#
# That machine has CuPy (CUDA 13), numba-cuda, h5py, mpi4py, pytest, but no MPI
# library, no zict, and no network.  So, here, once (the wheels land in build/,
# which git ignores; 14 MiB):
#
#   .venv/bin/python -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
#       --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
#       --platform manylinux2014_x86_64 --platform manylinux1_x86_64 --platform manylinux_2_5_x86_64 \
#       -d build/gpu-wheels mpich==5.0.2 mpi4py==4.1.2 zict==3.0.0
#
# then the device tool's `run` with
#
#   command:   bash benchmarks/gpu_check.sh
#   carry:     ["build/gpu-wheels"]
#   timeout_s: 540
#
# What comes back under $OUT (else bench-results/gpu-check/): setup.log,
# pytest.log, bench.log and gpu.json (the benchmark's JSON).  The output's tail
# holds each step's last lines and its exit status.
#
# Setup: the wheels go into the image's Python (its bin/ then holds mpiexec
# beside python3, where tests/conftest.py and benchmarks/_results.py look, and
# mpi4py finds libmpi under its prefix); where that Python is read-only, into a
# venv over it that sees the image's packages through a .pth file.  dagmpi is
# installed editable without build isolation (nothing can be fetched there);
# failing that, a link dagmpi/kernels -> ../kernels stands in for the
# package-dir mapping of pyproject.toml.
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
OUTDIR=${OUT:-$ROOT/bench-results/gpu-check}
WHEELS=${GPU_WHEELS:-$ROOT/build/gpu-wheels}
mkdir -p "$OUTDIR"
export PYTHONUNBUFFERED=1 PIP_ROOT_USER_ACTION=ignore PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
unset DAGMPI_GPU_SIM NUMBA_ENABLE_CUDASIM
START=$SECONDS

# `step NAME SECONDS CMD...`: CMD under a hard limit, its output in NAME.log,
# its last lines and exit status on stdout.  Whatever of ours still holds the
# GPU afterwards (ranks of a killed job) is ended, by process id.
step() {
    local name=$1 limit=$2 rc
    shift 2
    echo "=== $name (limit ${limit} s, at $((SECONDS - START)) s)"
    timeout -k 5 "$limit" "$@" >"$OUTDIR/$name.log" 2>&1
    rc=$?
    tail -n "${TAIL:-40}" "$OUTDIR/$name.log"
    echo "=== $name: exit $rc after $((SECONDS - START)) s"
    for pid in $(nvidia-smi --query-compute-apps=pid --format=csv,noheader 2>/dev/null); do
        case $pid in *[!0-9]*) continue ;; esac
        [ "$pid" -gt 1 ] && [ "$pid" != $$ ] || continue
        ps -o comm= -p "$pid" 2>/dev/null | grep -qE 'python|mpiexec|hydra' || continue
        echo "ending leftover GPU process $pid: $(ps -o args= -p "$pid" | cut -c1-160)"
        kill -9 "$pid" 2>/dev/null
    done
    return $rc
}

setup() {
    set -e
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
    # MPICH's launcher resolves this host's name; a VM without network may not know it
    getent hosts "$(hostname)" >/dev/null || echo "127.0.0.1 $(hostname)" >>/etc/hosts
    PY=$(python3 -c 'import sys; print(sys.executable)')
    ls "$WHEELS"/*.whl
    if ! "$PY" -m pip install -q -I --no-index --no-deps --no-compile "$WHEELS"/*.whl; then
        echo "the image's Python is read-only: a venv over it"
        local site
        site=$("$PY" -c 'import site; print(site.getsitepackages()[0])')
        "$PY" -m venv --without-pip /tmp/gpu-venv
        /tmp/gpu-venv/bin/python -c 'import site; print(site.getsitepackages()[0])' >/tmp/gpu-venv-site
        echo "$site" >"$(cat /tmp/gpu-venv-site)/_image.pth"
        "$PY" -m pip install -q -I --no-index --no-deps --no-compile --prefix /tmp/gpu-venv "$WHEELS"/*.whl
        PY=/tmp/gpu-venv/bin/python
    fi
    if ! "$PY" -m pip install -q --no-index --no-deps --no-build-isolation -e "$ROOT"; then
        echo "no editable install: dagmpi/kernels -> ../kernels"
        ln -sfn ../kernels "$ROOT/dagmpi/kernels"
    fi
    echo "$PY" >/tmp/gpu-check-python
    "$PY" - <<'EOF'
import sys, cupy, numba, mpi4py
from mpi4py import MPI
import dagmpi, dagmpi.kernels.cpu, zict  # noqa: F401
from numba import cuda
print(sys.executable, sys.version.split()[0])
print("cupy", cupy.__version__, "CUDA runtime", cupy.cuda.runtime.runtimeGetVersion(),
      "devices", cupy.cuda.runtime.getDeviceCount())
print("numba", numba.__version__, "cuda available", cuda.is_available())
print("mpi4py", mpi4py.__version__, MPI.Get_library_version().splitlines()[0])
EOF
    timeout 60 "$(dirname "$PY")/mpiexec" -n 2 "$PY" -c \
        'from mpi4py import MPI; c = MPI.COMM_WORLD; print("rank", c.rank, "of", c.size, c.allreduce(1))'
}

export ROOT WHEELS
export -f setup
step setup 60 bash -c setup || { echo "setup failed: see setup.log"; exit 1; }
PY=$(cat /tmp/gpu-check-python)

# ~2.5 min: values between GPU ranks, the numba.cuda kernels, DArrays on the GPU
TAIL=60 step pytest 160 "$PY" -m pytest -q -rs -p no:cacheprovider tests/gpu

# ~4 min: the children's timeouts come out of --budget, so the table is printed in time
TAIL=80 step bench 250 "$PY" benchmarks/gpu.py --budget 225 --json "$OUTDIR/gpu.json"

echo "=== done after $((SECONDS - START)) s; files in $OUTDIR"
