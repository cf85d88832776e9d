"""Video diffusion priors for Score Distillation Sampling (AKD section 4.3), over diffusers' own model classes.

A prior turns a rendered clip into latents ``z = E(x)`` (the VAE encoder, with gradient) and, at a noise level t,
predicts the clean latent ``z_hat`` under classifier-free guidance (the transformer, without gradient). The SDS
gradient on the latent is ``g = w(t) (z - z_hat)``, injected as ``0.5 ||z - stopgrad(z - g)||^2`` so that autograd
carries it back through the encoder, the renderer and the skinning to the joint angles.

Notation (paper -> code), eps ~ N(0, I), w the CFG scale:

    v-prediction (CogVideoX; a = alphas_cumprod[t]):
        z_t   = sqrt(a) z + sqrt(1 - a) eps                  ``add_noise``
        v     = sqrt(a) eps - sqrt(1 - a) z                   the target the model is trained on
        v_hat = v_u + w (v_c - v_u)                           CFG on the model output (linear, so guide first)
        z_hat = sqrt(a) z_t - sqrt(1 - a) v_hat
        z - z_hat = sqrt(1 - a) (v_hat - v)
    rectified flow (Wan; s = sigma in (0, 1), the transformer's timestep is 1000 s):
        z_t   = (1 - s) z + s eps,   u = eps - z              the velocity the model predicts
        u_hat = u_u + w (u_c - u_u)
        z_hat = z_t - s u_hat
        z - z_hat = s (u_hat - u)                             (z - z_t = s (z - eps) = -s u)

The weighting is ``w(t) = 1`` (the clean-latent form already carries the noise-level factor above). Text embeddings
are computed once per prompt (:meth:`VideoPrior.embed`); ``tiny_prior`` builds random-weight models from small
configs, as diffusers' own tests do, so that everything runs on CPU without weights.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

PRIORS: dict[str, type] = {}


def register(name: str) -> Callable[[type], type]:
    def deco(cls: type) -> type:
        PRIORS[name] = cls
        cls.kind = name
        return cls

    return deco


@dataclass
class TextEmbeddings:
    """``cond`` (1, L, D) for the prompt and ``uncond`` (1, L, D) for the empty prompt."""

    cond: Tensor
    uncond: Tensor


class VideoPrior:
    """The SDS interface. Videos are (B, 3, F, H, W) in [-1, 1]; latents (B, C, f, h, w)."""

    kind = "base"
    frames_multiple = 4  # F = 4 k + 1 for both causal video VAEs

    def encode(self, video: Tensor) -> Tensor:
        raise NotImplementedError

    def add_noise(self, z: Tensor, eps: Tensor, t: float) -> Tensor:
        raise NotImplementedError

    def clean_estimate(self, z_t: Tensor, t: float, text: TextEmbeddings, guidance: float) -> Tensor:
        raise NotImplementedError

    @torch.no_grad()
    def sds_gradient(self, z: Tensor, t: float, text: TextEmbeddings, guidance: float,
                     generator: torch.Generator | None = None) -> Tensor:
        """``g = w(t) (z - z_hat)`` at noise level ``t`` in (0, 1) (module docstring)."""
        eps = torch.randn(z.shape, generator=generator, dtype=z.dtype).to(z.device)
        z_hat = self.clean_estimate(self.add_noise(z, eps, t), t, text, guidance)
        return z.detach() - z_hat

    def embed(self, prompt: str) -> TextEmbeddings:
        raise NotImplementedError


def encode_with_grad(prior: VideoPrior, video: Tensor, mode: str = "full", chunk: int = 2,
                     generator: torch.Generator | None = None) -> Tensor:
    """The prior's latents of ``video`` (B, 3, F, H, W) with gradient, by ``mode``:

    "full"        the encoder's whole backward (checkpointed inside the prior when it was loaded so);
    "subset"      exact latent values from a gradient-free encode of the whole clip, and gradient only through a
                  random run of ``chunk`` latent frames re-encoded from their own pixel frames (straight through:
                  ``z = z_all + (z_win - sg(z_win))``). The causal video VAEs map latent 0 to frame 0 and latent k
                  to frames 4k-3..4k, so the window starts one frame early (its own first latent is dropped) and
                  needs no history; its gradient ignores the causal context before the window, which is the
                  approximation that buys the memory (encoder activations for ``4 chunk + 1`` frames).
    Priors whose ``frames_multiple`` is 1 encode frames independently, so their windows are exact.
    """
    if mode == "full":
        return prior.encode(video)
    if mode != "subset":
        raise ValueError(f"unknown VAE gradient mode {mode!r}; use full or subset")
    with torch.no_grad():
        z_all = prior.encode(video)
    n = z_all.shape[2]
    k = min(chunk, n)
    a = int(torch.randint(0, n - k + 1, (1,), generator=generator))
    m = prior.frames_multiple
    if m == 1:
        z_win = prior.encode(video[:, :, a:a + k])
    elif a == 0:
        z_win = prior.encode(video[:, :, : m * (k - 1) + 1])
    else:
        z_win = prior.encode(video[:, :, m * a - m: m * (a + k - 1) + 1])[:, :, 1:]
    pad = torch.zeros_like(z_all)
    pad[:, :, a:a + k] = z_win - z_win.detach()
    return z_all + pad


def sds_loss(z: Tensor, grad: Tensor) -> Tensor:
    """``0.5 ||z - stopgrad(z - g)||^2`` summed over the latent: its gradient w.r.t. ``z`` is exactly ``g``."""
    return 0.5 * ((z - (z - grad).detach()) ** 2).sum()


def _text_encoder_embeddings(path: str, prompt: str, device, dtype, max_length: int) -> Tensor:
    """Embeddings from the pipeline's own T5/UMT5 text encoder (needs ``transformers``)."""
    from usdposer._deps import require

    transformers = require("transformers", extra="video")
    transformers.utils.logging.set_verbosity_error()  # its load reports are not the user's business
    tok = transformers.AutoTokenizer.from_pretrained(path, subfolder="tokenizer")
    config = transformers.AutoConfig.from_pretrained(path, subfolder="text_encoder")
    # the class the folder was saved as (T5EncoderModel, UMT5EncoderModel): AutoModel would build the whole
    # encoder-decoder and report the decoder's weights missing
    cls = getattr(transformers, (config.architectures or ["AutoModel"])[0], transformers.AutoModel)
    enc = cls.from_pretrained(path, subfolder="text_encoder", dtype=dtype).to(device)
    ids = tok([prompt], padding="max_length", max_length=max_length, truncation=True, return_tensors="pt")
    with torch.no_grad():
        out = enc.get_encoder()(ids.input_ids.to(device)) if hasattr(enc, "get_encoder") else enc(ids.input_ids.to(device))
    return out.last_hidden_state


class _DiffusersPrior(VideoPrior):
    def __init__(self, vae, transformer, *, path: str | None = None, text_length: int = 226,
                 checkpoint_vae: bool = False):
        self.vae, self.transformer, self.path = vae, transformer, path
        self.text_length, self.checkpoint_vae = text_length, checkpoint_vae
        self.vae.requires_grad_(False)
        self.transformer.requires_grad_(False)
        self._text: dict[str, TextEmbeddings] = {}

    @property
    def device(self):
        return next(self.transformer.parameters()).device

    def embed(self, prompt: str) -> TextEmbeddings:
        if prompt not in self._text:
            if self.path is None:
                raise ValueError("this prior has no text encoder; pass TextEmbeddings directly")
            dtype = next(self.transformer.parameters()).dtype
            self._text[prompt] = TextEmbeddings(
                _text_encoder_embeddings(self.path, prompt, self.device, dtype, self.text_length),
                _text_encoder_embeddings(self.path, "", self.device, dtype, self.text_length))
        return self._text[prompt]

    def _encode_mean(self, video: Tensor) -> Tensor:
        return self.vae.encode(video).latent_dist.mean

    def encode_raw(self, video: Tensor) -> Tensor:
        """The VAE's latent mean. With ``checkpoint_vae`` the encoder's backward is checkpointed per block
        (diffusers' own gradient checkpointing where the VAE has it, e.g. CogVideoX; per causal chunk of frames for
        Wan, see :func:`wan_encode_checkpointed`), which lowers peak memory; one checkpoint around the whole encoder
        would not (its recomputation holds every activation again)."""
        if self.checkpoint_vae and torch.is_grad_enabled():
            if getattr(self.vae, "_supports_gradient_checkpointing", False):
                if not getattr(self.vae, "is_gradient_checkpointing", False):
                    self.vae.enable_gradient_checkpointing()
                return self._encode_mean(video)
            if hasattr(self.vae, "_enc_feat_map"):  # Wan's causal encoder
                return wan_encode_checkpointed(self.vae, video)
        return self._encode_mean(video)


def wan_encode_checkpointed(vae, video: Tensor) -> Tensor:
    """``AutoencoderKLWan.encode(video).latent_dist.mean`` with the encoder checkpointed per causal chunk (the first
    frame, then 4 frames at a time, as ``AutoencoderKLWan._encode`` runs it). The causal cache each chunk reads and
    writes is threaded through the checkpoints as explicit inputs and outputs, so the recomputation in the backward
    pass sees exactly the cache the forward pass saw: the gradient is identical, and the activations held at once
    are one chunk's."""
    from torch.utils.checkpoint import checkpoint

    x = video
    if vae.config.patch_size is not None:
        from diffusers.models.autoencoders.autoencoder_kl_wan import patchify

        x = patchify(x, patch_size=vae.config.patch_size)
    vae.clear_cache()
    cache = list(vae._enc_feat_map)
    n = 1 + (x.shape[2] - 1) // 4
    outs = []
    for i in range(n):
        xi = x[:, :, :1] if i == 0 else x[:, :, 1 + 4 * (i - 1): 1 + 4 * i]
        is_tensor = [torch.is_tensor(c) for c in cache]
        markers = [None if t else c for t, c in zip(is_tensor, cache)]  # None or Wan's "Rep"
        layout = {}

        def run(xi, *tensors, is_tensor=is_tensor, markers=markers, layout=layout):
            it = iter(tensors)
            fc = [next(it) if t else m for t, m in zip(is_tensor, markers)]
            out = vae.encoder(xi, feat_cache=fc, feat_idx=[0])
            layout["is_tensor"] = [torch.is_tensor(c) for c in fc]
            layout["markers"] = [None if torch.is_tensor(c) else c for c in fc]
            return (out, *[c for c in fc if torch.is_tensor(c)])

        res = checkpoint(run, xi, *[c for c in cache if torch.is_tensor(c)], use_reentrant=False)
        outs.append(res[0])
        it = iter(res[1:])
        cache = [next(it) if t else m for t, m in zip(layout["is_tensor"], layout["markers"])]
    h = vae.quant_conv(torch.cat(outs, 2))
    vae.clear_cache()
    return torch.chunk(h, 2, dim=1)[0]  # DiagonalGaussianDistribution(h).mean


@register("wan")
class WanPrior(_DiffusersPrior):
    """Wan 2.1 (flow matching), ``AutoencoderKLWan`` + ``WanTransformer3DModel``. Latents are normalised with the
    VAE's ``latents_mean`` / ``latents_std``."""

    def encode(self, video: Tensor) -> Tensor:
        z = self.encode_raw(video.to(next(self.vae.parameters()).dtype))
        mean = torch.tensor(self.vae.config.latents_mean, dtype=z.dtype, device=z.device).view(1, -1, 1, 1, 1)
        std = torch.tensor(self.vae.config.latents_std, dtype=z.dtype, device=z.device).view(1, -1, 1, 1, 1)
        return (z - mean) / std

    def add_noise(self, z: Tensor, eps: Tensor, t: float) -> Tensor:
        return (1 - t) * z + t * eps

    @torch.no_grad()
    def clean_estimate(self, z_t: Tensor, t: float, text: TextEmbeddings, guidance: float) -> Tensor:
        dtype = next(self.transformer.parameters()).dtype
        x = torch.cat([z_t, z_t]).to(dtype)
        emb = torch.cat([text.uncond, text.cond]).to(z_t.device, dtype)
        step = torch.full((2,), 1000.0 * t, device=z_t.device)
        u_u, u_c = self.transformer(hidden_states=x, timestep=step, encoder_hidden_states=emb,
                                    return_dict=False)[0].float().chunk(2)
        u_hat = u_u + guidance * (u_c - u_u)
        return z_t - t * u_hat


@register("cogvideox")
class CogVideoXPrior(_DiffusersPrior):
    """CogVideoX (v-prediction, the AKD paper's prior), ``AutoencoderKLCogVideoX`` +
    ``CogVideoXTransformer3DModel`` (which takes latents as (B, f, C, h, w)); alphas from ``CogVideoXDDIMScheduler``."""

    def __init__(self, vae, transformer, scheduler_config: dict | None = None, **kw):
        from diffusers import CogVideoXDDIMScheduler

        super().__init__(vae, transformer, **kw)
        cfg = scheduler_config or {"num_train_timesteps": 1000, "beta_schedule": "scaled_linear",
                                   "beta_start": 0.00085, "beta_end": 0.012, "snr_shift_scale": 1.0,
                                   "prediction_type": "v_prediction", "rescale_betas_zero_snr": True}
        self.scheduler = CogVideoXDDIMScheduler(**cfg)
        self.alphas = self.scheduler.alphas_cumprod.float()

    def rotary(self, f: int, h: int, w: int, device) -> tuple[Tensor, Tensor] | None:
        """The 3D rotary embeddings the CogVideoX pipeline passes to its transformer for ``f`` x ``h`` x ``w``
        latents (CogVideoX-5B and 1.5 use them; 2B has none): ``CogVideoXPipeline._prepare_rotary_positional_embeddings``
        with its crop region for 1.0 models."""
        cfg = self.transformer.config
        if not cfg.use_rotary_positional_embeddings:
            return None
        from diffusers.models.embeddings import get_3d_rotary_pos_embed

        p, p_t = cfg.patch_size, cfg.patch_size_t
        gh, gw = h // p, w // p
        bw, bh = cfg.sample_width // p, cfg.sample_height // p
        if p_t is None:  # 1.0: the grid resized into the base grid, centred
            if gh / gw > bh / bw:
                rh, rw = bh, int(round(bh / gh * gw))
            else:
                rw, rh = bw, int(round(bw / gw * gh))
            top, left = int(round((bh - rh) / 2.0)), int(round((bw - rw) / 2.0))
            return get_3d_rotary_pos_embed(embed_dim=cfg.attention_head_dim, crops_coords=((top, left), (top + rh, left + rw)),
                                           grid_size=(gh, gw), temporal_size=f, device=device)
        return get_3d_rotary_pos_embed(embed_dim=cfg.attention_head_dim, crops_coords=None, grid_size=(gh, gw),
                                       temporal_size=(f + p_t - 1) // p_t, grid_type="slice", max_size=(bh, bw),
                                       device=device)

    def _index(self, t: float) -> int:
        n = len(self.alphas)
        return min(n - 1, max(0, round(t * (n - 1))))

    def encode(self, video: Tensor) -> Tensor:
        z = self.encode_raw(video.to(next(self.vae.parameters()).dtype))
        return z * float(self.vae.config.scaling_factor)

    def add_noise(self, z: Tensor, eps: Tensor, t: float) -> Tensor:
        a = float(self.alphas[self._index(t)])
        return math.sqrt(a) * z + math.sqrt(1 - a) * eps

    @torch.no_grad()
    def clean_estimate(self, z_t: Tensor, t: float, text: TextEmbeddings, guidance: float) -> Tensor:
        dtype = next(self.transformer.parameters()).dtype
        k = self._index(t)
        a = float(self.alphas[k])
        x = torch.cat([z_t, z_t]).permute(0, 2, 1, 3, 4).to(dtype)  # (2B, f, C, h, w)
        emb = torch.cat([text.uncond, text.cond]).to(z_t.device, dtype)
        step = torch.full((2,), k, device=z_t.device, dtype=torch.long)
        v = self.transformer(hidden_states=x, encoder_hidden_states=emb, timestep=step, return_dict=False,
                             image_rotary_emb=self.rotary(*z_t.shape[2:], z_t.device))[0]
        v_u, v_c = v.float().permute(0, 2, 1, 3, 4).chunk(2)
        v_hat = v_u + guidance * (v_c - v_u)
        return math.sqrt(a) * z_t - math.sqrt(1 - a) * v_hat


def _from_pretrained(cls, path: str, subfolder: str, dtype):
    """``cls.from_pretrained``; where diffusers needs ``accelerate`` for it (models that keep fp32 modules), the
    config and safetensors weights are read directly from the local folder (or the local hub cache)."""
    from pathlib import Path

    try:
        return cls.from_pretrained(path, subfolder=subfolder, torch_dtype=dtype)
    except ValueError as exc:
        if "low_cpu_mem_usage" not in str(exc):
            raise
    from safetensors.torch import load_file

    root = Path(path)
    if not root.exists():
        from huggingface_hub import snapshot_download

        root = Path(snapshot_download(path, local_files_only=True))
    model = cls.from_config(cls.load_config(str(root / subfolder)))
    state = {}
    for f in sorted((root / subfolder).glob("*.safetensors")):
        state.update(load_file(str(f)))
    model.load_state_dict(state)
    return model.to(dtype)


def looks_local(model: str) -> bool:
    """Whether ``--model`` names a folder on this machine rather than a hub id ("owner/name"): a path that starts
    with ".", "/" or "~", has a backslash, or has more than one "/"."""
    return model.startswith((".", "/", "~")) or "\\" in model or model.count("/") > 1


def load_prior(model: str, kind: str | None = None, *, device: str = "cpu", dtype=torch.float32,
               checkpoint_vae: bool = True) -> VideoPrior:
    """A prior from a local diffusers pipeline folder or a hub id the user already has (``vae/`` and
    ``transformer/`` subfolders; nothing is downloaded in tests). ``kind`` defaults from the name ("wan" unless it
    says CogVideoX); ``model="tiny-wan"`` / ``"tiny-cogvideox"`` give random-weight tiny models."""
    from usdposer.errors import InputError

    if model.startswith("tiny-"):
        if model[5:] not in PRIORS:
            raise InputError(f"--model {model}: no such tiny prior; use tiny-wan or tiny-cogvideox")
        return tiny_prior(model[5:], device=device)
    kind = kind or ("cogvideox" if "cogvideo" in model.lower() else "wan")
    if kind not in PRIORS:
        raise InputError(f"unknown video prior kind {kind!r}; choose one of {', '.join(PRIORS)}")
    from pathlib import Path

    if looks_local(model) and not Path(model).expanduser().is_dir():
        raise InputError(f"--model {model}: no such folder; pass a diffusers pipeline folder with vae/ and "
                         "transformer/, a hub id already in the local cache, or tiny-wan / tiny-cogvideox")
    import diffusers

    diffusers.utils.logging.set_verbosity_error()  # its advice (install accelerate ...) is not the user's problem

    try:
        if kind == "wan":
            vae = _from_pretrained(diffusers.AutoencoderKLWan, model, "vae", torch.float32)
            tr = _from_pretrained(diffusers.WanTransformer3DModel, model, "transformer", dtype)
            return WanPrior(vae.to(device), tr.to(device), path=model, text_length=512, checkpoint_vae=checkpoint_vae)
        vae = _from_pretrained(diffusers.AutoencoderKLCogVideoX, model, "vae", dtype)
        tr = _from_pretrained(diffusers.CogVideoXTransformer3DModel, model, "transformer", dtype)
        sched = diffusers.CogVideoXDDIMScheduler.from_pretrained(model, subfolder="scheduler").config
        return CogVideoXPrior(vae.to(device), tr.to(device), dict(sched), path=model, checkpoint_vae=checkpoint_vae,
                              text_length=int(getattr(tr.config, "max_text_seq_length", 226)))
    except (OSError, ValueError, RuntimeError, KeyError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(f"--model {model}: cannot load a {kind} video prior ({first[:200]}); pass a diffusers "
                         "pipeline folder with vae/ and transformer/ (safetensors), a hub id already in the local "
                         "cache, or tiny-wan / tiny-cogvideox") from exc


TINY_TEXT_DIM = 32


def tiny_prior(kind: str = "wan", *, seed: int = 0, device: str = "cpu") -> VideoPrior:
    """A random-weight prior small enough for CPU tests (diffusers-test-sized configs; attention head dims are
    multiples of 16 for the rotary embeddings). Videos of 4k+1 frames at multiples of 16 pixels."""
    import diffusers

    torch.manual_seed(seed)
    if kind == "wan":
        vae = diffusers.AutoencoderKLWan(base_dim=3, z_dim=16, dim_mult=[1, 1, 1, 1], num_res_blocks=1,
                                         temperal_downsample=[False, True, True])
        tr = diffusers.WanTransformer3DModel(patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=16,
                                             in_channels=16, out_channels=16, text_dim=TINY_TEXT_DIM, freq_dim=256,
                                             ffn_dim=32, num_layers=2, rope_max_seq_len=32)
        return WanPrior(vae.to(device), tr.to(device))
    if kind == "cogvideox":
        vae = diffusers.AutoencoderKLCogVideoX(in_channels=3, out_channels=3,
                                               down_block_types=("CogVideoXDownBlock3D",) * 4,
                                               up_block_types=("CogVideoXUpBlock3D",) * 4,
                                               block_out_channels=(8, 8, 8, 8), latent_channels=4, layers_per_block=1,
                                               norm_num_groups=2, temporal_compression_ratio=4)
        tr = diffusers.CogVideoXTransformer3DModel(num_attention_heads=4, attention_head_dim=16, in_channels=4,
                                                   out_channels=4, time_embed_dim=2, text_embed_dim=TINY_TEXT_DIM,
                                                   num_layers=1, sample_width=4, sample_height=4, sample_frames=9,
                                                   patch_size=2, temporal_compression_ratio=4, max_text_seq_length=8)
        return CogVideoXPrior(vae.to(device), tr.to(device))
    raise ValueError(f"unknown tiny prior {kind!r}; choose wan or cogvideox")


# The released architectures (the pipelines' transformer/config.json; the VAEs are diffusers' defaults, with the
# 5B's latent scaling). Random weights at these sizes cost what the real weights cost: bench/distill.py times them.
FULL_SIZE = {
    "wan2.1-t2v-1.3b": ("wan", {"patch_size": (1, 2, 2), "num_attention_heads": 12, "attention_head_dim": 128,
                                "in_channels": 16, "out_channels": 16, "text_dim": 4096, "freq_dim": 256,
                                "ffn_dim": 8960, "num_layers": 30, "cross_attn_norm": True,
                                "qk_norm": "rms_norm_across_heads", "eps": 1e-6, "rope_max_seq_len": 1024},
                        {}, 512, (480, 832)),
    "cogvideox-5b": ("cogvideox", {"num_attention_heads": 48, "attention_head_dim": 64, "in_channels": 16,
                                   "out_channels": 16, "time_embed_dim": 512, "text_embed_dim": 4096,
                                   "num_layers": 42, "sample_width": 90, "sample_height": 60, "sample_frames": 49,
                                   "patch_size": 2, "temporal_compression_ratio": 4, "max_text_seq_length": 226,
                                   "use_rotary_positional_embeddings": True},
                     {"scaling_factor": 0.7}, 226, (480, 720)),
}


def full_size_prior(name: str, *, device="cpu", dtype=torch.bfloat16, seed: int = 0) -> tuple[VideoPrior, TextEmbeddings]:
    """A prior with the released architecture ``name`` (a key of ``FULL_SIZE``) at random weights, built directly on
    ``device``, and random text embeddings of the pipeline's length (no text encoder). For timing and memory: the
    compute is the real model's, the output is noise."""
    import diffusers

    kind, tr_cfg, vae_cfg, text_len, _ = FULL_SIZE[name]
    torch.manual_seed(seed)
    with torch.device(device):
        if kind == "wan":
            vae = diffusers.AutoencoderKLWan(**vae_cfg)
            tr = diffusers.WanTransformer3DModel(**tr_cfg)
        else:
            vae = diffusers.AutoencoderKLCogVideoX(**vae_cfg)
            tr = diffusers.CogVideoXTransformer3DModel(**tr_cfg)
    vae, tr = vae.to(dtype), tr.to(dtype)
    prior = (WanPrior if kind == "wan" else CogVideoXPrior)(vae, tr, text_length=text_len)
    g = torch.Generator().manual_seed(seed)
    text = TextEmbeddings(torch.randn(1, text_len, 4096, generator=g).to(device, dtype),
                          torch.randn(1, text_len, 4096, generator=g).to(device, dtype))
    return prior, text


def tiny_text(seed: int = 0, length: int = 8) -> TextEmbeddings:
    """Random text embeddings matching the tiny priors (no text encoder needed)."""
    g = torch.Generator().manual_seed(seed)
    return TextEmbeddings(torch.randn(1, length, TINY_TEXT_DIM, generator=g),
                          torch.randn(1, length, TINY_TEXT_DIM, generator=g))


class AnalyticPrior(VideoPrior):
    """A teacher with a known answer, for the end-to-end SDS test: a deterministic encoder (average pooling to
    ``factor`` x lower resolution, frames kept) and a clean-latent prediction that is the encoding of a target video,
    whatever the noise. SDS then descends ``0.5 ||E(render(theta)) - E(target)||^2``."""

    kind = "analytic"
    frames_multiple = 1

    def __init__(self, target_video: Tensor, factor: int = 4):
        self.factor = factor
        self.target = self.encode(target_video).detach()

    def encode(self, video: Tensor) -> Tensor:
        B, C, F, H, W = video.shape
        x = video.permute(0, 2, 1, 3, 4).reshape(B * F, C, H, W)
        z = torch.nn.functional.avg_pool2d(x, self.factor)
        return z.reshape(B, F, C, H // self.factor, W // self.factor).permute(0, 2, 1, 3, 4)

    def add_noise(self, z: Tensor, eps: Tensor, t: float) -> Tensor:
        return (1 - t) * z + t * eps

    def clean_estimate(self, z_t: Tensor, t: float, text: TextEmbeddings, guidance: float) -> Tensor:
        return self.target.expand_as(z_t)

    def embed(self, prompt: str) -> TextEmbeddings:
        return TextEmbeddings(torch.zeros(1, 1, 1), torch.zeros(1, 1, 1))
