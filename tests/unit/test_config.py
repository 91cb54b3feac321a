"""Configuration precedence and validation: keyword > DAGMPI_* variable > default."""

from __future__ import annotations

import pytest

import dagmpi
from dagmpi.config import Config


def test_defaults():
    cfg = Config.from_sources({}, environ={})
    assert cfg.transport == "auto" and cfg.prefetch == 2 and cfg.workers == 1


def test_environment_overrides_default():
    cfg = Config.from_sources({}, environ={"DAGMPI_PREFETCH": "5", "DAGMPI_POLL_MAX": "0.01"})
    assert cfg.prefetch == 5 and cfg.poll_max == 0.01


def test_keyword_overrides_environment():
    cfg = Config.from_sources({"prefetch": 1}, environ={"DAGMPI_PREFETCH": "5"})
    assert cfg.prefetch == 1


def test_unknown_keyword_lists_valid_ones():
    with pytest.raises(TypeError, match="unknown dagmpi setting.*prefech .did you mean prefetch.*valid settings are.*prefetch"):
        Config.from_sources({"prefech": 1}, environ={})


def test_bad_values_name_their_source():
    with pytest.raises(ValueError, match="DAGMPI_WORKERS"):
        Config.from_sources({}, environ={"DAGMPI_WORKERS": "many"})
    with pytest.raises(ValueError, match="transport"):
        Config.from_sources({"transport": "tcp"}, environ={})
    with pytest.raises(ValueError, match="workers"):
        Config.from_sources({"workers": 0}, environ={})


def test_options_reject_unknown_names():
    with pytest.raises(TypeError, match="retriez"):
        dagmpi.Options(retriez=1)
    opts = dagmpi.Options(name="x", priority=3)
    assert opts.name == "x" and opts.priority == 3


def test_gc_threshold_and_spin_time_settings():
    cfg = Config.from_sources({}, environ={"DAGMPI_GC_THRESHOLD": "0", "DAGMPI_SPIN_TIME": "0.001"})
    assert cfg.gc_threshold == 0 and cfg.spin_time == 0.001
    assert Config.from_sources({}, environ={}).spin_time == -1  # automatic
    with pytest.raises(ValueError, match="gc_threshold"):
        Config.from_sources({"gc_threshold": -5}, environ={})
    with pytest.raises(ValueError, match="spin_time"):
        Config.from_sources({"spin_time": -0.5}, environ={})


def test_misspelt_task_option_names_the_valid_ones():


    from dagmpi import Options, task

    for make in (lambda: Options(priorty=5), lambda: task(priorty=5)):
        with pytest.raises(TypeError) as err:
            make()
        msg = str(err.value)
        assert "'priorty' (did you mean 'priority'?)" in msg
        assert "valid options are: name, priority" in msg
    assert Options(priority=5).priority == 5
