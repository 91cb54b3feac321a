"""GPU discovery and the resources a rank offers (no GPU needed: counts are injected)."""

import pytest

from dagmpi.gpu import devices
from dagmpi.options import Options, parse_amount, scope


def test_each_local_rank_gets_its_own_gpus():
    env = {"MPI_LOCALRANKID": "1", "MPI_LOCALNRANKS": "2"}
    assert devices.local_gpus(env, count=4) == [2, 3]
    assert devices.local_gpus({"SLURM_LOCALID": "0", "SLURM_NTASKS_PER_NODE": "4"}, count=4) == [0]
    # more ranks than GPUs: shared round-robin
    assert devices.local_gpus({"OMPI_COMM_WORLD_LOCAL_RANK": "3", "OMPI_COMM_WORLD_LOCAL_SIZE": "4"},
                              count=2) == [1]
    assert devices.local_gpus({}, count=0) == []


def test_gpu_override_and_its_errors():
    assert devices.local_gpus({"DAGMPI_GPUS": "none"}, count=8) == []
    assert devices.local_gpus({"DAGMPI_GPUS": "0,3"}, count=0) == [0, 3]
    with pytest.raises(ValueError, match="DAGMPI_GPUS"):
        devices.local_gpus({"DAGMPI_GPUS": "gpu0"})


def test_no_cupy_or_no_gpu_means_zero():
    assert devices.visible_gpu_count() >= 0  # never raises, with or without CuPy


def test_offers_and_custom_resources():
    res, gpus = devices.offers(1, "licence=2, scratch=100GB", {"DAGMPI_GPUS": "none"})
    assert res["licence"] == 2 and res["scratch"] == 100e9 and res["memory"] > 0 and gpus == []
    with pytest.raises(ValueError, match="name=amount"):
        devices.offers(1, "licence")


def test_amounts_and_needs():
    assert parse_amount("memory", "4GiB") == 4 * 2**30
    assert parse_amount("memory", "512MB") == 512e6
    with pytest.raises(ValueError, match="memory"):
        parse_amount("memory", "lots")
    assert Options(scope=scope(gpu=True)).needs() == {"gpu": 1.0}
    assert Options(resources={"memory": "1GiB"}, scope=scope(gpu=True)).needs() == {
        "memory": 2**30, "gpu": 1.0}
    assert Options().needs() is None
    with pytest.raises(ValueError, match="impossible scope"):
        scope(gpu=True, cpu=True)
    with pytest.raises(TypeError, match="Task"):
        scope(near=3)


def test_scope_class_takes_any_iterable_of_ranks():
    from dagmpi import Scope

    assert Scope(ranks=[1, 2]).ranks == frozenset({1, 2})
    assert Scope(ranks=3).ranks == frozenset({3})
    with pytest.raises(ValueError, match="empty"):
        Scope(ranks=[])
    with pytest.raises(TypeError, match="iterable"):
        Scope(ranks=2.5)
    with pytest.raises(ValueError, match="non-negative"):
        Scope(ranks=[-1])
    assert scope(ranks=range(1, 3)).ranks == frozenset({1, 2}) and scope(ranks=2).ranks == frozenset({2})
