"""Speech paired with a second modality: CLIP/CLAP-style speech–text and visually grounded speech.

Both methods align a pooled speech embedding ``f(x)`` with the embedding of the utterance's
paired text ``g(t)`` or image ``h(v)`` by the symmetric InfoNCE loss with a learnable
temperature of CLIP (Radford et al. 2021, "Learning Transferable Visual Models From Natural
Language Supervision", ICML, Fig. 3 pseudo-code) as CLAP uses it for audio and text (Elizalde
et al. 2023, "CLAP: Learning Audio Concepts from Natural Language Supervision", ICASSP, eq. 2–3):

    ``s_ij = exp(t) · ⟨f̂_i, ĝ_j⟩``  (unit-norm embeddings, ``t`` = log of the inverse temperature 1/τ)
    ``L = ½ [ CE(s, I) + CE(sᵀ, I) ]`` (rows: speech → text, columns: text → speech)

with ``t`` initialised at ``log(1/0.07)`` and clipped so that ``exp(t) ≤ 100`` (CLIP §2.5).
Visually grounded speech is the same objective between speech and an image encoder, the
retrieval formulation of Harwath, Torralba & Glass (2016), "Unsupervised Learning of Spoken
Language with Visual Context" (NeurIPS), and Harwath et al. (2018), "Jointly Discovering
Visual Objects and Spoken Words from Raw Sensory Input" (ECCV), with CLIP's softmax loss
in place of their margin ranking loss.

Rows whose paired text is identical (a keyword corpus says each word many times) are not
negatives of each other: with ``positives: text`` (or a label column, e.g. ``keyword``) the
targets of a row are spread uniformly over every column of the same text (label), the
multi-positive form of UniCL (Yang et al. 2022, "Unified Contrastive Learning in
Image-Text-Label Space", CVPR, eq. 3); with unique pairs it is CLIP's loss exactly.

Under data parallelism the embeddings are gathered over ranks with gradients
(:func:`speechssl.distributed.all_gather_cat`), so every rank computes the loss of the
global batch, as open_clip's ``gather_with_grad``; see :mod:`speechssl.distributed` for why
DDP's gradient averaging then gives exactly the single-process gradient.

The speech encoder is read only through its public forward (masked mean of hidden state
``layer`` over valid frames, then a linear projection), so a multi-modal run's encoder is an
ordinary upstream. The heads of a run (projection, text or image encoder, temperature) are
a :class:`MultimodalTerm`, which the ``joint`` method (:mod:`speechssl.methods.joint`) adds
to any speech objective; :func:`load_multimodal` rebuilds them from a checkpoint for retrieval.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from speechssl import distributed
from speechssl.config import ConfigError
from speechssl.data.batch import AudioBatch
from speechssl.data.config import DataConfig
from speechssl.methods.base import MethodOutput, PretextMethod
from speechssl.models import SpeechEncoder, masked_mean
from speechssl.models.encoder import EncoderConfig

HF_PREFIX = "hf:"
PAD, BOS = 256, 257  # the character encoder's tokens beyond the 256 byte values


@dataclass
class InfoNCEOutput:
    """The symmetric InfoNCE loss and what it was computed from.

    Attributes:
        loss: scalar ``½ (speech→other + other→speech)`` cross-entropy.
        logits: ``(global batch, global batch)`` scaled similarities, speech rows × other columns.
        accuracy: scalar share of speech rows whose best column is a positive.
    """

    loss: torch.Tensor
    logits: torch.Tensor
    accuracy: torch.Tensor


def info_nce_targets(groups: torch.Tensor | None, size: int, device: torch.device) -> torch.Tensor:
    """``(size, size)`` target distributions: the identity without ``groups``, else row ``i`` uniform
    over the columns ``j`` with ``groups[j] == groups[i]`` (symmetric, so also the columns')."""
    if groups is None:
        return torch.eye(size, device=device)
    same = (groups[:, None] == groups[None, :]).float()  # (size, size)
    return same / same.sum(dim=1, keepdim=True)


def symmetric_info_nce(
    speech: torch.Tensor,
    other: torch.Tensor,
    logit_scale: torch.Tensor,
    groups: torch.Tensor | None = None,
) -> InfoNCEOutput:
    """CLIP's symmetric InfoNCE (Radford et al. 2021, Fig. 3) on unit-normalised embeddings.

    ``logits = exp(logit_scale) · ŝ ôᵀ``; ``L = ½ [CE(logits, T) + CE(logitsᵀ, T)]`` with ``T`` the
    identity (each row's pair) or, with ``groups``, uniform over the rows of the same group.

    Args:
        speech: ``(batch, dim)`` speech embeddings (normalised here).
        other: ``(batch, dim)`` embeddings of the paired text or images, row ``i`` paired with speech row ``i``.
        logit_scale: scalar ``t = log(1/τ)``.
        groups: ``(batch,)`` int64 group ids (equal ids are positives of each other), or None.

    Raises:
        ValueError: ``speech`` and ``other`` are not equal-shape ``(batch, dim)`` matrices.
    """
    if speech.dim() != 2 or speech.shape != other.shape:
        raise ValueError(
            f"expected speech and other of equal shape (batch, dim), found {tuple(speech.shape)} and "
            f"{tuple(other.shape)}"
        )
    dtype = torch.promote_types(speech.dtype, torch.float32)
    with torch.autocast(device_type=speech.device.type, enabled=False):
        speech_unit = F.normalize(speech.to(dtype), dim=-1)  # (batch, dim)
        other_unit = F.normalize(other.to(dtype), dim=-1)  # (batch, dim)
        logits = logit_scale.to(dtype).exp() * speech_unit @ other_unit.T  # (batch, batch)
        targets = info_nce_targets(groups, logits.shape[0], logits.device)
        loss = 0.5 * (F.cross_entropy(logits, targets) + F.cross_entropy(logits.T, targets))
        best = logits.argmax(dim=1, keepdim=True)  # (batch, 1)
        accuracy = (targets.gather(1, best) > 0).float().mean()
    return InfoNCEOutput(loss, logits, accuracy)


class SymmetricInfoNCE(nn.Module):
    """:func:`symmetric_info_nce` with CLIP's learnable temperature, over the global batch.

    Args:
        temperature: initial τ (CLIP: 0.07, so ``t = log(1/0.07)``).
        max_logit_scale: the largest ``exp(t)`` (CLIP: 100); :meth:`clamp_` enforces it after each update.
        learn_temperature: train ``t``; otherwise it stays at its initial value.
        gather_distributed: gather the embeddings of every rank (with gradients) when a process group is active.
    """

    def __init__(
        self,
        temperature: float = 0.07,
        max_logit_scale: float = 100.0,
        learn_temperature: bool = True,
        gather_distributed: bool = True,
    ) -> None:
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"temperature: expected > 0, found {temperature}")
        if max_logit_scale < 1.0 / temperature:
            raise ValueError(
                f"max_logit_scale: expected >= 1/temperature = {1.0 / temperature:.3g}, found {max_logit_scale}"
            )
        self.logit_scale = nn.Parameter(
            torch.tensor(math.log(1.0 / temperature)), requires_grad=learn_temperature
        )
        self.max_log_scale = math.log(max_logit_scale)
        self.gather_distributed = gather_distributed

    def forward(
        self, speech: torch.Tensor, other: torch.Tensor, groups: torch.Tensor | None = None
    ) -> InfoNCEOutput:
        """The loss of this rank's ``speech``/``other`` ``(batch, dim)`` rows against the global batch."""
        if self.gather_distributed and distributed.is_distributed():
            speech = distributed.all_gather_cat(speech)  # (global batch, dim)
            other = distributed.all_gather_cat(other)  # (global batch, dim)
            groups = distributed.all_gather_cat(groups) if groups is not None else None
        return symmetric_info_nce(speech, other, self.logit_scale, groups)

    @torch.no_grad()
    def clamp_(self) -> None:
        """Clip ``t`` to ``[0, log(max_logit_scale)]`` in place, as CLIP and open_clip do after each step."""
        self.logit_scale.clamp_(0.0, self.max_log_scale)


@dataclass
class TextEncoderConfig:
    """The text encoder ``g``.

    Attributes:
        model: ``chars`` (a transformer over the UTF-8 bytes of the text, trained from scratch)
            or ``hf:<dir>`` (a frozen transformers text model saved in ``<dir>``, read offline,
            mean-pooled over its tokens; only the projection after it is trained).
        dim: width of the character transformer.
        layers: its layers.
        heads: its attention heads.
        ffn_dim: its feed-forward width.
        max_chars: texts are cut to this many bytes (one more token: the pooled ``BOS``).
        dropout: its dropout.
        lowercase: lower-case every text first (LibriSpeech transcripts are upper-case).
    """

    model: str = "chars"
    dim: int = 256
    layers: int = 2
    heads: int = 4
    ffn_dim: int = 1024
    max_chars: int = 128
    dropout: float = 0.1
    lowercase: bool = True

    def __post_init__(self) -> None:
        if self.model != "chars" and not self.model.startswith(HF_PREFIX):
            raise ValueError(f"model: expected 'chars' or 'hf:<dir>', found {self.model!r}")
        if self.model.startswith(HF_PREFIX) and not self.model.removeprefix(HF_PREFIX):
            raise ValueError("model: expected a folder after 'hf:', found none")
        for name in ("dim", "layers", "heads", "ffn_dim", "max_chars"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: expected >= 1, found {getattr(self, name)}")
        if self.dim % self.heads:
            raise ValueError(f"dim: expected a multiple of heads = {self.heads}, found {self.dim}")


@dataclass
class ImageEncoderConfig:
    """The image encoder ``h``: 3×3 convolutions with ReLU, then global average pooling.

    Attributes:
        in_channels: channels of the paired images (1 for the 8×8 digits).
        channels: output channels of each convolution.
        strides: stride of each convolution (same length as ``channels``).
    """

    in_channels: int = 1
    channels: list[int] = field(default_factory=lambda: [32, 64, 128])
    strides: list[int] = field(default_factory=lambda: [1, 2, 2])

    def __post_init__(self) -> None:
        if self.in_channels < 1 or not self.channels or min(self.channels) < 1:
            raise ValueError(
                f"in_channels/channels: expected positive sizes, found {self.in_channels} and {self.channels}"
            )
        if len(self.strides) != len(self.channels) or min(self.strides) < 1:
            raise ValueError(
                f"strides: expected {len(self.channels)} positive strides (one per channel), found {self.strides}"
            )


@dataclass
class MultimodalConfig:
    """What both multi-modal objectives share.

    Attributes:
        embed_dim: width of the joint embedding space (CLIP ViT-B: 512; CLAP: 1024).
        layer: hidden state of the speech encoder that is pooled (``-1``: the last).
        temperature: initial τ (CLIP: 0.07).
        max_logit_scale: the largest ``1/τ`` (CLIP: 100).
        learn_temperature: train τ (CLIP: yes).
        positives: ``pair`` (CLIP: only its own pair), ``text`` (rows of identical paired text
            are positives of each other) or a label column of the batch (e.g. ``keyword``).
    """

    embed_dim: int = 512
    layer: int = -1
    temperature: float = 0.07
    max_logit_scale: float = 100.0
    learn_temperature: bool = True
    positives: str = "pair"

    def __post_init__(self) -> None:
        if self.embed_dim < 1:
            raise ValueError(f"embed_dim: expected >= 1, found {self.embed_dim}")
        if self.temperature <= 0:
            raise ValueError(f"temperature: expected > 0, found {self.temperature}")
        if self.max_logit_scale < 1.0 / self.temperature:
            raise ValueError(
                f"max_logit_scale: expected >= 1/temperature = {1.0 / self.temperature:.3g}, "
                f"found {self.max_logit_scale}"
            )
        if not self.positives:
            raise ValueError("positives: expected 'pair', 'text' or a label column, found ''")


@dataclass
class SpeechTextConfig(MultimodalConfig):
    """Speech–text contrastive pretraining (CLIP / CLAP), paper defaults.

    Attributes:
        text: the text encoder.
        positives: ``text`` by default: identical texts are one caption.
    """

    positives: str = "text"
    text: TextEncoderConfig = field(default_factory=TextEncoderConfig)


@dataclass
class VisuallyGroundedConfig(MultimodalConfig):
    """Visually grounded speech (Harwath et al. 2016, 2018) with CLIP's loss.

    Attributes:
        image: the image encoder.
    """

    image: ImageEncoderConfig = field(default_factory=ImageEncoderConfig)


def text_bytes(texts: Sequence[str], max_chars: int, lowercase: bool) -> torch.Tensor:
    """``(batch, max_chars + 1)`` int64 tokens: ``BOS``, the UTF-8 bytes (cut at ``max_chars``), ``PAD``.

    The width is fixed by ``max_chars`` (not by the longest text), so no shape depends on the data.
    """
    rows = []
    for text in texts:
        encoded = list((text.lower() if lowercase else text).encode("utf-8"))[:max_chars]
        rows.append([BOS, *encoded] + [PAD] * (max_chars - len(encoded)))
    return torch.tensor(rows, dtype=torch.int64)


class CharTextEncoder(nn.Module):
    """``g``: a small pre-LN transformer over the UTF-8 bytes of a text, pooled at its first token.

    Bytes need no vocabulary fitted on the corpus and read any script (the Arabic keywords
    too). The embedding of the leading ``BOS`` token after the last layer is the text's
    embedding (BERT's ``[CLS]``); padding is masked out of attention.
    """

    def __init__(self, config: TextEncoderConfig) -> None:
        super().__init__()
        self.config = config
        self.tokens = nn.Embedding(BOS + 1, config.dim, padding_idx=PAD)
        self.positions = nn.Parameter(torch.zeros(config.max_chars + 1, config.dim))
        nn.init.normal_(self.positions, std=0.02)
        layer = nn.TransformerEncoderLayer(
            config.dim,
            config.heads,
            config.ffn_dim,
            config.dropout,
            activation="gelu",
            batch_first=True,
            norm_first=True,
        )
        self.layers = nn.TransformerEncoder(layer, config.layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(config.dim)
        self.out_dim = config.dim

    def forward(self, texts: Sequence[str], device: torch.device) -> torch.Tensor:
        """``(batch, dim)`` embeddings of ``texts``."""
        tokens = text_bytes(texts, self.config.max_chars, self.config.lowercase).to(
            device
        )  # (batch, 1 + max_chars)
        hidden = self.tokens(tokens) + self.positions  # (batch, 1 + max_chars, dim)
        hidden = self.layers(hidden, src_key_padding_mask=tokens == PAD)
        return self.norm(hidden[:, 0])  # (batch, dim) at BOS


class FrozenTextModel(nn.Module):
    """``g`` from a transformers text model saved in a local folder (never downloaded), frozen.

    The model is kept outside the module's parameters and state dict (it is not trained and
    its weights stay in its folder, which the run's config names); its last hidden state is
    mean-pooled over the tokens of each text.
    """

    def __init__(self, directory: str) -> None:
        super().__init__()
        try:
            from transformers import AutoModel, AutoTokenizer
        except ImportError as err:
            raise ImportError("text.model hf:<dir> needs transformers: pip install 'speechssl[hf]'") from err
        if not Path(directory).is_dir():
            raise FileNotFoundError(
                f"text.model: {directory} is not a folder (a transformers model saved offline)"
            )
        self.tokenizer = AutoTokenizer.from_pretrained(directory, local_files_only=True)
        model = AutoModel.from_pretrained(directory, local_files_only=True).eval().requires_grad_(False)
        self.__dict__["model"] = model  # not a submodule: out of state_dict() and parameters()
        self.out_dim = int(model.config.hidden_size)

    @torch.no_grad()
    def forward(self, texts: Sequence[str], device: torch.device) -> torch.Tensor:
        """``(batch, hidden)`` mean of the model's last hidden state over each text's tokens."""
        model = self.__dict__["model"].to(device)
        encoded = self.tokenizer(list(texts), padding=True, truncation=True, return_tensors="pt").to(device)
        hidden = model(**encoded).last_hidden_state  # (batch, tokens, hidden)
        mask = encoded["attention_mask"][:, :, None].to(hidden.dtype)  # (batch, tokens, 1)
        return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)


class ImageEncoder(nn.Module):
    """``h``: ``[Conv2d 3×3 → ReLU]`` per channel width, global average pooling; any ``(channels, H, W)``."""

    def __init__(self, config: ImageEncoderConfig) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = config.in_channels
        for channels, stride in zip(config.channels, config.strides, strict=True):
            layers += [nn.Conv2d(width, channels, 3, stride=stride, padding=1), nn.ReLU()]
            width = channels
        self.layers = nn.Sequential(*layers)
        self.in_channels = config.in_channels
        self.out_dim = width

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """``(batch, channels, height, width)`` → ``(batch, out_dim)``."""
        if images.dim() != 4 or images.shape[1] != self.in_channels:
            raise ValueError(
                f"images: expected (batch, {self.in_channels}, height, width), found {tuple(images.shape)}"
            )
        return self.layers(images).mean(dim=(2, 3))  # (batch, out_dim, h, w) -> (batch, out_dim)


def _group_ids(values: Sequence[str], device: torch.device) -> torch.Tensor:
    """``(batch,)`` int64 CRC-32 of each value: equal values, equal ids (on every rank alike)."""
    return torch.tensor([zlib.crc32(str(value).encode()) for value in values], dtype=torch.int64).to(device)


class MultimodalTerm(nn.Module):
    """The heads and loss of a multi-modal objective, applied to any speech encoder.

    ``forward(encoder, batch)`` embeds the batch's speech with ``encoder`` (its public
    forward), the paired modality with the term's own encoder, and returns the symmetric
    InfoNCE loss; the ``joint`` method calls it beside another objective.

    Subclasses set :attr:`modality` and implement :meth:`embed_other` and :meth:`paired`.
    """

    modality: str

    def __init__(self, speech_dim: int, config: MultimodalConfig, other_dim: int) -> None:
        super().__init__()
        self.config = config
        self.speech_projection = nn.Linear(speech_dim, config.embed_dim)
        self.other_projection = nn.Linear(other_dim, config.embed_dim)
        self.loss = SymmetricInfoNCE(config.temperature, config.max_logit_scale, config.learn_temperature)

    @classmethod
    def check_data(cls, data: DataConfig) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def paired(self, batch: AudioBatch) -> Any:  # pragma: no cover - abstract
        """The batch's paired modality; raises a ValueError when it has none."""
        raise NotImplementedError

    def encode_other(self, paired: Any, device: torch.device) -> torch.Tensor:  # pragma: no cover
        """``(batch, other_dim)`` features of the paired modality before the projection."""
        raise NotImplementedError

    def embed_speech(
        self, encoder: SpeechEncoder, waveforms: torch.Tensor, lengths: torch.Tensor
    ) -> torch.Tensor:
        """``(batch, embed_dim)`` projection of hidden state ``layer`` mean-pooled over valid frames."""
        output = encoder(waveforms, lengths)
        count = len(output.hidden_states)
        if not -count <= self.config.layer < count:
            raise ValueError(
                f"layer: expected an index into the encoder's {count} hidden states "
                f"(-{count}..{count - 1}), found {self.config.layer}"
            )
        pooled = masked_mean(output.hidden_states[self.config.layer], output.lengths)  # (batch, dim)
        return self.speech_projection(pooled)

    def embed_other(self, paired: Any, device: torch.device) -> torch.Tensor:
        """``(batch, embed_dim)`` embeddings of the paired texts or images."""
        return self.other_projection(self.encode_other(paired, device))

    def groups(self, batch: AudioBatch) -> torch.Tensor | None:
        """The rows' group ids for :attr:`MultimodalConfig.positives` (None: pairs only)."""
        positives = self.config.positives
        if positives == "pair":
            return None
        if positives == "text":
            if batch.text is None:
                raise ValueError("positives: 'text' needs the batch's paired text (set data.text_column)")
            return _group_ids(batch.text, batch.waveforms.device)
        if positives not in batch.labels:
            raise ValueError(
                f"positives: expected 'pair', 'text' or a label column of the batch "
                f"({', '.join(batch.labels) or 'none'}), found {positives!r}"
            )
        return _group_ids(batch.labels[positives], batch.waveforms.device)

    def forward(self, encoder: SpeechEncoder, batch: AudioBatch) -> MethodOutput:
        """The loss of ``batch``, with the inverse temperature and the in-batch retrieval accuracy."""
        speech = self.embed_speech(encoder, batch.waveforms, batch.lengths)  # (batch, embed_dim)
        other = self.embed_other(self.paired(batch), batch.waveforms.device)  # (batch, embed_dim)
        terms = self.loss(speech, other, self.groups(batch))
        metrics = {
            "logit_scale": self.loss.logit_scale.detach().exp(),
            f"{self.modality}_retrieval_accuracy": terms.accuracy.detach(),
        }
        return MethodOutput(terms.loss, metrics)


class SpeechTextTerm(MultimodalTerm):
    """Speech ↔ text: ``g`` is :class:`CharTextEncoder` or a frozen :class:`FrozenTextModel`."""

    modality = "text"

    def __init__(self, speech_dim: int, config: SpeechTextConfig) -> None:
        text = config.text
        encoder = (
            FrozenTextModel(text.model.removeprefix(HF_PREFIX))
            if text.model.startswith(HF_PREFIX)
            else CharTextEncoder(text)
        )
        super().__init__(speech_dim, config, encoder.out_dim)
        self.text_encoder = encoder

    @classmethod
    def check_data(cls, data: DataConfig) -> None:
        if data.text_column is None:
            raise ConfigError(
                "data.text_column: speech_text needs the column of each utterance's paired text "
                "(e.g. transcript, keyword, word), found null"
            )

    def paired(self, batch: AudioBatch) -> list[str]:
        if batch.text is None:
            raise ValueError(
                "speech_text: expected a batch with paired text (set data.text_column), found none"
            )
        return batch.text

    def encode_other(self, paired: list[str], device: torch.device) -> torch.Tensor:
        return self.text_encoder(paired, device)


class VisuallyGroundedTerm(MultimodalTerm):
    """Speech ↔ image: ``h`` is :class:`ImageEncoder`."""

    modality = "image"

    def __init__(self, speech_dim: int, config: VisuallyGroundedConfig) -> None:
        encoder = ImageEncoder(config.image)
        super().__init__(speech_dim, config, encoder.out_dim)
        self.image_encoder = encoder

    @classmethod
    def check_data(cls, data: DataConfig) -> None:
        if data.image_column is None:
            raise ConfigError(
                "data.image_column: visually_grounded needs the column of each utterance's paired image "
                "(e.g. image, written by speechssl data pair-digits), found null"
            )

    def paired(self, batch: AudioBatch) -> torch.Tensor:
        if batch.images is None:
            raise ValueError(
                "visually_grounded: expected a batch with paired images (set data.image_column), found none"
            )
        return batch.images

    def encode_other(self, paired: torch.Tensor, device: torch.device) -> torch.Tensor:
        return self.image_encoder(paired.to(device))


TERMS: dict[str, tuple[type[MultimodalConfig], type[MultimodalTerm]]] = {
    "speech_text": (SpeechTextConfig, SpeechTextTerm),
    "visually_grounded": (VisuallyGroundedConfig, VisuallyGroundedTerm),
}


class MultimodalMethod(PretextMethod):
    """A speech encoder trained by one :class:`MultimodalTerm` alone."""

    min_batch_size = 2  # an InfoNCE row needs a negative
    term_class: type[MultimodalTerm]

    def __init__(self, encoder: SpeechEncoder, config: MultimodalConfig) -> None:
        super().__init__()
        self.encoder = encoder
        self.config = config
        self.term = self.term_class(encoder.dim, config)

    @classmethod
    def prepare(cls, config: Any, encoder_config: EncoderConfig, data: DataConfig, run_dir: Path) -> Any:
        """Check that the data carries the paired modality; the config is returned unchanged."""
        cls.term_class.check_data(data)
        return config

    def forward(self, batch: AudioBatch) -> MethodOutput:
        return self.term(self.encoder, batch)

    def on_step_end(self, step: int, max_steps: int) -> None:
        """Clip the temperature (CLIP §2.5)."""
        self.term.loss.clamp_()


class SpeechText(MultimodalMethod):
    """CLIP/CLAP-style speech–text pretraining (see the module docstring)."""

    term_class = SpeechTextTerm


class VisuallyGrounded(MultimodalMethod):
    """Visually grounded speech (see the module docstring)."""

    term_class = VisuallyGroundedTerm


def load_multimodal(checkpoint: str | Path) -> tuple[SpeechEncoder, MultimodalTerm, str]:
    """The speech encoder, multi-modal heads and term name of a multi-modal run or checkpoint
    (``speech_text``, ``visually_grounded`` or ``joint``), frozen, in eval mode.

    Raises:
        ValueError: the checkpoint's method has no multi-modal term (naming it).
    """
    from safetensors.torch import load_file

    from speechssl.config import load_yaml
    from speechssl.methods import build_method, method_config
    from speechssl.models.checkpoint import load_encoder, resolve_checkpoint

    folder = resolve_checkpoint(checkpoint)
    config = load_yaml(folder / "config.yaml") or {}
    name = config.get("method")
    objective = config.get("objective") or {}
    term = objective.get("term") if name == "joint" else name
    if term not in TERMS:
        raise ValueError(
            f"{folder}: expected a multi-modal run ({', '.join(TERMS)} or joint), found method {name!r}"
        )
    method = build_method(name, method_config(name, objective), load_encoder(folder))
    method.load_state_dict(load_file(folder / "model.safetensors", device="cpu"))
    method.eval().requires_grad_(False)
    return method.encoder, method.term, term


__all__ = [
    "TERMS",
    "CharTextEncoder",
    "FrozenTextModel",
    "ImageEncoder",
    "ImageEncoderConfig",
    "InfoNCEOutput",
    "MultimodalConfig",
    "MultimodalMethod",
    "MultimodalTerm",
    "SpeechText",
    "SpeechTextConfig",
    "SpeechTextTerm",
    "SymmetricInfoNCE",
    "TextEncoderConfig",
    "VisuallyGrounded",
    "VisuallyGroundedConfig",
    "VisuallyGroundedTerm",
    "info_nce_targets",
    "load_multimodal",
    "symmetric_info_nce",
    "text_bytes",
]
