"""The GPU backend on the simulated GPU: device values in pickles, memory-space
placement of task arguments, and which ranks get a simulated GPU."""

import pickle

import numpy as np
import pytest

from dagmpi import serialize
from dagmpi.gpu import backend, devices
from dagmpi.options import Options


@pytest.fixture
def sim(monkeypatch):
    monkeypatch.setenv("DAGMPI_GPU_SIM", "1")
    backend._reset_for_tests()
    b = backend.activate(0)
    yield b
    backend._reset_for_tests()


def test_device_arrays_leave_their_bytes_out_of_the_pickle(sim):
    a = sim.to_device(np.arange(10_000, dtype=np.float64))
    f = sim.to_device(np.asfortranarray(np.arange(12.0).reshape(3, 4)))
    value = {"a": a, "nested": [f, (sim.to_device(np.zeros(0)), 5)], "host": np.ones(2000)}
    payload, buffers = serialize.dump_value(value)
    kinds = [type(b).__name__ for b in buffers]
    assert kinds.count("DeviceBuffer") == 3 and kinds.count("PickleBuffer") == 1, kinds
    assert len(payload) < 2000  # the 80 kB of the device array are not in the stream
    assert serialize.buffers_nbytes(buffers) == 80_000 + 96 + 0 + 16_000
    assert serialize.device_nbytes(buffers) == 80_000 + 96
    back = serialize.load_value(payload, buffers)
    assert sim.is_device(back["a"]) and np.array_equal(back["a"], a)
    g = back["nested"][0]
    assert sim.is_device(g) and g.flags.f_contiguous and np.array_equal(g, f)
    assert back["nested"][1][0].shape == (0,) and back["nested"][1][1] == 5
    assert type(back["host"]) is np.ndarray


def test_without_a_collector_a_device_array_pickles_as_a_host_copy(sim):
    a = sim.to_device(np.arange(7.0))
    back = pickle.loads(pickle.dumps({"a": a}, 5))  # a spill file, a checkpoint, another pickler
    assert type(back["a"]) is np.ndarray and np.array_equal(back["a"], np.arange(7.0))


def test_arguments_go_to_the_memory_of_the_task(sim):
    host = np.arange(4.0)
    dev = sim.to_device(np.arange(3.0))
    obj = np.array([None, 1], dtype=object)
    args, kwargs = backend.place((host, [dev, host], {"k": host}, 7, obj), {"x": host}, sim, on_gpu=True)
    assert sim.is_device(args[0]) and sim.is_device(args[1][1]) and sim.is_device(args[2]["k"])
    assert args[1][0] is dev and args[3] == 7 and args[4] is obj and sim.is_device(kwargs["x"])
    args, kwargs = backend.place((dev, (dev,)), {"y": dev}, sim, on_gpu=False)
    assert type(args[0]) is np.ndarray and type(args[1][0]) is np.ndarray and type(kwargs["y"]) is np.ndarray
    assert np.array_equal(args[0], np.arange(3.0))


def test_which_ranks_get_a_simulated_gpu():
    assert backend.sim_enabled({"DAGMPI_GPU_SIM": "1"})
    assert not backend.sim_enabled({"DAGMPI_GPU_SIM": "0"}) and not backend.sim_enabled({})
    assert backend.sim_enabled({"DAGMPI_GPU_SIM": "1,2", "PMI_RANK": "2"})
    assert not backend.sim_enabled({"DAGMPI_GPU_SIM": "1,2", "PMI_RANK": "3"})
    with pytest.raises(ValueError, match="DAGMPI_GPU_SIM"):
        backend.sim_enabled({"DAGMPI_GPU_SIM": "gpu please"})
    env = {"DAGMPI_GPU_SIM": "2", "DAGMPI_GPU_SIM_COUNT": "2", "MPI_LOCALRANKID": "1", "MPI_LOCALNRANKS": "2",
           "PMI_RANK": "2"}
    assert devices.visible_gpu_count(env) == 2 and devices.local_gpus(env) == [1]
    assert devices.local_gpus({**env, "PMI_RANK": "1"}) == []


def test_move_must_be_a_bool():
    assert Options(move=False).move is False
    with pytest.raises(TypeError, match="move"):
        Options(move="no")
