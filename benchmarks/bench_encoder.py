"""Encoder throughput: eager vs channels_last vs torch's fast path vs OpenVINO, side by side.

    python benchmarks/bench_encoder.py [--images 256] [--batch 32] [--encoder efficientnet-lite0]

All variants encode the same synthetic uint8 batch in the same run: eager,
channels_last and trace+freeze each running the whole batch in one forward
pass, then the CPU chunking (a few images per forward pass) alone and in
torch's fast path, then the OpenVINO runtime (f32, exported once into the
cache), which is what ``load_encoder`` gives by default on a CPU.  Rounds are interleaved (each round times every variant
once) so that load from other users of a shared machine hits all variants
alike; the load average is printed so a busy machine can be recognised.  The
first batch (which for the fast path includes tracing) is timed separately and
excluded from images/s.

The last rows are the whole pipeline as ``oddscope index`` runs it
(:func:`oddscope.core.workflows.extraction.extract_features`: PNG decoding and resizing in
worker processes, the encoder, rows written to the feature file and marked done
in the project) on demo cutouts written to a temporary folder, once per runtime;
their images/s are counted after the first batch, like the rows above, and
compared with the fastest bare forward pass.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from oddscope.core.models.encoders import DEFAULT_ENCODER, load_encoder

ROUNDS = 3


# --- importable: the lead's "full pipeline" row reuses this --------------------------
def time_forward(encoder, batch_uint8: np.ndarray, n_images: int) -> float:
    """Seconds that ``encoder.encode`` takes for ``n_images`` images, fed as copies of
    ``batch_uint8`` ((B, S, S, 3) uint8, already resized); a final partial batch is
    included.  Normalisation is part of ``encode`` and therefore of the time.
    Warm the encoder up first (the fast path traces on its first batch)."""
    batch_size = len(batch_uint8)
    start = time.perf_counter()
    for first in range(0, n_images, batch_size):
        encoder.encode(batch_uint8[: min(batch_size, n_images - first)])
    return time.perf_counter() - start
# ------------------------------------------------------------------------------------


def _variants(spec: str, batch_size: int) -> dict:
    """Each speed-up alone, torch's fast path, then OpenVINO (``load_encoder(spec)``'s default on a CPU)."""
    whole = f"{batch_size} images per forward"

    def torch_encoder(fast):
        return load_encoder(spec, device="cpu", fast=fast, runtime="torch")

    eager, eager_chunked, channels_last, traced, fast = (torch_encoder(f) for f in (False, False, True, True, True))
    # The fast path minus the trace: stop it before its first batch.
    channels_last._trace_pending = False
    channels_last.fast_path = "channels_last"
    for encoder in (eager, channels_last, traced):
        encoder.chunk = None
    default = load_encoder(spec, device="cpu")
    return {f"eager NCHW, {whole}": eager,
            f"eager + channels_last, {whole}": channels_last,
            f"{traced.fast_path}, {whole}": traced,
            f"eager NCHW, chunks of {eager_chunked.chunk}": eager_chunked,
            f"torch {fast.fast_path}, chunks of {fast.chunk}": fast,
            f"DEFAULT {default.fast_path}": default}


def time_pipeline(spec: str, runtime: str, n_images: int, batch_size: int) -> tuple[float, float]:
    """(images/s after the first batch, seconds of the first batch) of a real extraction run."""
    from oddscope.core.data.demo import make_demo
    from oddscope.core.project.store import Project
    from oddscope.core.workflows.extraction import extract_features

    with tempfile.TemporaryDirectory() as tmp:
        demo = make_demo(Path(tmp) / "demo", n_images=n_images, seed=3)
        stamps = []
        with Project.create(Path(tmp) / "project") as project:
            project.add_items(sorted(str(p) for p in demo.images_dir.glob("*.png")))
            start = time.perf_counter()
            extract_features(project, load_encoder(spec, device="cpu", runtime=runtime), batch_size=batch_size,
                             progress=lambda stage, done, total: stamps.append((time.perf_counter(), done)))
        (t_first, n_first), (t_end, n_end) = stamps[1], stamps[-1]
        return (n_end - n_first) / (t_end - t_first), t_first - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=256, help="images per variant (timed)")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--encoder", default=DEFAULT_ENCODER)
    parser.add_argument("--pipeline-images", type=int, default=512,
                        help="demo cutouts for the full-pipeline row (0 to skip)")
    args = parser.parse_args()

    load_before = os.getloadavg()[0]
    variants = _variants(args.encoder, args.batch)
    size = next(iter(variants.values())).input_size
    batch = np.random.default_rng(0).integers(0, 256, (args.batch, size, size, 3), dtype=np.uint8)

    first_batch = {}
    for name, encoder in variants.items():
        start = time.perf_counter()
        encoder.encode(batch)  # fast path: traces here
        first_batch[name] = time.perf_counter() - start
        encoder.encode(batch)  # TorchScript profiling run (and OpenVINO's first inference)
    seconds = dict.fromkeys(variants, 0.0)
    per_round = max(1, args.images // ROUNDS)
    for _ in range(ROUNDS):
        for name, encoder in variants.items():
            seconds[name] += time_forward(encoder, batch, per_round)

    print(f"{args.encoder} at {size} px, batch {args.batch}, {per_round * ROUNDS} images per variant "
          f"in {ROUNDS} interleaved rounds; torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{variants[next(reversed(variants))].describe()['runtime']}, "
          f"{os.cpu_count()} CPUs, load average {load_before:.1f} before / {os.getloadavg()[0]:.1f} after")
    baseline = per_round * ROUNDS / next(iter(seconds.values()))
    print(f"{'variant (speed-up vs the first row)':66s} {'images/s':>9s} {'speed-up':>9s} {'1st batch s':>12s}")
    for name in variants:
        rate = per_round * ROUNDS / seconds[name]
        print(f"{name:66s} {rate:9.1f} {rate / baseline:8.2f}x {first_batch[name]:12.2f}")
    if args.pipeline_images:
        fastest = max(per_round * ROUNDS / seconds[name] for name in variants)
        for runtime in ("torch", "openvino"):
            rate, first = time_pipeline(args.encoder, runtime, args.pipeline_images, args.batch)
            label = f"FULL PIPELINE, {runtime} (decode+resize+forward+write, {args.pipeline_images} PNGs)"
            print(f"{label:66s} {rate:9.1f} {rate / baseline:8.2f}x {first:12.2f}   "
                  f"{rate / fastest:.0%} of the fastest forward")

if __name__ == "__main__":
    main()
