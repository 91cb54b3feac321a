"""GPU values on the simulated GPU (DAGMPI_GPU_SIM): ranks 1 and 2 have a GPU,
rank 3 has none.  Device arrays stay on their GPU, move between GPUs staged in
chunks (or directly, as a CUDA-aware MPI would), arrive in host memory on a
CPU rank, for a CPU task or at the driver, and on the GPU for a GPU task."""

import pytest

from conftest import run_dagmpi

pytestmark = pytest.mark.mpi

STEPS = ["gpu task on rank 2", "cpu task on rank 3", "cpu task on rank 1 (same rank)",
         "move=False task on rank 1", "gpu task on rank 1 (same rank)", "driver gets numpy",
         "numpy input to a gpu task", "gpu_memory"]


@pytest.mark.parametrize("aware", ["0", "1"], ids=["staged", "cuda-aware"])
def test_device_values_between_ranks(aware):
    # 10,007 doubles in 4 KiB chunks: 20 chunks, the last one partial
    r = run_dagmpi("gpu_sim.py", n=4, timeout=120, args=[10_007],
                   env={"DAGMPI_GPU_SIM": "1,2", "DAGMPI_GPU_CHUNK": "4096", "DAGMPI_CUDA_AWARE": aware})
    assert r.returncode == 0, r
    for step in STEPS:
        assert f"OK {step}" in r.stdout, (step, r)
    assert "not a dagmpi setting" not in r.stderr, r


def test_checkpointed_device_value_is_restored_to_the_gpu(tmp_path):
    env = {"DAGMPI_GPU_SIM": "1,2", "DAGMPI_GPU_CHUNK": "4096"}
    first = run_dagmpi("gpu_sim.py", n=4, timeout=120, args=["ckpt", tmp_path], env=env)
    assert first.returncode == 0, first
    assert "OK checkpoint, runs of the producer: 1" in first.stdout, first
    second = run_dagmpi("gpu_sim.py", n=4, timeout=120, args=["ckpt", tmp_path], env=env)
    assert second.returncode == 0, second
    assert "OK checkpoint, runs of the producer: 1" in second.stdout, second  # restored, not run again


@pytest.mark.parametrize("n", [None, 3], ids=["inproc", "n3"])
def test_gpu_arrays_stay_on_the_gpu(n):
    r = run_dagmpi("gpu_arrays.py", n=n, timeout=180, env={"DAGMPI_GPU_SIM": "1"})
    assert r.returncode == 0, r
    assert "GPU-ARRAYS-OK" in r.stdout, r


def test_gpu_arrays_need_a_gpu_rank():
    r = run_dagmpi("gpu_arrays.py", n=3, timeout=60, env={"DAGMPI_GPU_SIM": "0"})
    assert r.returncode != 0
    assert "no worker rank has a GPU" in r.stderr, r
    assert r.stderr.count("no worker rank has a GPU") == 1, r  # said once
