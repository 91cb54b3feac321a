"""Stable content keys of tasks, for checkpoints.

A key is a SHA-256 over: the function's module and qualified name plus a
fingerprint of its code (bytecode, constants and names, recursively), so an
edited function does not restore stale results; the arguments, pickled with
numpy arrays hashed by content and argument Tasks replaced by *their* keys;
and the options that change the value (none today).  The same script rerun
therefore finds the same keys.  ``Options(key="...")`` overrides it.

Not stable across runs: arguments whose pickle depends on hash randomisation
(sets of strings) or on object identity; give such tasks an explicit ``key=``.
"""

from __future__ import annotations

import hashlib
import io
import pickle
import types
from typing import Any, Callable, Optional

import cloudpickle

from ..errors import SerializationError
from ..serialize import _SIMPLE, _plain
from ..task import Launch, Point, Task

_FP_CACHE: dict[Any, bytes] = {}


def _code_digest(code: types.CodeType, h: Any) -> None:
    h.update(code.co_code)
    h.update(repr(code.co_names).encode())
    for c in code.co_consts:
        if isinstance(c, types.CodeType):
            _code_digest(c, h)
        else:
            h.update(repr(c).encode())


def function_fingerprint(fn: Callable) -> bytes:
    """Module, qualified name and code of ``fn`` (cached per function object)."""
    try:
        hit = _FP_CACHE.get(fn)
    except TypeError:
        hit = None
    if hit is not None:
        return hit
    h = hashlib.sha256()
    target = getattr(fn, "__wrapped__", fn)
    h.update(f"{getattr(target, '__module__', '')}.{getattr(target, '__qualname__', type(target).__name__)}"
             .encode())
    code = getattr(target, "__code__", None)
    if code is not None:
        _code_digest(code, h)
        for d in getattr(target, "__defaults__", None) or ():
            h.update(repr(d).encode())
    out = h.digest()
    try:
        _FP_CACHE[fn] = out
    except TypeError:
        pass
    return out


class _KeyPickler(cloudpickle.CloudPickler):
    def __init__(self, file: io.BytesIO, buffers: list) -> None:
        super().__init__(file, protocol=5, buffer_callback=buffers.append)
        self._task_type = Task

    def persistent_id(self, obj: Any) -> Optional[str]:
        if type(obj) is Launch:
            if obj._key is None:
                raise SerializationError(f"argument {obj!r} has no checkpoint key (it was launched before "
                                         "checkpointing was enabled, or on another rank)")
            return "launch:" + obj._key
        if type(obj) is self._task_type or type(obj) is Point:
            key = obj._key
            if key is None:
                raise SerializationError(
                    f"argument {obj!r} has no checkpoint key (it was spawned before checkpointing "
                    "was enabled, or on another rank); give this task an explicit key=")
            return "task:" + key
        return None


class _FastKeyPickler(pickle.Pickler):
    def __init__(self, file: io.BytesIO, buffers: list) -> None:
        super().__init__(file, protocol=5, buffer_callback=buffers.append)
        self._task_type = Task

    persistent_id = _KeyPickler.persistent_id


def task_key(fn: Callable, args: tuple, kwargs: dict, user_key: Optional[str] = None) -> str:
    """The key of a task calling ``fn(*args, **kwargs)`` (argument Tasks by their ``_key``)."""
    if user_key is not None:
        return "u" + hashlib.sha256(b"user:" + user_key.encode()).hexdigest()[:39]
    h = hashlib.sha256(function_fingerprint(fn))
    if all(type(a) in _SIMPLE for a in args) and all(type(v) in _SIMPLE for v in kwargs.values()):
        h.update(pickle.dumps((args, kwargs), 5))
        return "k" + h.hexdigest()[:39]
    f = io.BytesIO()
    buffers: list = []
    if _plain(args, 0) and _plain(kwargs, 0):
        _FastKeyPickler(f, buffers).dump((args, kwargs))  # same bytes for the same data, cheaper
    else:
        _KeyPickler(f, buffers).dump((args, kwargs))
    h.update(f.getvalue())
    for b in buffers:
        h.update(b.raw())
    return "k" + h.hexdigest()[:39]
