"""Streaming inference in the style of TFLM's micro_speech.

audio chunks -> ring buffer -> incremental front-end (only the new frames) -> int8 model on the TFLM
host interpreter every ``stride_ms`` -> posterior smoothing + recognizer (threshold, refractory time,
background classes ignored) -> detections with timestamps.

The incremental front-end computes each new frame from the last ``window_samples`` of audio, so its
frames equal the offline front-end's frames on the same audio (tested; float32 round-off only).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from audio_nas.data.dataset import BACKGROUND_CLASSES
from audio_nas.errors import StreamingError
from audio_nas.features.config import FrontEndConfig
from audio_nas.features.frontends import make_frontend
from audio_nas.space import ArchSpec
from audio_nas.streaming.recognizer import Detection, Recognizer

# A stateful front-end (PCEN) recomputes this many frames before the new ones, so its filter carries the
# stream's recent level instead of restarting in every chunk: (1 - 0.049)^100 < 0.7 % of the start state
# is left at PCEN's 0.4-s time constant and 20-ms hops. stream_eval warms its chunks up the same way.
STATE_WARMUP_FRAMES = 100


class IncrementalFrontEnd:
    """Feed audio of any chunk size; get only the new feature frames [n_new, bins]."""

    def __init__(self, cfg: FrontEndConfig):
        self.cfg = cfg
        self.fe = make_frontend(cfg)
        self.buf = np.zeros(0, np.float32)  # audio not yet fully consumed by frames
        self.stateful = bool(getattr(self.fe, "carries_state", False))
        self.history = np.zeros(0, np.float32)  # stateful only: the audio of up to STATE_WARMUP_FRAMES hops

    def push(self, audio: np.ndarray) -> np.ndarray:
        self.buf = np.concatenate([self.buf, np.asarray(audio, np.float32)])
        w, h = self.cfg.window_samples, self.cfg.hop_samples
        if len(self.buf) < w:
            return np.zeros((0, self.cfg.n_bins), np.float32)
        n_new = 1 + (len(self.buf) - w) // h
        used = (n_new - 1) * h + w
        # the batch front-end frames exactly like the offline path; one call for all new frames (after the
        # history's frames for a stateful front-end, which start at a frame boundary and are dropped)
        frames = self.fe(np.concatenate([self.history, self.buf[:used]])[None])[0][-n_new:]
        if self.stateful:
            self.history = np.concatenate([self.history, self.buf[: n_new * h]])[-STATE_WARMUP_FRAMES * h :]
        self.buf = self.buf[n_new * h :]
        return frames.astype(np.float32)


class FeatureRing:
    """The last ``n_frames`` feature frames (micro_speech's feature buffer)."""

    def __init__(self, n_frames: int, n_bins: int, fill: float):
        self.data = np.full((n_frames, n_bins), fill, np.float32)
        self.frames_seen = 0

    def push(self, frames: np.ndarray) -> None:
        if len(frames) == 0:
            return
        k = min(len(frames), len(self.data))
        self.data = np.concatenate([self.data[k:], frames[-k:]])
        self.frames_seen += len(frames)


class TflmModel:
    """An exported model directory (model.tflite + summary.json) run by the TFLM host interpreter."""

    def __init__(self, model_dir: str | Path):

        model_dir = Path(model_dir)
        if not (model_dir / "model.tflite").exists() or not (model_dir / "summary.json").exists():
            raise StreamingError(
                f"{model_dir} is not an exported model (needs model.tflite and summary.json from "
                f"`audio-nas export` or a search's pareto/trial-*/)"
            )
        self.summary = json.loads((model_dir / "summary.json").read_text())
        self.spec = ArchSpec.from_str(self.summary["spec"])
        from tflite_micro.python.tflite_micro import runtime

        self.interp = runtime.Interpreter.from_bytes(
            (model_dir / "model.tflite").read_bytes(), arena_size=int(self.summary["arena_bytes"]) + 1024
        )
        self.in_scale, self.in_zp = self.summary["input_scale"], self.summary["input_zero_point"]
        self.out_scale, self.out_zp = self.summary["output_scale"], self.summary["output_zero_point"]

    def probabilities(self, features: np.ndarray) -> np.ndarray:
        q = np.clip(np.round(features / self.in_scale) + self.in_zp, -128, 127).astype(np.int8)
        self.interp.set_input(q[None, :, :, None], 0)
        self.interp.invoke()
        logits = (np.asarray(self.interp.get_output(0), np.float64).ravel() - self.out_zp) * self.out_scale
        e = np.exp(logits - logits.max())
        return e / e.sum()


@dataclass
class StreamResult:
    detections: list[Detection]
    audio_s: float
    compute_s: float
    scores: list[tuple[float, np.ndarray]]

    @property
    def real_time_factor(self) -> float:
        return self.compute_s / self.audio_s if self.audio_s else float("nan")


def run_stream(
    model: TflmModel,
    chunks,
    sample_rate_hz: int,
    class_names: tuple[str, ...],
    *,
    stride_ms: float = 100.0,
    recognizer: Recognizer | None = None,
    on_update=None,
    keep_scores: bool = False,
) -> StreamResult:
    """Process an iterable of audio chunks (float32 mono at ``sample_rate_hz``)."""
    fe_cfg = model.spec.frontend
    if sample_rate_hz != fe_cfg.sample_rate_hz:
        raise StreamingError(
            f"the stream is at {sample_rate_hz} Hz but the model's front-end expects "
            f"{fe_cfg.sample_rate_hz} Hz; resample the source (file sources do this)"
        )
    if len(class_names) != model.spec.n_classes:
        raise StreamingError(
            f"{len(class_names)} class names for a model with {model.spec.n_classes} outputs"
        )
    inc = IncrementalFrontEnd(fe_cfg)
    ring = FeatureRing(fe_cfg.n_frames, fe_cfg.n_bins, fill=float(np.log(1e-6)))
    rec = recognizer or Recognizer(class_names)
    frames_per_stride = max(1, int(round(stride_ms / fe_cfg.hop_ms)))
    next_infer = fe_cfg.n_frames
    dets, scores = [], []
    audio_samples = 0
    compute = 0.0
    for chunk in chunks:
        audio_samples += len(chunk)
        t0 = time.perf_counter()
        for frame in inc.push(chunk):  # one frame at a time, so every inference sees exactly its window
            ring.push(frame[None])
            if ring.frames_seen < next_infer:
                continue
            t_s = (ring.frames_seen - 1) * fe_cfg.hop_ms / 1000 + fe_cfg.window_ms / 1000
            p = model.probabilities(ring.data)
            if keep_scores:
                scores.append((t_s, p))
            d = rec.update(t_s, p)
            if d is not None:
                dets.append(d)
            if on_update is not None:
                on_update(t_s, p, d, chunk)
            next_infer += frames_per_stride
        compute += time.perf_counter() - t0
    return StreamResult(dets, audio_samples / sample_rate_hz, compute, scores)


def run_stream_device(
    client,
    model: TflmModel,
    chunks,
    sample_rate_hz: int,
    class_names: tuple[str, ...],
    *,
    stride_ms: float = 100.0,
    threshold: float = 0.7,
    on_update=None,
) -> StreamResult:
    """The same stream, with inference and recognition on a board over the bridge's streaming extension.

    The host computes the feature frames (the board's own fixed-point front-end is the `audio` mode of the
    protocol); frames are quantised with the model's input parameters and sent as they are produced.
    """
    fe_cfg = model.spec.frontend
    if sample_rate_hz != fe_cfg.sample_rate_hz:
        raise StreamingError(
            f"the stream is at {sample_rate_hz} Hz but the model expects {fe_cfg.sample_rate_hz} Hz"
        )
    ignore = tuple(i for i, n in enumerate(class_names) if n in BACKGROUND_CLASSES)
    stride = max(1, int(round(stride_ms / fe_cfg.hop_ms)))
    client.stream_start(stride, threshold, ignore)
    inc = IncrementalFrontEnd(fe_cfg)
    dets: list[Detection] = []
    audio_samples, t0 = 0, time.perf_counter()
    for chunk in chunks:
        audio_samples += len(chunk)
        frames = inc.push(chunk)
        if not len(frames):
            continue
        q = np.clip(np.round(frames / model.in_scale) + model.in_zp, -128, 127).astype(np.int8)
        scores, found = client.stream_frames(q, fe_cfg.hop_ms)
        for c, score, t_s in found:
            d = Detection(t_s + fe_cfg.window_ms / 1000 - fe_cfg.hop_ms / 1000, class_names[c], score)
            dets.append(d)
        if on_update is not None:
            for s in scores:
                on_update(audio_samples / sample_rate_hz, np.asarray(s), None, chunk)
            for d in dets[len(dets) - len(found) :]:
                on_update(d.time_s, np.zeros(len(class_names)), d, chunk)
    client.stream_stop()
    return StreamResult(dets, audio_samples / sample_rate_hz, time.perf_counter() - t0, [])
