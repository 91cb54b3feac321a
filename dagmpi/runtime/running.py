"""Running a worker's jobs: the slots, inline runs on the comm thread, executor
threads, timeouts, and turning a raised exception into an error report.

A mixin of :class:`~dagmpi.runtime.worker.Worker`, which owns the state it
uses (``_runq``, ``_running``, ``_jobs_lock``, ``_done`` and the inline-run
fields, documented there); the worker's loop calls :meth:`JobRunner._start_jobs`.
"""

from __future__ import annotations

import logging
import threading
import time
import traceback
from typing import Any, Optional

from .. import serialize
from ..errors import ErrorInfo
from . import messages as msg
from .client import _CURRENT
from .jobs import SCHEDULER
from .jobs import Job as _Job

log = logging.getLogger(__name__)


class JobRunner:
    """Starting and running jobs (see the module docstring)."""

    def _start_jobs(self, until: float = 0.0) -> None:
        """Start queued jobs while slots are free.

        A job of a function known to be short (mean under ``inline_max``
        seconds here) runs inline on the comm thread: no thread hand-off, and
        its result leaves in the same batch.  Others, first runs, and jobs that
        arrive while an inline task waits in ``fetch`` go to executor threads,
        so a long task never stops this rank from serving its data.  Inline
        jobs run back to back until ``until`` (a ``perf_counter`` time).
        """
        runq = self._runq
        if self._preempt_until:
            return  # preempted: nothing new starts
        # -- memory pressure (see spill.Store.over_limit): spilling could not bring the
        # store under its limit; start nothing while a task runs (with none running,
        # run anyway: never a deadlock), and nap instead of spinning on the queue.
        if self.store.over_limit and self._running > 0 and runq:
            time.sleep(5e-4)
            return
        # --
        on_comm = threading.current_thread() is self._comm_thread
        while True:
            with self._jobs_lock:
                if not runq or self._running >= self.slots:
                    return
                job = runq.popleft()
                self._running += 1
                inline = on_comm and self._inlinable(job)
                if not inline:
                    self._threads_busy += 1
            if job.suspect:
                self._announce(job)
            if inline:
                self._run_inline(job, until)
                with self._jobs_lock:
                    self._running -= 1
                if job.loop is not None:
                    return  # (its value goes to the ranks reading it before the next job runs)
            else:
                self._executor.submit(job)

    def _inlinable(self, job: _Job) -> bool:
        """May ``job`` run inline on the comm thread now (call with ``_jobs_lock``)?

        Functions known to be short do; so do those of up to ``inline_idle_max``
        (a launch's points: ``inline_point_max``) while none of this rank's sends is
        in flight (a running inline task stops the loop, and a large send moves only
        while the loop calls MPI)."""
        if self._nested or self._helping or self._threads_busy or \
                not (job.policy is None or not job.policy[0] and job.policy[2] is None):
            return False
        t = self._fn_time.get(job.fn_id, 1.0)
        return t < self.inline_max or \
            t < (self.inline_idle_max if job.point is None else self.inline_point_max) and not self.transport.sending()

    def _announce(self, job: _Job) -> None:
        """Tell rank 0, before it runs, that a suspect job starts (it was on a rank
        that died): if this rank dies now, rank 0 knows it was running here."""
        self._send(SCHEDULER, msg.Started(job.id))
        self._flush()
        self.transport.flush()

    def _check_timeouts(self) -> float:
        """Report running jobs past their timeout; return the next deadline.

        Python cannot stop a call, so a timed-out call goes on in its thread.
        Its slot is handed to a replacement (the rank keeps running other work)
        while fewer than ``max_abandoned`` abandoned calls run here; past that
        bound the rank holds the slot, and rank 0 gives it no new work until
        a call returns.  Either way a warning says so at once.
        """
        now = time.perf_counter()
        nxt = now + 1.0
        expired = []
        with self._jobs_lock:
            for tid, (deadline, job) in list(self._timed.items()):
                if deadline <= now:
                    del self._timed[tid]
                    job.timed_out = True
                    if self._abandoned < self.max_abandoned:
                        job.replaced = True
                        self._abandoned += 1
                        self._running -= 1  # the slot goes on with other work
                    expired.append(job)
                else:
                    nxt = min(nxt, deadline)
        for job in expired:
            where = f"rank {self.rank} ({self.host})"
            if job.replaced:
                then = (f"the call could not be stopped and goes on in the background; {where} runs "
                        f"other tasks in a replacement slot ({self._abandoned} abandoned call(s) "
                        f"running there, at most {self.max_abandoned})")
            else:
                then = (f"the call could not be stopped and goes on; {where} already runs "
                        f"{self.max_abandoned} abandoned calls, so it takes no new tasks until one returns")
            exc = TimeoutError(f"task {job.name!r} ran longer than its timeout of {job.policy[2]:g} s "
                               f"on {where}; {then}")
            log.warning("%s", exc)
            self._done.append(("timeout", job, self._error_info(job, exc), self._retryable(job, exc)))
        if expired:
            self.transport.wakeup()
        return nxt

    def _run_inline(self, job: _Job, until: float) -> None:
        """Run ``job`` on the comm thread, which holds the loop lock: release it
        meanwhile so the monitor can take over if the job runs long.  Queued jobs
        that may run inline follow in the same slot until ``until``."""
        runq = self._runq
        self._loop_lock.release()
        try:
            while True:
                self._inline_job = job
                self._inline_count += 1
                self._inline_t0 = t0 = time.perf_counter()
                if job.point is None and self._fn_time.get(job.fn_id, 0.0) > self.help_after:
                    # the monitor serves the loop while it runs (not for a launch's point:
                    # what other ranks ask of it was asked ahead, and is sent when it returns)
                    self._help_now.set()
                self._execute(job)
                if self._helping:  # the monitor drives the loop: it gives it back now
                    self._inline_job = None
                    self.transport.wakeup()
                if t0 > until or job.id in self._awaits or job.loop is not None:
                    return  # (a rank waits for this value, or a loop's push: the loop sends it now)
                with self._jobs_lock:
                    if not runq or self._preempt_until or runq[0].suspect or not self._inlinable(runq[0]):
                        return  # (a suspect is announced first: _start_jobs does that)
                    job = runq.popleft()  # keeps this slot (``_running`` is unchanged)
        finally:
            self._loop_lock.acquire()
            self._inline_job = None

    def _run_jobs(self, job: _Job) -> None:
        """An executor thread: run ``job``, then keep taking queued jobs while
        this slot is still ours, so a queue of short tasks costs no thread
        hand-off per task.  Results are handed to the comm loop in batches: it is
        woken when this thread runs out of work, when many results wait, or
        when the oldest waiting result is ``flush_after`` seconds old."""
        runq, done = self._runq, self._done
        while True:
            self._execute(job)
            awaited = job.id in self._awaits  # another rank waits for this value: send it now
            with self._jobs_lock:
                if job.replaced:  # timed out: a replacement took this slot; this thread goes
                    self._abandoned -= 1
                    self._threads_busy -= 1
                    job = None
                elif runq and self._running <= self.slots and not self._preempt_until \
                        and not runq[0].suspect:  # (the comm thread announces those)
                    job = runq.popleft()
                else:
                    self._running -= 1
                    self._threads_busy -= 1
                    job = None
            now = time.perf_counter()
            if len(done) == 1:
                self._oldest_result = now
            if job is None or awaited or len(done) >= 256 or now - self._oldest_result >= self.flush_after:
                self.transport.wakeup()
            if job is None:
                return

    # ------------------------------------------------ on executor threads

    def _execute(self, job: _Job) -> None:
        tls = self._tls
        tls.task_id = job.id
        if _CURRENT.client is not self:
            _CURRENT.client = self
        t0 = time.perf_counter()
        timeout = job.policy[2] if job.policy is not None else None
        if timeout is not None:
            with self._jobs_lock:
                self._timed[job.id] = (t0 + timeout, job)
        try:
            if job.failed is not None:
                raise RuntimeError(job.failed)
            gpu = self._gpu
            on_gpu = job.needs is not None and "gpu" in job.needs and gpu is not None
            if gpu is not None:
                gpu.use()  # (an array task without gpu=True may still work on this rank's GPU blocks)
            fn = self.fn_cache[job.fn_id]
            if isinstance(fn, bytes):
                fn = self.fn_cache[job.fn_id] = serialize.load_function(fn)
            call = job.call
            args, kwargs = serialize.load_args(job.payload, job.buffers, job.inputs if call is None else {})
            if call is not None:  # a launch's point: fn(index, *shared args, *its inputs)
                got = job.inputs
                args = (call[0], *args, *[got[d] for d in call[1]])
            if call is None or job.policy is None or job.attempt > job.policy[0]:
                job.inputs = job.payload = job.buffers = None  # (a point that may run again keeps them)
            if gpu is not None and (job.policy is None or len(job.policy) < 4 or job.policy[3]):
                # arrays arrive in the memory of the processor the task runs on (move=True)
                from ..gpu.backend import place

                args, kwargs = place(args, kwargs, gpu, on_gpu)
            value = fn(*args, **kwargs)
            del args, kwargs
            lp = job.loop
            carry = lp is not None and lp[0].share is not None and lp[1] < lp[0].steps - 1
            if carry:
                # a loop's carry form: the value stays here for the point's next step, and
                # what its readers get (and what travels) is its share
                own = value
                share = lp[0].share
                if type(share) is bytes:  # (unpickled on the thread that runs tasks, as functions are)
                    share = lp[0].share = serialize.load_function(share)
                value = share(call[0], own)
            seconds = time.perf_counter() - t0
            if self.serializes:
                payload, buffers = serialize.dump_value(value)
                nbytes = len(payload) + serialize.buffers_nbytes(buffers) if buffers else len(payload)
                result: Any = (value, payload, buffers)
                dev = serialize.device_nbytes(buffers) if gpu is not None and buffers else 0
            else:
                nbytes = serialize.sizeof(value)
                result = value
                dev = 0
            if carry:
                result = (own, result)
            # (bytes in GPU memory count against the GPU's gpu_memory while the value is kept)
            item: tuple = ("fin", job, result, (nbytes, seconds, dev) if dev else (nbytes, seconds))
        except BaseException as exc:  # noqa: BLE001 - every failure goes back to the caller
            item = ("err", job, self._error_info(job, exc), self._retryable(job, exc))
        finally:
            tls.task_id = None
        if self.trace_runs is not None:
            ok = item[0] == "fin"
            self._trace_run(job, t0, t0 + item[3][1] if ok else time.perf_counter(), item[3][0] if ok else 0, ok)
        if timeout is not None:
            with self._jobs_lock:  # decides, with _check_timeouts, which outcome is reported
                self._timed.pop(job.id, None)
                if job.timed_out:
                    item = ("late", job, None, None)
        self._done.append(item)

    def _retryable(self, job: _Job, exc: BaseException) -> bool:
        """May rank 0 run ``job`` again after ``exc``?  (Its ``retry_on`` types.)"""
        if job.policy is None or not job.policy[0]:
            return False
        types: Any = Exception
        if job.policy[1] is not None:
            types = self._retry_types.get(job.policy[1])
            if types is None:
                try:
                    types = self._retry_types[job.policy[1]] = serialize.load_function(job.policy[1])
                except Exception:  # the classes cannot be loaded here: retry on anything
                    types = Exception
        return isinstance(exc, types)

    def _error_info(self, job: _Job, exc: BaseException) -> ErrorInfo:
        from ..errors import from_task_function  # (errors are rare: imported here, when used)

        # the traceback starts at the task's function: this file's frames are no news to the user
        frames = from_task_function(exc.__traceback__, __file__)
        tb = "".join(traceback.format_exception(type(exc), exc, frames))
        try:
            exc_bytes: Optional[bytes] = serialize.dump_value(exc)[0]
        except Exception:  # an exception that will not pickle travels as text
            exc_bytes = None
        attempts = 1 + (job.policy[0] if job.policy is not None else 0)
        return ErrorInfo(job.id, job.name, type(exc).__qualname__, str(exc), tb, self.rank,
                         self.host, exc_bytes, job.attempt, attempts)
