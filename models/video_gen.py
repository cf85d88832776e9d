"""Video generation for pose data (ViPS section 3: image-to-video of the character, and pose-guided synthesis) over
diffusers' own pipelines:

    wan-i2v         ``WanImageToVideoPipeline`` (Wan2.1-I2V): the first frame + a motion prompt -> a video
    cogvideox-i2v   ``CogVideoXImageToVideoPipeline`` (CogVideoX-5b-I2V): the same
    wan-vace        ``WanVACEPipeline`` (Wan2.1-VACE): a control video (mesh + skeleton proxies of a clip) and a
                    reference image (the first frame) + a prompt -> a video that follows the proxies

Weights are the user's: a local folder in diffusers' layout (``model_index.json`` and one subfolder per component) or
a hub id already in the local cache; nothing is downloaded. ``tiny-<task>`` builds random-weight pipelines at
diffusers-test size in code (a word-level tokenizer, a one-layer UMT5/T5 encoder, a tiny CLIP vision tower), which
the tests save with ``save_pretrained`` and load back through the same code a real download takes.

Shapes: F frames, H x W pixels; videos are uint8 (F, H, W, 3) sRGB.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

TASKS = ("wan-i2v", "cogvideox-i2v", "wan-vace")
PIPELINE_CLASS = {"wan-i2v": "WanImageToVideoPipeline", "cogvideox-i2v": "CogVideoXImageToVideoPipeline",
                  "wan-vace": "WanVACEPipeline"}
TINY_TEXT_DIM = 32
TINY_WORDS = ["[PAD]", "[UNK]", "a", "an", "the", "is", "of", "in", "and", "on", "full", "body", "camera", "still",
              "ground", "checkerboard", "plain", "walking", "running", "jumping", "turning", "waving", "fox", "man",
              "character", "dog", "wolf", "knight", "dinosaur", "spider", "robot", "creature", "view", "side"]


@dataclass(frozen=True)
class Preset:
    """What the released model was trained at: ``frames`` (Wan: 4k+1, CogVideoX: 8k+1), ``size`` (W, H), ``fps``,
    sampling ``steps`` and classifier-free ``guidance``."""

    frames: int
    size: tuple[int, int]
    fps: float
    steps: int
    guidance: float


PRESETS = {
    "wan-i2v": Preset(81, (832, 480), 16.0, 40, 5.0),
    "cogvideox-i2v": Preset(49, (720, 480), 8.0, 50, 6.0),
    "wan-vace": Preset(81, (832, 480), 16.0, 30, 5.0),
    "tiny": Preset(9, (32, 32), 8.0, 2, 3.0),
}


def task_of(model: str, task: str | None = None) -> str:
    """The task a model name or folder serves: ``task`` if given; else the folder's ``model_index.json`` class; else
    from the name (VACE, CogVideoX, else Wan I2V)."""
    from usdposer.errors import InputError

    if task:
        if task not in TASKS:
            raise InputError(f"--task {task!r}: choose one of {', '.join(TASKS)}")
        return task
    if model.startswith("tiny-"):
        if model[5:] not in TASKS:
            raise InputError(f"--model {model}: no such tiny model; use one of {', '.join('tiny-' + t for t in TASKS)}")
        return model[5:]
    index = Path(model).expanduser() / "model_index.json"
    if index.is_file():
        try:
            data = json.loads(index.read_text())
        except (OSError, ValueError):
            data = {}
        cls = data.get("_class_name", "") if isinstance(data, dict) else ""
        for t, name in PIPELINE_CLASS.items():
            if cls == name:
                return t
    low = model.lower()
    return "wan-vace" if "vace" in low else "cogvideox-i2v" if "cogvideo" in low else "wan-i2v"


def tiny_text_parts(kind: str):
    """A word-level tokenizer over ``TINY_WORDS`` and a one-layer random text encoder (UMT5 for Wan, T5 for
    CogVideoX) of width ``TINY_TEXT_DIM``, built in code."""
    import transformers
    from tokenizers import Tokenizer, models, pre_tokenizers

    torch.manual_seed(0)
    cls, conf_cls = ((transformers.UMT5EncoderModel, transformers.UMT5Config) if kind.startswith("wan")
                     else (transformers.T5EncoderModel, transformers.T5Config))
    conf = conf_cls(vocab_size=len(TINY_WORDS), d_model=TINY_TEXT_DIM, d_kv=8, d_ff=32, num_layers=1, num_heads=2,
                    pad_token_id=0, decoder_start_token_id=0)
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(TINY_WORDS)}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = transformers.PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]",
                                                     model_max_length=512)
    return tokenizer, cls(conf).eval()


def tiny_pipeline(task: str, seed: int = 0):
    """A random-weight pipeline for ``task`` at diffusers-test size (their ``get_dummy_components``), for 32 x 32
    videos of 4k+1 (Wan) or 8k+1 (CogVideoX) frames."""
    import diffusers

    tokenizer, text_encoder = tiny_text_parts(task)
    torch.manual_seed(seed)
    if task == "cogvideox-i2v":
        tr = diffusers.CogVideoXTransformer3DModel(
            num_attention_heads=2, attention_head_dim=16, in_channels=8, out_channels=4, time_embed_dim=2,
            text_embed_dim=TINY_TEXT_DIM, num_layers=1, sample_width=4, sample_height=4, sample_frames=9,
            patch_size=2, temporal_compression_ratio=4, max_text_seq_length=16, use_rotary_positional_embeddings=True,
            use_learned_positional_embeddings=True)
        vae = diffusers.AutoencoderKLCogVideoX(
            in_channels=3, out_channels=3, down_block_types=("CogVideoXDownBlock3D",) * 4,
            up_block_types=("CogVideoXUpBlock3D",) * 4, block_out_channels=(8, 8, 8, 8), latent_channels=4,
            layers_per_block=1, norm_num_groups=2, temporal_compression_ratio=4)
        return diffusers.CogVideoXImageToVideoPipeline(tokenizer=tokenizer, text_encoder=text_encoder, vae=vae,
                                                       transformer=tr, scheduler=diffusers.CogVideoXDDIMScheduler())
    vae = diffusers.AutoencoderKLWan(base_dim=3, z_dim=16, dim_mult=[1, 1, 1, 1], num_res_blocks=1,
                                     temperal_downsample=[False, True, True])
    scheduler = diffusers.FlowMatchEulerDiscreteScheduler(shift=7.0)
    common = dict(patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=12, out_channels=16,
                  text_dim=TINY_TEXT_DIM, freq_dim=256, ffn_dim=32, cross_attn_norm=True,
                  qk_norm="rms_norm_across_heads", rope_max_seq_len=32)
    if task == "wan-vace":
        tr = diffusers.WanVACETransformer3DModel(in_channels=16, num_layers=3, vace_layers=[0, 2], vace_in_channels=96,
                                                 **common)
        return diffusers.WanVACEPipeline(tokenizer=tokenizer, text_encoder=text_encoder, vae=vae, scheduler=scheduler,
                                         transformer=tr)
    if task == "wan-i2v":
        import transformers

        tr = diffusers.WanTransformer3DModel(in_channels=36, num_layers=2, image_dim=4, **common)
        encoder = transformers.CLIPVisionModelWithProjection(transformers.CLIPVisionConfig(
            hidden_size=4, projection_dim=4, num_hidden_layers=2, num_attention_heads=2, image_size=32,
            intermediate_size=16, patch_size=1))
        processor = transformers.CLIPImageProcessorPil(crop_size=32, size=32)
        return diffusers.WanImageToVideoPipeline(tokenizer=tokenizer, text_encoder=text_encoder, vae=vae,
                                                 scheduler=scheduler, image_processor=processor,
                                                 image_encoder=encoder, transformer=tr)
    raise ValueError(f"unknown task {task!r}; choose one of {', '.join(TASKS)}")


COMPONENT_LIBRARIES = ("diffusers", "transformers")  # what a pipeline folder's components may come from


def _load_component(root: Path, name: str, library: str, cls_name: str, dtype):
    """One component of a pipeline folder by the class ``model_index.json`` names."""
    import importlib

    from usdposer.models.video_prior import _from_pretrained

    if library not in COMPONENT_LIBRARIES:  # a folder's JSON must not make usdposer import any module it names
        raise ValueError(f"component {name}: library {library!r} is not one of {', '.join(COMPONENT_LIBRARIES)}")
    cls = getattr(importlib.import_module(library), str(cls_name), None)
    if not isinstance(cls, type) or not hasattr(cls, "from_pretrained"):
        raise ValueError(f"component {name}: {library} has no loadable class {cls_name!r}")
    if library == "diffusers" and hasattr(cls, "load_config") and not hasattr(cls, "set_timesteps"):
        # models: the VAE and image encoder stay float32 (diffusers' advice for Wan), the rest in ``dtype``
        return _from_pretrained(cls, str(root), name, torch.float32 if "Autoencoder" in cls_name else dtype)
    if cls_name == "CLIPImageProcessor":  # without torchvision transformers falls back to the PIL twin: ask for it
        import importlib.util

        import transformers

        if importlib.util.find_spec("torchvision") is None and hasattr(transformers, "CLIPImageProcessorPil"):
            cls = transformers.CLIPImageProcessorPil
    if library == "transformers" and hasattr(cls, "config_class"):
        return cls.from_pretrained(str(root), subfolder=name, dtype=torch.float32 if "CLIP" in cls_name else dtype)
    return cls.from_pretrained(str(root), subfolder=name)


def load_generator(model: str, task: str | None = None, *, device: str = "cpu", dtype=torch.float32):
    """(pipeline, task): ``tiny-<task>``, a local diffusers pipeline folder, or a hub id already in the local cache.
    Components load one by one by the classes the folder's ``model_index.json`` names (so a folder saved with
    ``save_pretrained`` loads as the real release does, with or without ``accelerate``)."""
    from usdposer.errors import InputError

    task = task_of(model, task)
    import diffusers
    import transformers

    for lib in (diffusers, transformers):  # their load reports and bars are not the user's business
        lib.utils.logging.set_verbosity_error()
        lib.utils.logging.disable_progress_bar()
    if model.startswith("tiny-"):
        return tiny_pipeline(task).to(device), task
    root = Path(model).expanduser()
    from usdposer.models.video_prior import looks_local

    hint = (f"pass a diffusers pipeline folder (model_index.json + components) for {PIPELINE_CLASS[task]}, a hub id "
            f"already in the local cache, or tiny-{task}")
    if not root.is_dir():
        if looks_local(model):
            raise InputError(f"--model {model}: no such folder; {hint}")
        try:
            from huggingface_hub import snapshot_download

            root = Path(snapshot_download(model, local_files_only=True))
        except Exception as exc:  # noqa: BLE001 - the hub's errors are many; one line says what to do
            raise InputError(f"--model {model}: not in the local hub cache ({type(exc).__name__}); {hint}") from exc
    try:
        index = json.loads((root / "model_index.json").read_text())
        if not isinstance(index, dict):
            raise ValueError("model_index.json is not a JSON object")
        cls = getattr(diffusers, str(index.get("_class_name") or PIPELINE_CLASS[task]), None)
        if not (isinstance(cls, type) and issubclass(cls, diffusers.DiffusionPipeline)):
            raise ValueError(f"model_index.json names {index.get('_class_name')!r}, not a diffusers pipeline")
        parts = {}
        for name, spec in index.items():
            if name.startswith("_") or not isinstance(spec, list) or len(spec) != 2 or spec[0] is None:
                continue
            parts[name] = _load_component(root, name, spec[0], spec[1], dtype)
        pipe = cls(**parts)
    except (OSError, ValueError, KeyError, TypeError, AttributeError, RuntimeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(f"--model {model}: cannot load a {task} pipeline ({first[:200]}); {hint}") from exc
    return pipe.to(device), task


def check_frames(task: str, frames: int) -> None:
    """Wan makes 4k+1 frames, CogVideoX 8k+1 (the VAE's temporal compression): anything else is a clear error."""
    from usdposer.errors import InputError

    step = 8 if task.startswith("cogvideox") else 4
    if frames < 1 or (frames - 1) % step:
        near = max(1, round((frames - 1) / step)) * step + 1
        raise InputError(f"--frames {frames}: {task} makes {step}k+1 frames; use {near}")


def generate_video(pipe, task: str, *, prompt: str, image: np.ndarray, frames: int, width: int, height: int,
                   steps: int, guidance: float, seed: int = 0, negative: str = "", control: np.ndarray | None = None,
                   on_step: Callable[[int], None] | None = None) -> np.ndarray:
    """Run ``pipe`` once: ``image`` (H, W, 3) uint8 the first frame (I2V) or the reference (VACE), ``control``
    (F, H, W, 3) uint8 the proxy video (VACE). Returns the video (F, H, W, 3) uint8."""
    from PIL import Image

    check_frames(task, frames)
    pipe.set_progress_bar_config(disable=True)
    first = Image.fromarray(image).resize((width, height))
    generator = torch.Generator(device="cpu").manual_seed(seed)

    def callback(p, i, t, kwargs):
        if on_step:
            on_step(i)
        return kwargs

    kw = dict(prompt=prompt, negative_prompt=negative or None, num_frames=frames, height=height, width=width,
              num_inference_steps=steps, guidance_scale=guidance, generator=generator, output_type="np",
              callback_on_step_end=callback)
    if task == "wan-vace":
        if control is None:
            from usdposer.errors import InputError

            raise InputError("wan-vace needs a control video: pass --guide CLIP")
        video = [Image.fromarray(f).resize((width, height)) for f in control[:frames]]
        out = pipe(video=video, reference_images=[first], **kw)
    else:
        if task == "cogvideox-i2v":
            kw["max_sequence_length"] = int(getattr(pipe.transformer.config, "max_text_seq_length", 226))
        out = pipe(image=first, **kw)
    video = np.asarray(out.frames[0])  # (F, H, W, 3) floats in [0, 1]
    return (np.clip(video, 0, 1) * 255).round().astype(np.uint8)


def subject_of(name: str) -> str:
    """A prompt subject from an asset or rig name: ``CesiumMan`` -> "cesium man", ``Velociraptor_v2`` ->
    "velociraptor"."""
    import re

    words = re.sub(r"([a-z])([A-Z])", r"\1 \2", Path(name).stem)
    words = re.sub(r"[_\-.]+|\d+|\bv\d*\b", " ", words)
    words = " ".join(w for w in words.lower().split() if w not in ("rig", "skel", "skeleton", "root", "usd", "v"))
    return words or "character"


TEMPLATE = ("a {subject} {motion}, full body in view, the camera is still, on a {ground} ground, realistic motion, "
            "the {subject} keeps its shape")


def make_prompt(motion: str, subject: str, ground: str = "checkerboard") -> str:
    """The prompt for ``motion`` (e.g. "running"): ViPS-style, naming the kind of character; a ``motion`` that has
    ``{subject}`` in it is used as the template itself."""
    if "{subject}" in motion:
        return motion.format(subject=subject, ground=ground)
    return TEMPLATE.format(subject=subject, motion=motion.strip(), ground=ground)
