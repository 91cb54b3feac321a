"""Starting and stopping the runtime of this process, and finding the current client.

``init()`` decides the mode once per process:

* **MPI** (started by ``mpiexec``/``srun``, or ``transport="mpi"``) with two or
  more ranks: rank 0 gets a :class:`~dagmpi.runtime.driver.Driver` and returns to the
  caller; every other rank becomes a :class:`~dagmpi.runtime.worker.Worker`, serves
  until rank 0 stops it, and exits with status 0 (``init`` never returns there).
* **Embedded** (no launcher, ``transport="inproc"``, or a single MPI rank):
  the driver and ``workers`` worker ranks are threads of this process.
"""

from __future__ import annotations

import atexit
import gc
import logging
import os
import signal
import sys
import threading
import time
import traceback
from typing import Any, Optional

from ..gpu import devices
from . import messages as msg
from .client import _CURRENT, Client
from ..checkpoint.base import CheckpointError
from ..config import Config
from ..errors import DagmpiError
from ..task import set_client_finder

log = logging.getLogger(__name__)

#: Environment variables that MPI launchers (Hydra, PMI-2 srun, PMIx, Open MPI) set.
LAUNCHER_VARS = ("PMI_RANK", "PMI_SIZE", "PMI_FD", "PMIX_RANK", "OMPI_COMM_WORLD_SIZE",
                 "MPI_LOCALRANKID", "HYDI_CONTROL_FD")


class _Runtime:
    def __init__(self, mode: str, config: Config, driver: Any, transport: Any, threads: list) -> None:
        self.mode = mode
        self.config = config
        self.driver = driver
        self.transport = transport
        self.threads = threads


_lock = threading.RLock()
_runtime: Optional[_Runtime] = None


def launched_by_mpi(environ: Optional[dict] = None) -> bool:
    """True when this process was started by an MPI launcher."""
    environ = os.environ if environ is None else environ
    return any(v in environ for v in LAUNCHER_VARS)


def launcher_rank(environ: Optional[dict] = None) -> int:
    """This process's rank according to the launcher's variables (0 if unknown)."""
    environ = os.environ if environ is None else environ
    for v in ("PMI_RANK", "PMIX_RANK", "OMPI_COMM_WORLD_RANK", "SLURM_PROCID"):
        if v in environ:
            try:
                return int(environ[v])
            except ValueError:
                pass
    return 0


class StartupError(DagmpiError):
    """The runtime could not start (a bad setting, a checkpoint folder that cannot be
    used, a rank that failed to set up).  Under MPI every rank raises it together;
    ``report`` is true on the one rank that should print it (rank 0), so a job
    says it once, not once per rank."""

    def __init__(self, message: str, report: bool = True) -> None:
        super().__init__(message)
        self.report = report


def init(**kwargs: Any) -> Any:
    """Start dagmpi in this process (idempotent); see :func:`dagmpi.init`."""
    global _runtime
    with _lock:
        if _runtime is not None:
            if kwargs:
                _reconfigure(_runtime, kwargs)
            return _runtime.driver
        problem = None
        try:
            config = Config.from_sources(kwargs)
        except (TypeError, ValueError) as exc:
            # under MPI the other ranks must hear of it (they would wait for this one)
            config, problem = Config(), str(exc)
        if problem is None and launcher_rank() == 0:
            for line in config.warnings():
                log.warning("%s", line)
        set_client_finder(current_client)
        transport = config.transport if problem is None else _env_transport()
        use_mpi = transport == "mpi" or (transport == "auto" and launched_by_mpi())
        if use_mpi:
            try:
                _runtime = _start_mpi(config, problem)
            except StartupError as exc:
                if exc.report:
                    raise
                # rank 0 says what failed (once, for every rank); this rank just ends
                sys.stdout.flush()
                sys.stderr.flush()
                raise SystemExit(2) from None
        elif problem is not None:
            raise StartupError(problem)
        else:
            _runtime = _start_embedded(config)
        atexit.register(_atexit_shutdown)
        if _runtime.driver is not None and log.isEnabledFor(logging.INFO):
            log.info("%s", startup_line(_runtime))
        return _runtime.driver


def startup_line(rt: "_Runtime") -> str:
    """One line: ranks, MPI library, transport, slots, GPUs, checkpoint, trace (INFO at start)."""
    driver = rt.driver
    try:
        offers = driver.joined(timeout=rt.config.join_timeout)
    except TimeoutError:
        offers = dict(driver.offers)
    mpi = "no MPI (in-process)"
    if rt.mode != "embedded":
        try:
            from ..transport.mpi import library_info

            mpi = " ".join(library_info()["library"].split())
        except Exception as exc:  # noqa: BLE001 - a line of information only
            mpi = f"MPI ({exc})"
    slots = sorted({o.get("cpu", 1) for o in offers.values()})
    gpus = sum(o.get("gpu", 0) for o in offers.values())
    ckpt = driver.ckpt_dir or "off"
    if driver.ckpt_index is not None and len(driver.ckpt_index):
        ckpt += f" ({len(driver.ckpt_index)} saved results found)"
    return (f"dagmpi started: {len(driver.worker_ranks) + (0 if rt.mode == 'embedded' else 1)} ranks "
            f"({rt.mode}: driver + {len(offers)} worker{'s' if len(offers) != 1 else ''}), {mpi}, "
            f"transport {rt.transport.name}, slots per worker {'/'.join(map(str, slots)) or '?'}, "
            f"GPUs {gpus}, checkpoint {ckpt}, trace {driver.tracer.path if driver.tracer else 'off'}")


def _env_transport() -> str:
    t = os.environ.get("DAGMPI_TRANSPORT", "auto")
    return t if t in ("auto", "mpi", "inproc") else "auto"


#: Seconds a worker spins for a reply on a node with more ranks than cores
#: (rank 0 does not spin there; elsewhere ranks spin the transport's ``spin_time``).
OVERSUBSCRIBED_SPIN = 3e-4

#: Settings a script's own ``dagmpi.init(...)`` may still change after the launcher
#: (``python -m dagmpi``) started the runtime, as long as no task was spawned.
_LATE_SETTINGS = frozenset({"checkpoint", "checkpoint_policy", "retries", "grace", "slots", "resources",
                            "trace", "progress"})
#: Settings that only mean something in one mode (ignored in the other, as by a first ``init``).
_EMBEDDED_ONLY = frozenset({"workers"})


def _reconfigure(rt: "_Runtime", kwargs: dict) -> None:
    """A second ``init(**kwargs)`` (a script's own, after ``python -m dagmpi`` started
    the runtime): apply what can still change, refuse the rest with the reason."""
    try:
        new = Config.from_sources(kwargs)
    except (TypeError, ValueError) as exc:
        raise StartupError(str(exc)) from None
    changed = sorted(k for k in kwargs if getattr(new, k) != getattr(rt.config, k)
                     and not (rt.mode != "embedded" and k in _EMBEDDED_ONLY))
    if not changed:
        return
    driver = rt.driver
    fixed = [k for k in changed if k not in _LATE_SETTINGS]
    if fixed:
        names = ", ".join(f"{k}=" for k in fixed)
        envs = ", ".join(f"DAGMPI_{k.upper()}" for k in fixed)
        raise StartupError(
            f"dagmpi.init({names}...): the runtime was already started (by python -m dagmpi) "
            f"before the script ran, and {', '.join(fixed)} cannot change once it runs; set "
            f"{envs} in the job's environment, or start the script without python -m dagmpi "
            f"(mpiexec ... python app.py) so that its init() starts the runtime")
    if driver is None or driver.scheduler.n_submitted or any(
            type(m) in (msg.Submit, msg.Restored) for m in list(driver._outq)):
        raise StartupError(
            f"dagmpi.init({', '.join(k + '=' for k in changed)}...) after tasks were spawned: "
            f"settings can only change before the first spawn; call init() at the top of the script")
    if ("slots" in changed or "resources" in changed) and rt.mode != "embedded":
        try:  # check the text here, once, before any worker sees it
            devices.offers(max(1, new.slots), new.resources, {})
        except ValueError as exc:
            raise StartupError(str(exc)) from None
    rt.config = rt.config.replace(**{k: getattr(new, k) for k in changed})
    driver.default_retries = rt.config.retries
    driver.array_launches = bool(rt.config.array_launches)
    driver.grace = rt.config.grace
    try:
        _setup_checkpoint(driver, rt.config)
    except CheckpointError as exc:
        raise StartupError(str(exc)) from None
    if "slots" in changed or "resources" in changed:
        _resize_workers(rt, driver)
    if "trace" in changed and rt.config.trace:
        driver.start_tracing(rt.config.trace)
    driver._outq.append(msg.ConfigureAll())
    driver.wakeup()


def _resize_workers(rt: "_Runtime", driver: Any) -> None:
    """New ``slots``/``resources`` for every worker rank: each takes them and says
    hello again; wait until all have (placement checks at spawn use the new offers)."""
    cfg = rt.config
    if rt.mode == "embedded":
        slots = cfg.slots or max(1, (os.cpu_count() or 1) // cfg.workers)
    else:
        slots = cfg.slots or 1
    driver.resize_workers(slots, cfg.resources)


def _start_embedded(config: Config) -> _Runtime:
    from .driver import Driver
    from ..transport.inproc import InprocHub
    from .spill import resolve_limit
    from .worker import Worker

    n = config.workers
    hub = InprocHub(n + 1)
    ranks = range(1, n + 1)
    slots = config.slots or max(1, (os.cpu_count() or 1) // n)
    driver = Driver(hub.endpoints[0], ranks, prefetch=config.prefetch)
    driver.default_retries = config.retries
    driver.array_launches = bool(config.array_launches)
    driver.grace = config.grace
    _setup_checkpoint(driver, config)
    if config.trace:
        driver.start_tracing(config.trace)
    threads = []
    for r in ranks:
        # in-process workers share this node's GPUs and memory like n local ranks
        env = {**os.environ, "MPI_LOCALRANKID": str(r - 1), "MPI_LOCALNRANKS": str(n)}
        res, gpus = devices.offers(slots, config.resources, env)
        w = Worker(hub.endpoints[r], ranks, slots=slots, resources=res, gpus=gpus,
                   memory_limit=resolve_limit(config.memory_limit, env), spill_dir=config.spill_dir)
        w.default_retries = config.retries
        w.array_launches = bool(config.array_launches)
        w.checkpoint_interval = config.checkpoint_interval
        t = threading.Thread(target=_serve_inproc, args=(w,), name=f"dagmpi-worker{r}", daemon=True)
        threads.append(t)
        t.start()
    driver.on_preempted = _exit_now
    driver.start()
    _install_embedded_hook()
    _install_signal_handlers(driver)
    return _Runtime("embedded", config, driver, hub.endpoints[0], threads)


def _setup_checkpoint(driver: Any, config: Config) -> None:
    """Rank 0: index the checkpoint directory (a rerun restores what it holds)."""
    if not config.checkpoint:
        return
    from ..checkpoint.hdf5 import scan

    directory = os.path.abspath(config.checkpoint)
    _check_checkpoint_folder(config.checkpoint, directory)
    index = scan(directory, verify=True)  # damaged values are left out: their tasks run again
    for w in index.warnings:
        log.warning("checkpoint: %s", w)
    if len(index):
        log.info("checkpoint %s: %d saved results in %d files", directory, len(index), len(index.files))
    driver.ckpt_index = index
    driver.ckpt_dir = directory
    driver.checkpointing = True
    driver.checkpoint_all = config.checkpoint_policy == "all"


def _check_checkpoint_folder(given: str, directory: str) -> None:
    """The checkpoint folder exists (or is made now) and this process can write there."""
    what = f"the checkpoint folder {given!r} (checkpoint= / DAGMPI_CHECKPOINT)"
    if os.path.exists(directory) and not os.path.isdir(directory):
        raise CheckpointError(f"{what} is a file, not a folder: give the path of a folder "
                              f"(it is created if missing)")
    try:
        os.makedirs(directory, exist_ok=True)
    except OSError as exc:
        raise CheckpointError(f"{what} cannot be created: {exc.strerror or exc} "
                              f"({exc.filename or directory}); give a folder you can write to") from None
    if not os.access(directory, os.W_OK | os.X_OK):
        raise CheckpointError(f"{what} is not writable by this user: give a folder you can write to")


def _serve_inproc(worker: Any) -> None:
    try:
        worker.run()
    except BaseException:
        sys.stderr.write(f"dagmpi: worker rank {worker.rank} failed; aborting\n{traceback.format_exc()}")
        worker.transport.abort(1)


def _init_watchdog(timeout: float) -> Any:
    """End this process if MPI's start-up takes over ``timeout`` seconds; call the returned
    function once it is done.

    MPI_Init waits for every rank of the job, so a rank that failed before it (a crashed
    import, a broken environment on one node) leaves the others in it for ever under
    launchers that do not end the job when one process exits (MPICH's hydra).  mpi4py
    holds the GIL in MPI_Init, so no Python thread of this process can act: a forked
    watchdog process (forked before MPI exists) says what happened and ends this one.
    """
    if not hasattr(os, "fork"):
        return lambda: None
    parent = os.getpid()
    child = os.fork()
    if child == 0:  # the watchdog: sleeps, then speaks and ends its parent
        try:
            time.sleep(timeout)
            os.write(2, (f"dagmpi: rank {launcher_rank()}: MPI did not start within {timeout:g} s (another "
                         f"rank of the job failed or exited before starting dagmpi: see its output; "
                         f"DAGMPI_JOIN_TIMEOUT sets the wait); ending the job\n").encode())
            os.kill(parent, signal.SIGKILL)
        finally:
            os._exit(0)

    def done() -> None:
        try:
            os.kill(child, signal.SIGKILL)
            os.waitpid(child, 0)
        except OSError:
            pass

    return done


def _start_mpi(config: Config, problem: Optional[str] = None) -> _Runtime:
    """Start this rank under MPI.  Every rank first sets up what it alone can check
    (rank 0: the driver and checkpoint folder; workers: resources, devices), then all
    ranks compare notes: if any failed, every rank raises :class:`StartupError`
    together (rank 0 reports it once) instead of leaving the others waiting."""
    if "mpi4py.MPI" in sys.modules:
        watchdog_done = lambda: None  # noqa: E731 - MPI already started (the script imported mpi4py)
    else:
        watchdog_done = _init_watchdog(config.join_timeout)
    try:
        from ..transport.mpi import MPITransport  # MPI_Init: waits for every rank of the job
    except ImportError as exc:
        raise StartupError(str(exc), report=launcher_rank() == 0) from exc
    finally:
        watchdog_done()
    tr = MPITransport(poll_max=config.poll_max, join_timeout=config.join_timeout)
    if config.spin_time >= 0:
        tr.spin_time = config.spin_time
    elif tr.oversubscribed:
        # rank 0 waits on workers that need the cores it would spin on; a worker
        # waiting for an input spins briefly: long enough to catch a reply that
        # follows at once, not so long that it slows the ranks computing
        # (Task Bench on 2 cores: 3 ms of spin made METG 3x worse)
        tr.spin_time = 0.0 if tr.rank == 0 else OVERSUBSCRIBED_SPIN
    if config.gc_threshold:
        # an MPI rank is dagmpi's process: collect young objects less often
        # (each collection walks them; rank 0 holds several per live task)
        gc.set_threshold(config.gc_threshold, *gc.get_threshold()[1:])
    if tr.size == 1:
        if problem is not None:
            raise StartupError(problem)
        log.info("one MPI rank: running the embedded runtime on it")
        try:
            rt = _start_embedded(config)
        except (ValueError, CheckpointError) as exc:
            raise StartupError(str(exc)) from None
        rt.mode = "mpi-1"
        return rt
    ranks = range(1, tr.size)
    made: Any = None
    if problem is None:
        try:
            made = _prepare_driver(tr, ranks, config) if tr.rank == 0 else _prepare_worker(tr, ranks, config)
        except Exception as exc:  # noqa: BLE001 - every failure is reported, below
            problem = _describe(exc)
    _agree_or_fail(tr, problem)
    if tr.rank == 0:
        driver = made
        _install_abort_hook(tr)
        _install_signal_handlers(driver)
        driver.start()
        return _Runtime("mpi", config, driver, tr, [])
    _serve_mpi(tr, made, config)
    raise AssertionError("not reached")


def _describe(exc: BaseException) -> str:
    if isinstance(exc, (ValueError, TypeError, DagmpiError)):
        return str(exc)
    log.debug("start-up failure", exc_info=exc)
    return f"{type(exc).__name__}: {exc}"


def _agree_or_fail(tr: Any, problem: Optional[str]) -> None:
    """Collective: every rank learns what failed on any rank at start-up; if anything
    did, every rank raises :class:`StartupError` (only rank 0 with ``report``)."""
    problems = tr.allgather(problem)
    if not any(p is not None for p in problems):
        return
    by_text: dict[str, list[int]] = {}
    for r, p in enumerate(problems):
        if p is not None:
            by_text.setdefault(p, []).append(r)
    lines = [f"{'rank' if len(rs) == 1 else 'ranks'} {_ranks_text(rs)}: {p}" for p, rs in by_text.items()]
    text = ("dagmpi could not start; " + lines[0]) if len(lines) == 1 else \
        "dagmpi could not start:\n  " + "\n  ".join(lines)
    tr.close()
    raise StartupError(text, report=tr.rank == 0)


def _ranks_text(ranks: list[int]) -> str:
    out, start = [], None
    for i, r in enumerate(ranks):
        if start is None:
            start = r
        if i + 1 == len(ranks) or ranks[i + 1] != r + 1:
            out.append(str(start) if start == r else f"{start}-{r}")
            start = None
    return ",".join(out)


def _prepare_driver(tr: Any, ranks: range, config: Config) -> Any:
    from .driver import Driver

    driver = Driver(tr, ranks, prefetch=config.prefetch)
    driver.default_retries = config.retries
    driver.array_launches = bool(config.array_launches)
    driver.grace = config.grace
    _setup_checkpoint(driver, config)
    if config.trace:
        driver.start_tracing(config.trace)
    return driver


def _limit_native_threads(slots: int) -> None:
    """BLAS/OpenMP threads of a worker rank = its slots: several ranks on one node
    each running an all-cores BLAS would oversubscribe the cores.  The variables
    reach libraries loaded later (scipy's own OpenBLAS loads on first use), the
    threadpoolctl call those loaded already; a user's own setting is kept."""
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS"):
        os.environ.setdefault(var, str(slots))
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # an optional nicety on a site install without it
        return
    threadpool_limits(limits=slots)


#: glibc's mallopt parameters: M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD.
_MALLOPT = ((-1, 4 << 30), (-2, 256 << 20), (-3, 4 << 30))


def _keep_freed_memory() -> None:
    """Let glibc reuse freed block-sized memory instead of returning it to the OS.

    By default glibc serves every allocation above 32 MiB with a fresh ``mmap`` and
    unmaps it on free, so each new block a task makes is page-faulted in again
    (measured: half the time of a 2048^2 stencil step).  Workers keep freed memory
    for reuse (their peak stays mapped; values past ``memory_limit`` still spill).
    Skipped where the user set any ``MALLOC_*_`` variable, or without glibc."""
    if any(k.startswith("MALLOC_") for k in os.environ):
        return
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        for param, value in _MALLOPT:
            libc.mallopt(param, ctypes.c_int(min(value, 2**31 - 1)))
    except (OSError, AttributeError):
        return


def _prepare_worker(tr: Any, ranks: range, config: Config) -> Any:
    from .spill import resolve_limit
    from .worker import Worker

    slots = config.slots or 1
    _limit_native_threads(slots)
    _keep_freed_memory()
    res, gpus = devices.offers(slots, config.resources)
    worker = Worker(tr, ranks, slots=slots, resources=res, gpus=gpus,
                    memory_limit=resolve_limit(config.memory_limit), spill_dir=config.spill_dir)
    worker.default_retries = config.retries
    worker.array_launches = bool(config.array_launches)
    worker.checkpoint_interval = config.checkpoint_interval
    return worker


def _serve_mpi(tr: Any, worker: Any, config: Config) -> None:
    """Worker rank: serve, then exit 0; abort the job on any internal error."""
    global _runtime
    _install_signal_handlers(worker)
    _ignore_interrupts()
    _guard_os_exit(tr)
    _runtime = _Runtime("mpi-worker", config, None, tr, [])
    _CURRENT.client = worker
    try:
        worker.run()
        tr.close()
    except BaseException:
        if getattr(tr, "fault_tolerant", False):
            # ULFM: this rank alone goes; rank 0 sees it die and carries on without it.
            # (SIGKILL, not exit(1): a rank that exits non-zero or fails in
            # MPI_Finalize leaves the survivors waiting for it.)
            sys.stderr.write(f"dagmpi: worker rank {tr.rank} failed; it ends itself (SIGKILL) and the "
                             f"job goes on without it\n{traceback.format_exc()}")
            sys.stderr.flush()
            os.kill(os.getpid(), 9)
        sys.stderr.write(f"dagmpi: worker rank {tr.rank} failed; aborting the job\n{traceback.format_exc()}")
        tr.abort(1)
    sys.stdout.flush()
    sys.stderr.flush()
    sys.exit(0)


def _guard_os_exit(tr: Any) -> None:
    """A task that calls ``os._exit`` on a worker: say which rank goes, and how.

    Under ULFM the rank ends with SIGKILL instead: Open MPI notices a rank that
    is killed, but not one that exits without ``MPI_Finalize`` (the survivors
    would wait for it forever).  Otherwise the rank calls ``MPI_Abort``, which
    ends the job at once: left to MPICH's launcher to notice the exit, a job
    once went on for over 60 s.  A process forked by a task (``multiprocessing``)
    exits as it asked.
    """
    real_exit = os._exit
    host = __import__("socket").gethostname()
    pid = os.getpid()
    rank, fault_tolerant = tr.rank, bool(getattr(tr, "fault_tolerant", False))

    def _exit(code: int) -> None:  # noqa: ANN001 - same signature as os._exit
        if os.getpid() != pid:  # a child a task forked: not this rank
            real_exit(code)
        try:
            sys.stdout.flush()
            then = ("it ends with SIGKILL and the job goes on without it" if fault_tolerant else
                    "the job ends (no ULFM; resume from the checkpoint)")
            sys.stderr.write(f"dagmpi: worker rank {rank} (pid {os.getpid()} on {host}) called "
                             f"os._exit({code}) in a task; {then}\n")
            sys.stderr.flush()
        finally:
            if fault_tolerant:
                os.kill(os.getpid(), 9)
            try:
                tr.abort(code or 1)  # (pauses for the launcher to pass the line above on)
            finally:
                real_exit(code)

    os._exit = _exit


def _exit_now(code: int) -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _install_signal_handlers(client: Any) -> None:
    """SIGTERM and SIGUSR1 (Slurm's preemption, time limit and ``--signal``)
    preempt the run: rank 0 coordinates, every rank saves its checkpoint, and
    the job exits with status 75 (see ``dagmpi.checkpoint.base.EXIT_PREEMPTED``)."""
    import signal

    if threading.current_thread() is not threading.main_thread():
        return
    for sig in (signal.SIGTERM, signal.SIGUSR1):
        try:
            signal.signal(sig, lambda signum, frame: client.note_signal(signum))
        except (ValueError, OSError):  # not allowed here (embedded in another framework)
            pass


def _ignore_interrupts() -> None:
    """A worker rank ignores Ctrl-C (SIGINT, which launchers send to every rank):
    rank 0 ends the job, with one message instead of a traceback per rank."""
    import signal

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)


def _install_abort_hook(tr: Any) -> None:
    """An uncaught exception on rank 0 aborts every rank instead of hanging them."""
    previous = sys.excepthook

    def hook(typ: Any, value: Any, tb: Any) -> None:
        if issubclass(typ, KeyboardInterrupt):
            sys.stderr.write("dagmpi: interrupted (Ctrl-C); ending the job\n")
            tr.abort(130)
        if previous is sys.__excepthook__ and value is not None:  # Python's own: the user's frames only
            from ..errors import format_user_traceback

            sys.stderr.write(format_user_traceback(value.with_traceback(tb)))
        else:
            previous(typ, value, tb)
        sys.stderr.write("dagmpi: uncaught exception on rank 0; aborting the job\n")
        tr.abort(1)

    sys.excepthook = hook


def shutdown() -> None:
    """Wait for all tasks, stop the workers and the runtime (rank 0)."""
    global _runtime
    with _lock:
        rt = _runtime
        if rt is None or rt.driver is None:
            return
        rt.driver.shutdown()
        for t in rt.threads:
            t.join(timeout=10)
        if rt.mode == "mpi":
            rt.transport.close()
        _runtime = None


def abandon() -> None:
    """Forget the runtime without waiting for its tasks (the script failed).

    Embedded: the daemon threads die with the process.  MPI: the caller aborts.
    """
    global _runtime
    with _lock:
        if _runtime is not None and _runtime.driver is not None:
            _runtime.driver.closed = True
        _runtime = None


def _install_embedded_hook() -> None:
    """An uncaught exception in an embedded script exits at once, not after its tasks."""
    previous = sys.excepthook

    def hook(typ: Any, value: Any, tb: Any) -> None:
        abandon()
        previous(typ, value, tb)

    sys.excepthook = hook


def _atexit_shutdown() -> None:
    try:
        shutdown()
    except BaseException:
        sys.stderr.write(f"dagmpi: shutdown at exit failed\n{traceback.format_exc()}")
        rt = _runtime
        if rt is not None and rt.mode == "mpi":
            rt.transport.abort(1)


def current_client() -> Client:
    """The client for this thread: the running task's worker, else the driver (auto-init)."""
    c = _CURRENT.client
    if c is not None:
        return c
    rt = _runtime
    if rt is not None and rt.driver is not None:
        return rt.driver
    driver = init()
    if driver is None:
        raise RuntimeError("dagmpi: no client on this rank")
    return driver


def runtime_info() -> dict[str, Any]:
    rt = _runtime
    if rt is None:
        return {"mode": None}
    d = rt.driver
    c = _CURRENT.client or d
    return {"mode": rt.mode, "transport": rt.transport.name, "size": rt.transport.size,
            "rank": c.rank if c is not None else getattr(rt.transport, "rank", None),
            "workers": sorted(d.worker_ranks) if d else None}
