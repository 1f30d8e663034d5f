"""Run exported models on the real TFLM interpreter (``tflite_micro.runtime``) and check what it says.

TFLM can abort the whole process on a malformed model, so untrusted bytes are checked in Python first
(file identifier, flatbuffer parse, buffer and tensor indices) and then loaded in a child process;
the caller gets a VerificationError, never a crashed interpreter. The arena a model needs is found by
bisection on the interpreter's arena size (the host runtime reports no figure directly).
"""

from __future__ import annotations

import multiprocessing as mp
from typing import Any

import numpy as np

from audio_nas.errors import VerificationError

ARENA_ALIGN = 16


def check_structure(model_bytes: bytes) -> Any:
    """Parse and sanity-check a .tflite flatbuffer; raise VerificationError naming what is wrong."""
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as S

    if len(model_bytes) < 16:
        raise VerificationError(
            f"the file is {len(model_bytes)} bytes: too short to be a .tflite model (truncated?)"
        )
    if model_bytes[4:8] != b"TFL3":
        raise VerificationError(
            "missing the 'TFL3' file identifier: not a TFLite flatbuffer (or corrupted header)"
        )
    try:
        model = S.ModelT.InitFromPackedBuf(bytearray(model_bytes), 0)
        n_buf = len(model.buffers or [])
        for sg in model.subgraphs or []:
            n_t = len(sg.tensors or [])
            for t in sg.tensors or []:
                if not (0 <= t.buffer < n_buf):
                    raise VerificationError(f"tensor {t.name!r} points at buffer {t.buffer} of {n_buf}")
            for op in sg.operators or []:
                if not (0 <= op.opcodeIndex < len(model.operatorCodes or [])):
                    raise VerificationError(
                        f"an operator uses opcode {op.opcodeIndex} of {len(model.operatorCodes)}"
                    )
                for i in list(op.inputs) + list(op.outputs):
                    if i >= n_t:
                        raise VerificationError(f"an operator uses tensor {i} of {n_t}")
    except VerificationError:
        raise
    except Exception as exc:  # flatbuffers raises assorted errors on truncated data
        raise VerificationError(
            f"the flatbuffer cannot be parsed ({type(exc).__name__}: {exc}); the file is truncated or corrupt"
        ) from None
    if not model.subgraphs:
        raise VerificationError("the model has no subgraph")
    return model


def _child(conn, model_bytes: bytes, arena: int, inputs: list[np.ndarray] | None) -> None:
    import faulthandler
    import os

    faulthandler.disable()  # a TFLM crash in this child is reported by the parent, not dumped
    devnull = os.open(os.devnull, os.O_WRONLY)  # TFLM prints every failed allocation while we bisect
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)
    try:
        from tflite_micro.python.tflite_micro import runtime

        it = runtime.Interpreter.from_bytes(model_bytes, arena_size=arena)
        outs = []
        for x in inputs or []:
            it.set_input(x, 0)
            it.invoke()
            outs.append(np.array(it.get_output(0)))
        conn.send(("ok", outs))
    except Exception as exc:
        conn.send(("error", f"{type(exc).__name__}: {exc}"))
    finally:
        conn.close()


def _run_isolated(model_bytes: bytes, arena: int, inputs, timeout_s: float = 120.0):
    ctx = mp.get_context("fork")
    parent, child = ctx.Pipe(duplex=False)
    p = ctx.Process(target=_child, args=(child, model_bytes, arena, inputs))
    p.start()
    child.close()
    if not parent.poll(timeout_s):
        p.kill()
        raise VerificationError(f"the TFLM interpreter did not answer within {timeout_s} s")
    try:
        status, payload = parent.recv()
    except EOFError:
        p.join()
        raise VerificationError(
            f"the TFLM interpreter crashed (exit code {p.exitcode}) on this model"
        ) from None
    p.join()
    return status, payload


def tflm_arena_bytes(model_bytes: bytes, upper: int = 8 << 20) -> int:
    """Smallest arena (16-byte steps) the TFLM interpreter accepts for this model."""
    check_structure(model_bytes)
    status, msg = _run_isolated(model_bytes, upper, None)
    if status != "ok":
        raise VerificationError(f"TFLM rejects the model even with a {upper} B arena: {msg}")
    lo, hi = 0, upper
    while hi - lo > ARENA_ALIGN:
        mid = (lo + hi) // 2 // ARENA_ALIGN * ARENA_ALIGN
        if mid <= lo:
            break
        try:
            ok = _run_isolated(model_bytes, mid, None)[0] == "ok"
        except VerificationError:  # seen: TFLM can segfault instead of failing cleanly on a tiny arena
            ok = False
        lo, hi = (lo, mid) if ok else (mid, hi)
    return hi


def run_tflm(model_bytes: bytes, x_int8: np.ndarray, arena_bytes: int | None = None) -> np.ndarray:
    """Run each row of ``x_int8`` (shape [N, ...input shape without batch]) through TFLM; int8
    outputs [N, K]."""
    check_structure(model_bytes)
    arena = arena_bytes or max(64 << 10, 16 * len(model_bytes))
    status, payload = _run_isolated(model_bytes, arena, [x[None] for x in np.asarray(x_int8, np.int8)])
    if status != "ok":
        if "arena" in payload.lower() or "allocate" in payload.lower():
            need = tflm_arena_bytes(model_bytes)
            raise VerificationError(f"arena of {arena} B is too small: this model needs {need} B")
        raise VerificationError(f"TFLM could not run the model: {payload}")
    return np.concatenate([np.asarray(o).reshape(1, -1) for o in payload])
