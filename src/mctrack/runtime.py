"""Library thread counts from a Snakemake rule's ``threads`` (one call at the top of a job's script).

Snakemake's ``threads`` is only a scheduling promise; the libraries a job uses
pick their own thread counts (all cores) unless told. :func:`set_threads` tells
them: OpenMP/BLAS pools through their environment variables (read when the
library initialises, so torch imported later by ultralytics/boxmot sees them),
OpenCV through ``cv2.setNumThreads``, torch through ``torch.set_num_threads``
when it is already imported, and OpenVINO (which uses its own TBB pool and
reads no environment variable) through ``INFERENCE_NUM_THREADS`` added to
every ``openvino.Core.compile_model`` call made afterwards
(:func:`limit_openvino_threads`, called by the ultralytics backend before it
loads a model).
"""

from __future__ import annotations

import contextlib
import os
import sys
import types
from typing import Iterator, NoReturn

#: the thread count set by :func:`set_threads` (None: never called)
THREADS: int | None = None

_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS", "VECLIB_MAXIMUM_THREADS")


def set_threads(n: int) -> int:
    """Limit OpenMP/BLAS, OpenCV, torch (and later OpenVINO) to ``n >= 1`` threads; return ``n``."""
    global THREADS
    n = max(int(n), 1)
    THREADS = n
    for var in _ENV:
        os.environ[var] = str(n)
    try:
        import cv2

        cv2.setNumThreads(n)
    except ImportError:  # pragma: no cover - OpenCV is a dependency
        pass
    if "torch" in sys.modules:
        torch = sys.modules["torch"]
        torch.set_num_threads(n)
    return n


def limit_openvino_threads() -> None:
    """Make later ``openvino.Core.compile_model`` calls use :data:`THREADS` CPU threads (no-op if unset).

    Adds ``INFERENCE_NUM_THREADS`` to the call's ``config`` unless the caller
    set it; done once per process. Does nothing when openvino is not installed.
    """
    if THREADS is None:
        return
    try:
        import openvino as ov
    except ImportError:
        return
    original = ov.Core.compile_model
    if getattr(original, "_mctrack_threads", None) is not None:
        original = original._mctrack_original
    n = THREADS

    def compile_model(self, model, device_name=None, config=None, *args, **kwargs):
        config = dict(config or {})
        if device_name in (None, "CPU", "AUTO") or str(device_name).startswith("CPU"):
            config.setdefault("INFERENCE_NUM_THREADS", n)
        return original(self, model, device_name, config, *args, **kwargs)

    compile_model._mctrack_threads = n
    compile_model._mctrack_original = original
    ov.Core.compile_model = compile_model


class _DeferredModule(types.ModuleType):
    """Stand-in for a module not imported yet: the first attribute read imports it and delegates."""

    def __init__(self, name: str):
        super().__init__(name, f"deferred import of {name} (see mctrack.runtime.deferred_import)")
        self.__dict__["_deferred_name"] = name

    def __getattr__(self, attr: str):
        import importlib

        real = importlib.import_module(self.__dict__["_deferred_name"])
        self.__dict__.update(real.__dict__)  # later reads find the real objects directly
        return getattr(real, attr)

    def __dir__(self):
        import importlib

        return dir(importlib.import_module(self.__dict__["_deferred_name"]))


@contextlib.contextmanager
def deferred_import(*names: str) -> Iterator[None]:
    """Within the block, a plain ``import NAME`` statement binds a stand-in that imports NAME on first use.

    For libraries that import a heavy dependency at module level but never use
    it on the code path taken: boxmot's trackers import torch (about 2 s of a
    tracking job's start-up) although the SORT/ByteTrack family's numpy path
    never touches it. The stand-in imports the real module the moment any of
    its attributes is read, so behaviour is unchanged; only the cost moves to
    where (if ever) the module is used. Only the statement form ``import NAME``
    of a top-level ``NAME`` that is not imported yet is deferred; ``import
    NAME.sub``, ``from NAME import x`` and ``importlib.import_module`` import
    the real module as usual, and ``sys.modules`` never holds the stand-in.
    Not thread-safe: it swaps ``builtins.__import__`` for the block.
    """
    import builtins

    original = builtins.__import__
    stubs = {n: _DeferredModule(n) for n in names if n not in sys.modules}

    def _import(name, globals=None, locals=None, fromlist=(), level=0):
        stub = stubs.get(name) if level == 0 and not fromlist else None
        if stub is not None and name not in sys.modules:
            return stub
        return original(name, globals, locals, fromlist, level)

    builtins.__import__ = _import
    try:
        yield
    finally:
        builtins.__import__ = original


def exit_now(code: int = 0) -> NoReturn:
    """End a job's process at once (``os._exit``), skipping the interpreter's teardown.

    Call it as the last statement of a workflow script, after every output is
    written and closed (mctrack writes outputs through
    :func:`mctrack.errors.atomic_path`, so a file is complete once it exists).
    Tearing down torch, OpenVINO and ultralytics (thread pools, module
    finalisers) takes seconds after the work is done, and every job on the
    critical path pays it. Logging handlers and stdout/stderr are flushed
    first; ``atexit`` handlers do not run.
    """
    import logging

    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)
