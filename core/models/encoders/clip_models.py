"""``clip:<arch>/<tag>`` or ``clip:<arch>`` with a weights file: open_clip models, which also embed text."""

from __future__ import annotations

import torch

from oddscope.core.models.encoders.base import Encoder
from oddscope.core.models.encoders.common import file_description
from oddscope.core.models.registry import EncoderError


class _ClipImage(torch.nn.Module):
    """A CLIP model seen as an image encoder: ``encode_image``, L2-normalised."""

    def __init__(self, model):
        super().__init__()
        self.clip = model

    def forward(self, x):
        return self.clip.encode_image(x, normalize=True)

    @property
    def feature_info(self) -> list[dict]:
        """One stage per transformer block, all at the patch size (as timm describes its ViTs)."""
        visual = self.clip.visual
        patch = visual.patch_size[0] if isinstance(visual.patch_size, (tuple, list)) else visual.patch_size
        return [{"reduction": int(patch), "num_chs": int(visual.transformer.width), "module": f"block{i}"}
                for i in range(visual.transformer.layers)]

    def forward_intermediates(self, x, indices, intermediates_only=True, stop_early=True):
        """Patch tokens of the blocks ``indices`` as ``(B, C, h, w)`` maps (timm's signature)."""
        out = self.clip.visual.forward_intermediates(x, indices=indices, stop_early=stop_early,
                                                     intermediates_only=True, output_fmt="NCHW")
        return out["image_intermediates"]


def load(spec: str, weights: str | None, device: torch.device, fast: bool) -> Encoder:
    """The registry's loader for the ``clip:`` family."""
    import open_clip

    arch, _, tag = spec[5:].partition("/")
    if arch not in open_clip.list_models():
        raise EncoderError(f"unknown open_clip architecture {arch!r}; list them with "
                           "`python -c \"import open_clip; print(open_clip.list_models())\"`")
    tags = open_clip.list_pretrained_tags_by_model(arch)
    if tag and weights:
        raise EncoderError(f"{spec!r}: give either a pretrained tag or --weights FILE, not both")
    if not tag and not weights:
        raise EncoderError(f"{spec!r} needs weights: a pretrained tag (clip:{arch}/TAG, TAG one of "
                           f"{tags}) or a local open_clip checkpoint (clip:{arch} --weights FILE)")
    if tag and tag not in tags:
        raise EncoderError(f"unknown pretrained tag {tag!r} for {arch}; choose one of {tags}")
    try:
        model, _, _ = open_clip.create_model_and_transforms(arch, pretrained=weights or tag,
                                                            require_pretrained=True)
    except Exception as err:
        if weights:
            raise EncoderError(f"could not load {weights} as open_clip {arch} weights "
                               f"({type(err).__name__}: {err})") from err
        raise EncoderError(
            f"could not load open_clip pretrained {arch!r}/{tag!r} ({type(err).__name__}: {err}). "
            "Offline, pre-populate the Hugging Face cache on a connected machine "
            f"(`python -c \"import open_clip; open_clip.create_model_and_transforms('{arch}', "
            f"pretrained='{tag}')\"`) or pass a local checkpoint: clip:{arch} --weights FILE."
        ) from err
    config = model.visual.preprocess_cfg
    height, width = config["size"] if isinstance(config["size"], (tuple, list)) else (config["size"],) * 2
    if height != width:
        raise EncoderError(f"{spec}: non-square input size {height}x{width} is not supported")
    description = (file_description(weights) if weights
                   else f"open_clip pretrained {tag!r} (from the hub cache or a download)")
    return Encoder(spec=spec, name=arch, weights=description, model=_ClipImage(model),
                   input_size=height, mean=config["mean"], std=config["std"],
                   interpolation=config.get("interpolation", "bicubic"), device=device, fast=fast,
                   traceable=False, library=f"open_clip {open_clip.__version__}",
                   text_model=model.to(device).eval(), tokenizer=open_clip.get_tokenizer(arch))
