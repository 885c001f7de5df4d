"""anomalib's PatchCore on our images with our EfficientNet-Lite0 weights: the per-pixel reference to beat.

    python benchmarks/anomalib_patchcore.py --mpdd /work/data/mpdd_metal_plate  # or --folder DIR; [bench-patchcore]

Issue 10 compares our anomaly maps with anomalib's PatchCore on the same images and the
same backbone weights.  This runs anomalib's PatchCore *torch model* (no Engine, no
datamodule, nothing downloaded): its timm ``features_only`` backbone is created without
weights and gets the state dict of the packaged ImageNet weights our default encoder loads
(``_lite_model``), so both sides see identical features.  Layers ``blocks.2`` and
``blocks.4`` (strides 8 and 16, 40 + 112 channels) stand in for PatchCore's ResNet
layer2 + layer3.  Images are decoded and resized as our encoder does them (whole image
to a square, no crop, bicubic, the model's timm mean/std); anomalib does the rest: 3x3
average pooling, k-centre-greedy coreset, nearest-neighbour patch scores, its image
score (num_neighbors=9 reweighting) and its map (nearest upsampling + Gaussian blur,
sigma 4).  CPU, torch's default thread count.

anomalib is an optional extra (``pip install -e .[bench-patchcore]``), never imported by
the app; tested with anomalib 2.7.0, torch 2.14.1, timm 1.0.31 in a venv of its own.  The fit
runs under ``torch.no_grad()``: outside Lightning's trainer nothing else turns autograd
off, and anomalib's coreset loop then kept a graph of every step (22 GB before the kernel
killed it).
With ``--json FILE`` the figures are also written as JSON.  Image AUROC: image
scores against "has a mask"; pixel AUROC: every test pixel, maps resized bilinearly to
the mask size.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import time

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from seg_data import folder_split, load_mask, mpdd_split
from sklearn.metrics import roc_auc_score

from oddscope.core.data.images import load_rgb8
from oddscope.core.models.encoders import DEFAULT_ENCODER, ENCODERS, Preprocess
from oddscope.core.models.encoders.lite import _lite_model
from oddscope.core.models.encoders.timm_models import timm_data_config

# EfficientNet-Lite0's stride-8 and stride-16 stages: PatchCore's layer2 + layer3 on a ResNet.
LAYERS = ("blocks.2", "blocks.4")
NUM_NEIGHBORS = 9  # anomalib's default for the image-score reweighting
BATCH_SIZE = 8


def run_anomalib_patchcore(train_paths, test_paths, *, image_size: int = 224, coreset_ratio: float = 0.1,
                           layers=LAYERS, seed: int = 0) -> dict:
    """Fit anomalib's PatchCore on ``train_paths`` (normal images), score ``test_paths``.

    Returns ``image_scores`` (n_test,) float32, ``maps`` (one float32 (image_size, image_size)
    array per test image, higher = more anomalous, covering the whole image), ``seconds``
    (``fit``: decode + features + coreset; ``predict``: decode + features + scores + maps;
    ``per_image_ms`` of predict) and the ``config`` that produced them.
    """
    from anomalib.models.image.patchcore.torch_model import PatchcoreModel

    # anomalib's coreset draws from torch's RNG, its random projection from numpy's global one.
    torch.manual_seed(seed)
    np.random.seed(seed)
    arch = ENCODERS[DEFAULT_ENCODER].defaults["arch"]
    model = PatchcoreModel(layers=list(layers), backbone=arch, pre_trained=False, num_neighbors=NUM_NEIGHBORS)
    weights, data = _load_our_weights(model.feature_extractor.feature_extractor, arch)
    preprocess = Preprocess(image_size, data["interpolation"])
    mean = torch.tensor(data["mean"]).view(1, 3, 1, 1)
    std = torch.tensor(data["std"]).view(1, 3, 1, 1)

    def batches(paths):
        for start in range(0, len(paths), BATCH_SIZE):
            images = np.stack([preprocess(load_rgb8(p)) for p in paths[start:start + BATCH_SIZE]])
            yield (torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255.0 - mean) / std

    start = time.perf_counter()
    model.train()  # anomalib's training mode: forward() only stores the patch embeddings
    with torch.no_grad():  # outside Lightning nobody turns autograd off: the coreset loop then kept a graph
        for batch in batches(list(train_paths)):  # of every step and grew to 22 GB
            model(batch)
        model.subsample_embedding(coreset_ratio)
    fit_s = time.perf_counter() - start

    start = time.perf_counter()
    model.eval()
    scores, maps = [], []
    with torch.no_grad():
        for batch in batches(list(test_paths)):
            out = model(batch)
            scores.append(out.pred_score.reshape(-1))
            maps.extend(m.numpy().astype(np.float32) for m in out.anomaly_map[:, 0])
    predict_s = time.perf_counter() - start

    config = {"library": f"anomalib {importlib.metadata.version('anomalib')}", "model": "PatchcoreModel",
              "backbone": arch, "weights": weights, "layers": list(layers),
              "layer_strides": list(model.feature_extractor.reductions),
              "layer_channels": list(model.feature_extractor.out_dims), "image_size": image_size,
              "resize": f"whole image, no crop, {data['interpolation']}", "mean": list(data["mean"]),
              "std": list(data["std"]), "coreset_ratio": coreset_ratio, "num_neighbors": NUM_NEIGHBORS,
              "memory_bank": list(model.memory_bank.shape),
              "anomaly_map_sigma": 4,  # AnomalyMapGenerator's default, which PatchcoreModel uses
              "seed": seed, "n_train": len(train_paths), "n_test": len(test_paths), "device": "cpu",
              "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
              "timm": importlib.metadata.version("timm")}
    return {"image_scores": torch.cat(scores).numpy().astype(np.float32), "maps": maps,
            "seconds": {"fit": fit_s, "predict": predict_s,
                        "per_image_ms": 1000.0 * predict_s / max(1, len(test_paths))},
            "config": config}


def _load_our_weights(backbone: torch.nn.Module, arch: str) -> tuple[str, dict]:
    """Copy the packaged weights of our default encoder into anomalib's ``features_only`` backbone.

    Every backbone tensor must come from ours, same name and shape; ours has more (the
    1x1 head conv and its norm after the last stage), which features_only models lack.
    Returns the weights' description and our encoder's data config (mean, std, resize).
    """
    from timm.data import resolve_data_config

    ours, _, description = _lite_model(DEFAULT_ENCODER, arch)
    source, target = ours.state_dict(), backbone.state_dict()
    missing = [k for k in target if k not in source or source[k].shape != target[k].shape]
    if missing:
        raise RuntimeError(f"anomalib's {arch} backbone has tensors ours lacks or shapes differently: {missing[:5]}")
    backbone.load_state_dict({k: source[k] for k in target}, strict=True)
    return description, timm_data_config(resolve_data_config({}, model=ours), DEFAULT_ENCODER)


def evaluate(image_scores, maps, test_paths, mask_paths) -> dict:
    """Image AUROC (defective = has a mask) and pixel AUROC over all test pixels (maps resized bilinearly)."""
    labels = np.array([m is not None for m in mask_paths])
    truth, predicted = [], []
    for anomaly_map, test_path, mask_path in zip(maps, test_paths, mask_paths, strict=True):
        with Image.open(test_path) as image:
            shape = image.height, image.width
        resized = F.interpolate(torch.from_numpy(anomaly_map)[None, None], size=shape, mode="bilinear",
                                align_corners=False)[0, 0].numpy()
        truth.append(load_mask(mask_path, shape).ravel())
        predicted.append(resized.ravel())
    return {"image_auroc": float(roc_auc_score(labels, image_scores)),
            "pixel_auroc": float(roc_auc_score(np.concatenate(truth), np.concatenate(predicted))),
            "n_test_normal": int((~labels).sum()), "n_test_defective": int(labels.sum())}


def _loadavg() -> str:
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    data = parser.add_mutually_exclusive_group(required=True)
    data.add_argument("--mpdd", help="MPDD root (labels.csv): half the good images are the reference")
    data.add_argument("--folder", help="a set laid out as reference/ images/ masks/")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--coreset-ratio", type=float, default=0.1)
    parser.add_argument("--json", help="also write the figures to this JSON file")
    args = parser.parse_args(argv)

    reference, test, masks = mpdd_split(args.mpdd, seed=args.seed) if args.mpdd else folder_split(args.folder)
    load_before = _loadavg()
    result = run_anomalib_patchcore(reference, test, image_size=args.image_size,
                                    coreset_ratio=args.coreset_ratio, seed=args.seed)
    figures = evaluate(result["image_scores"], result["maps"], test, masks)
    report = {"data": args.mpdd or args.folder, **figures, "seconds": result["seconds"],
              "loadavg_before": load_before, "loadavg_after": _loadavg(), "config": result["config"]}
    print(json.dumps(report, indent=2))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)


if __name__ == "__main__":
    main()
