"""The command line as a user meets it: ``python -m dagmpi --help``, ``--version``, usage
errors, ``ckpt --help``, and what ``main`` hands to the runtime (real subprocesses with a
hard timeout, or ``main`` in-process where no runtime starts)."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import types
from pathlib import Path

import pytest

import dagmpi
from dagmpi import cli
from dagmpi.config import Config
from dagmpi.runtime import context

ROOT = Path(__file__).resolve().parents[2]
LAUNCHER_VARS = ("PMI_RANK", "PMIX_RANK", "OMPI_COMM_WORLD_RANK", "SLURM_PROCID")


def dagmpi_cli(*args: str) -> subprocess.CompletedProcess:
    """``python -m dagmpi ARGS``, no launcher, with a hard timeout."""
    env = {k: v for k, v in os.environ.items() if k not in LAUNCHER_VARS}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    env["COLUMNS"] = "80"
    return subprocess.run([sys.executable, "-m", "dagmpi", *args], capture_output=True, text=True,
                          timeout=60, cwd=str(ROOT), env=env)


def test_help_lists_commands_launch_forms_and_every_variable():
    r = dagmpi_cli("--help")
    assert r.returncode == 0, r
    out = r.stdout
    assert out.startswith("usage: python -m dagmpi "), out
    commands = out.split("\ncommands", 1)[1].split("\n\n", 1)[0].splitlines()[1:]
    assert [line.split()[0] for line in commands] == ["run", "info", "ckpt", "trace"], out
    assert all(len(line.split("  ", 2)[-1]) > 10 for line in commands), out  # each with its line
    for form in ("mpiexec -n 5 python -m dagmpi app.py", "srun -n 64 python -m dagmpi app.py",
                 "python -m dagmpi app.py"):
        assert form in out, out
    for f in dataclasses.fields(Config):
        assert f"DAGMPI_{f.name.upper()}=" in out, (f.name, out)
    assert 'DAGMPI_CHECKPOINT=""' in out and "Checkpoint directory" in out, out
    assert 'DAGMPI_TRACE=""' in out and "Chrome/Perfetto trace" in out, out
    assert "DAGMPI_PROGRESS=auto" in out and "DAGMPI_TRANSPORT=auto" in out, out
    for option in ("--trace FILE", "--progress {auto,1,0}", "--log-level", "--version"):
        assert option in out, out
    assert r.stderr == "", r


def test_version():
    r = dagmpi_cli("--version")
    assert r.returncode == 0, r
    assert r.stdout == f"dagmpi {dagmpi.__version__}\n", r


@pytest.mark.parametrize("args", [[], ["run"], ["--workers", "2"]], ids=["none", "run", "options-only"])
def test_no_script_says_what_is_missing_once(args):
    r = dagmpi_cli(*args)
    assert r.returncode == 2, r
    assert r.stderr.count("dagmpi: no script given; usage: python -m dagmpi") == 1, r
    assert "try 'python -m dagmpi --help'" in r.stderr and len(r.stderr.splitlines()) == 1, r
    assert r.stdout == "", r


@pytest.mark.parametrize("args, message", [
    (["--bogus", "app.py"], "unrecognized arguments: --bogus"),
    (["--progress", "2", "app.py"], "argument --progress: invalid choice: '2'"),
    (["--log-level", "loud", "app.py"], "argument --log-level: invalid choice"),
    (["--workers", "many", "app.py"], "argument --workers: invalid int value: 'many'"),
    (["ckpt", "rm", "."], "argument {ls,info,gc}: invalid choice: 'rm'"),
    (["info", "--bogus"], "unrecognized arguments: --bogus"),
])
def test_a_bad_option_is_one_line_and_exit_2(args, message):
    r = dagmpi_cli(*args)
    assert r.returncode == 2, r
    assert len(r.stderr.splitlines()) == 1 and message in r.stderr, r
    assert "--help" in r.stderr, r


def test_ckpt_help_says_which_commands_read_and_which_deletes():
    r = dagmpi_cli("ckpt", "--help")
    assert r.returncode == 0, r
    out = r.stdout
    assert out.startswith("usage: python -m dagmpi ckpt "), out
    read_only = [line for line in out.splitlines() if "read-only" in line]
    assert read_only and all(line.split()[0] in ("ls", "info") for line in read_only), out
    gc = out.split("\n  gc", 1)[1]
    assert "remove" in gc and "damaged" in gc and "--dry-run" in gc, out


def test_info_help():
    r = dagmpi_cli("info", "--help")
    assert r.returncode == 0 and r.stdout.startswith("usage: python -m dagmpi info"), r


@pytest.mark.parametrize("argv0, prog", [
    ("/venv/lib/python3.11/site-packages/dagmpi/__main__.py", "python -m dagmpi"),
    ("/venv/bin/dagmpi", "dagmpi"),
    ("C:\\venv\\Scripts\\dagmpi.exe".replace("\\", os.sep), "dagmpi"),
    ("-c", "python -m dagmpi"),
])
def test_program_name(argv0, prog):
    assert cli.program_name(argv0) == prog


def test_console_script_calls_itself_dagmpi(monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["/venv/bin/dagmpi", "--help"])
    with pytest.raises(SystemExit) as exc:
        cli.main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: dagmpi [-h]"), out
    assert "commands ('dagmpi COMMAND --help' for more)" in out, out
    monkeypatch.setattr(sys, "argv", ["/venv/bin/dagmpi"])
    assert cli.main([]) == 2
    assert "usage: dagmpi [options] SCRIPT" in capsys.readouterr().err


def test_only_rank_0_prints_help_and_errors(monkeypatch, capsys):
    monkeypatch.setenv("PMI_RANK", "2")
    with pytest.raises(SystemExit) as exc:
        cli.main(["--bogus"])
    assert exc.value.code == 2
    assert cli.main([]) == 2
    with pytest.raises(SystemExit) as exc:
        cli.main(["--help"])
    assert exc.value.code == 0
    assert capsys.readouterr() == ("", "")


def run_main_without_runtime(monkeypatch, argv):
    """``cli.main(argv)`` with ``context.init`` replaced: the keywords it would get."""
    seen = {}

    def fake_init(**kwargs):
        seen.update(kwargs)
        raise context.StartupError("stop here", report=False)

    monkeypatch.setattr(context, "init", fake_init)
    monkeypatch.setattr(cli, "setup_logging", lambda level, rank: seen.setdefault("logging", level))
    assert cli.main(argv) == 2
    return seen


def test_trace_and_progress_go_to_init(monkeypatch, tmp_path):
    monkeypatch.delenv("DAGMPI_LOG_LEVEL", raising=False)
    script = tmp_path / "app.py"
    script.write_text("")
    seen = run_main_without_runtime(monkeypatch, ["--trace", "run.json", "--progress", "0", str(script), "x"])
    assert seen == {"trace": "run.json", "progress": "0"}
    seen = run_main_without_runtime(monkeypatch, ["run", "--transport", "inproc", "--workers", "3",
                                                  "--log-level", "debug", str(script), "--trace", "y"])
    assert seen == {"transport": "inproc", "workers": 3, "log_level": "DEBUG", "logging": "DEBUG"}
    Config.from_sources({"trace": "run.json", "progress": "0", "log_level": "DEBUG"}, environ={})


def test_what_follows_the_script_is_its_own():
    ns = cli._parser("dagmpi").parse_args(["--slots", "2", "app.py", "--help", "--trace", "z", "-m", "q"])
    assert ns.script == "app.py" and ns.args == ["--help", "--trace", "z", "-m", "q"]
    assert ns.slots == 2 and ns.trace is None and ns.module is None


def test_trace_command_forwards_the_rest(monkeypatch):
    calls = []
    fake = types.ModuleType("dagmpi.trace.cli")
    fake.main = lambda argv: calls.append(argv) or 3
    monkeypatch.setitem(sys.modules, "dagmpi.trace.cli", fake)
    assert cli.main(["trace", "gantt", "run.json", "-o", "run.png"]) == 3
    assert calls == [["gantt", "run.json", "-o", "run.png"]]


def test_trace_command_help_when_installed():
    try:
        import dagmpi.trace.cli  # noqa: F401
    except ImportError:
        pytest.skip("dagmpi.trace.cli is not there yet")
    r = dagmpi_cli("trace", "--help")
    assert r.returncode == 0 and "summary" in r.stdout and "gantt" in r.stdout, r


def test_variable_list_falls_back_to_names_and_defaults(monkeypatch):
    def no_source(obj):
        raise OSError("could not get source code")

    monkeypatch.setattr(cli.inspect, "getsource", no_source)
    docs = {name: (default, meaning) for name, default, meaning in cli.setting_docs()}
    assert docs["DAGMPI_TRANSPORT"] == ("auto", "") and docs["DAGMPI_TRACE"] == ('""', "")
    assert "DAGMPI_GRACE=10.0" in cli._epilog("dagmpi")


def test_meanings_are_first_sentences():
    docs = {name: meaning for name, _, meaning in cli.setting_docs()}
    assert docs["DAGMPI_RESOURCES"].endswith('e.g. "licence=2,scratch=100GB".')
    assert docs["DAGMPI_GC_THRESHOLD"].endswith("(0: leave Python's own, 700).")  # not "Rank 0 keeps..."
    assert docs["DAGMPI_SPIN_TIME"].endswith("than ranks).")
    assert all(m and "``" not in m for m in docs.values())


def test_arguments_after_a_module_belong_to_the_module(monkeypatch):
    """``python -m dagmpi [--trace F] -m pytest -p plugin -q``: -p and -q are pytest's."""
    import dagmpi.cli as cli

    seen = {}
    monkeypatch.setattr(cli.context, "init", lambda **kw: seen.update(kw))
    monkeypatch.setattr(cli, "_run_driver", lambda ns: seen.update(module=ns.module, args=ns.args) or 0)
    assert cli.main(["--trace", "t.json", "-m", "pytest", "-p", "plugin", "-q", "--trace"]) == 0
    assert seen["module"] == "pytest" and seen["args"] == ["-p", "plugin", "-q", "--trace"]
    assert seen["trace"] == "t.json"
