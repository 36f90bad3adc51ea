"""speechssl pretraining methods and their Hugging Face transformers counterparts, built alike.

Shared by ``benchmarks/vs_transformers.py`` and ``benchmarks/mfu.py``. A speechssl method is
built through its public API (the shipped pretraining config, ``build_pretrain_method``) on
the encoder preset over wav2vec 2.0's waveform CNN; its transformers counterpart gets the
same architecture (``transformers_kwargs``): the same CNN, pre-LN Transformer
(``do_stable_layer_norm``), positional convolution, dropouts and LayerDrop, and for wav2vec 2.0
the same quantizer and projection sizes. A training step is forward (with the mask drawn
inside it), backward, AdamW step and ``zero_grad`` on each side; nothing is clipped.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from transformers import HubertConfig, HubertModel, Wav2Vec2Config, Wav2Vec2ForPreTraining
from transformers.models.wav2vec2.modeling_wav2vec2 import _compute_mask_indices, _sample_negative_indices

from speechssl.data.audio import DEFAULT_SAMPLE_RATE
from speechssl.data.batch import AudioBatch
from speechssl.methods import MethodOutput, PretextMethod
from speechssl.methods.hubert import HuBERTConfig
from speechssl.methods.wav2vec2 import Wav2Vec2Config as Wav2Vec2Objective
from speechssl.models.encoder import (
    EncoderConfig,
    UnitFeatureConfig,
    UnitTokenizerConfig,
    load_encoder_preset,
)
from speechssl.models.units import UnitFeatures, UnitTokenizer, save_unit_tokenizer
from speechssl.train.config import PretrainConfig, load_pretrain_config
from speechssl.train.pretrain import build_pretrain_method
from speechssl.train.trainer import build_optimizer


def waveform_config(preset: str, conv_norm: str = "group") -> EncoderConfig:
    """Encoder preset ``preset`` on the wav2vec 2.0 waveform CNN (512 channels, ``conv_norm``)."""
    return dataclasses.replace(
        load_encoder_preset(preset), frontend="waveform", conv_channels=512, conv_norm=conv_norm
    )


def parameter_count(module: nn.Module) -> int:
    return sum(parameter.numel() for parameter in module.parameters())


def transformers_kwargs(config: EncoderConfig) -> dict:
    """Keyword arguments of ``Wav2Vec2Config`` / ``HubertConfig`` for the architecture of ``config``.

    speechssl's Transformer is pre-LN with a final LayerNorm (``do_stable_layer_norm``); its
    ``dropout`` falls on the front-end output (``feat_proj_dropout``), the Transformer input
    and each residual branch (``hidden_dropout``).
    """
    return {
        "hidden_size": config.dim,
        "num_hidden_layers": config.layers,
        "num_attention_heads": config.heads,
        "intermediate_size": config.ffn_dim,
        "hidden_dropout": config.dropout,
        "feat_proj_dropout": config.dropout,
        "attention_dropout": config.attention_dropout,
        "activation_dropout": config.activation_dropout,
        "layerdrop": config.layer_drop,
        "conv_dim": (config.conv_channels,) * len(config.conv_kernels),
        "conv_kernel": config.conv_kernels,
        "conv_stride": config.conv_strides,
        "conv_bias": config.conv_bias,
        "feat_extract_norm": config.conv_norm,
        "num_conv_pos_embeddings": config.pos_conv_kernel,
        "num_conv_pos_embedding_groups": config.pos_conv_groups,
        "do_stable_layer_norm": True,
    }


def objective_config_name(method: str, preset: str) -> str:
    """The shipped pretraining config whose objective a preset trains with: ``<method>_tiny`` for
    tiny, ``<method>_base`` (the paper's) for every larger preset."""
    return f"{method}_{'tiny' if preset == 'tiny' else 'base'}"


def mfcc_tokenizer(num_units: int, seed: int = 0) -> UnitTokenizer:
    """A frozen MFCC tokenizer at the waveform CNN's 20 ms (10 ms frames pooled 2x) with random
    centroids: HuBERT iteration 1's label work per step, without fitting the k-means."""
    features = UnitFeatures(UnitFeatureConfig(source="mfcc", pool=2))
    config = UnitTokenizerConfig(features=features.config, num_units=num_units, feature_dim=features.dim)
    centroids = torch.randn(num_units, features.dim, generator=torch.Generator().manual_seed(seed))
    return UnitTokenizer(config, features, centroids=centroids)


def pretrain_config(method: str, preset: str, units_dir: Path) -> PretrainConfig:
    """The shipped config of ``method`` for ``preset`` (:func:`objective_config_name`) on
    :func:`waveform_config` of ``preset`` (the config's own encoder at base).

    HuBERT reads the :func:`mfcc_tokenizer` saved into ``units_dir``; its MFCC frames outnumber the CNN's by up to 2, hence ``length_tolerance=2``.
    """
    # The benchmarks feed their own batch: the corpus (base configs name no root) is never read.
    config = load_pretrain_config(objective_config_name(method, preset), overrides=["data.root=unused"])
    encoder = config.encoder if preset == "base" else waveform_config(preset, config.encoder.conv_norm)
    objective = config.objective
    if method == "hubert":
        save_unit_tokenizer(mfcc_tokenizer(objective.targets.num_units), units_dir)
        objective = dataclasses.replace(objective, units=str(units_dir), length_tolerance=2)
    return dataclasses.replace(config, encoder=encoder, objective=objective)


def padded_batch(
    seconds: list[float], device: str | torch.device = "cpu", sample_rate: int = DEFAULT_SAMPLE_RATE
) -> AudioBatch:
    """Noise utterances of ``seconds`` each at ``sample_rate``, zero-padded to the longest:
    waveforms ``(batch, samples)`` and lengths ``(batch,)``."""
    generator = torch.Generator().manual_seed(0)
    lengths = torch.tensor([int(s * sample_rate) for s in seconds])  # (batch,)
    waveforms = torch.randn(len(lengths), int(lengths.max()), generator=generator) * 0.1  # (batch, samples)
    valid = torch.arange(waveforms.shape[1])[None, :] < lengths[:, None]  # (batch, samples)
    return AudioBatch(
        (waveforms * valid).to(device), lengths.to(device), ids=[str(i) for i in range(len(lengths))]
    )


def sample_attention_mask(batch: AudioBatch) -> torch.Tensor:
    """``(batch, samples)`` int64, 1 on valid samples: transformers' ``attention_mask``."""
    positions = torch.arange(batch.waveforms.shape[1], device=batch.waveforms.device)  # (samples,)
    return (positions[None, :] < batch.lengths[:, None]).long()


def span_mask(model: Wav2Vec2ForPreTraining | HubertModel, attention_mask: torch.Tensor) -> np.ndarray:
    """``(batch, frames)`` bool span mask over the valid frames, drawn by transformers'
    ``_compute_mask_indices`` with ``model``'s ``mask_time_*`` options.

    Args:
        model: the transformers model (its config and CNN frame arithmetic).
        attention_mask: ``(batch, samples)`` 1 on valid samples.
    """
    config = model.config
    frames = int(model._get_feat_extract_output_lengths(attention_mask.shape[1]))
    frame_mask = model._get_feature_vector_attention_mask(frames, attention_mask)  # (batch, frames)
    return _compute_mask_indices(
        (attention_mask.shape[0], frames),
        config.mask_time_prob,
        config.mask_time_length,
        attention_mask=frame_mask.cpu(),
        min_masks=config.mask_time_min_masks,
    )


class TransformersWav2Vec2(nn.Module):
    """``Wav2Vec2ForPreTraining`` with its mask and distractors drawn per call, as speechssl's
    method draws them inside its forward (transformers' own numpy helpers, which its
    pretraining example runs in the data collator).

    speechssl's wav2vec 2.0 also pays the L2 feature penalty and scales the CNN's gradient
    (BASE, §4.2), which transformers leaves out; transformers scores all frames against their
    distractors where speechssl scores only the masked ones.
    """

    def __init__(self, encoder: EncoderConfig, objective: Wav2Vec2Objective) -> None:
        super().__init__()
        self.model = Wav2Vec2ForPreTraining(
            Wav2Vec2Config(
                **transformers_kwargs(encoder),
                mask_time_prob=objective.mask_prob,
                mask_time_length=objective.mask_length,
                mask_time_min_masks=objective.min_masks,
                num_negatives=objective.num_negatives,
                contrastive_logits_temperature=objective.temperature,
                diversity_loss_weight=objective.diversity_weight,
                num_codevector_groups=objective.codebook_groups,
                num_codevectors_per_group=objective.codebook_entries,
                codevector_dim=objective.codebook_dim,
                proj_codevector_dim=objective.final_dim,
                feat_quantizer_dropout=objective.quantizer_dropout,
            )
        )
        self.model.set_gumbel_temperature(objective.gumbel.start)

    def forward(self, batch: AudioBatch) -> MethodOutput:
        """The contrastive and diversity loss of ``batch`` (waveforms ``(batch, samples)``)."""
        attention_mask = sample_attention_mask(batch)  # (batch, samples)
        mask = span_mask(self.model, attention_mask)  # (batch, frames) numpy bool
        num_negatives = self.model.config.num_negatives
        negatives = _sample_negative_indices(mask.shape, num_negatives, mask)  # (batch, frames, K)
        device = batch.waveforms.device
        output = self.model(
            batch.waveforms,
            attention_mask=attention_mask,
            mask_time_indices=torch.from_numpy(mask).to(device),
            sampled_negative_indices=torch.from_numpy(negatives.astype(np.int64)).to(device),
        )
        return MethodOutput(output.loss)


class TransformersHuBERT(nn.Module):
    """transformers ``HubertModel`` plus HuBERT's head (Hsu et al. 2021, §II-A and §III): a
    projection ``A`` to ``final_dim``, unit embeddings ``e_c``, logits ``cos(A o_t, e_c) / τ`` and
    the cross-entropy of the units at the masked frames (``β = 1``), as in fairseq's
    ``HubertModel`` (transformers has no HuBERT pretraining head).

    The targets come from the same frozen tokenizer the speechssl method runs inside its
    forward, so both sides do the same label work; the span mask is transformers' own.
    """

    def __init__(self, encoder: EncoderConfig, objective: HuBERTConfig, tokenizer: UnitTokenizer) -> None:
        super().__init__()
        self.model = HubertModel(
            HubertConfig(
                **transformers_kwargs(encoder),
                mask_time_prob=objective.mask_prob,
                mask_time_length=objective.mask_length,
                mask_time_min_masks=objective.min_masks,
            )
        )
        self.tokenizer = tokenizer
        self.temperature = objective.temperature
        self.final_projection = nn.Linear(encoder.dim, objective.final_dim)
        self.unit_embeddings = nn.Parameter(torch.rand(tokenizer.num_units, objective.final_dim))

    def forward(self, batch: AudioBatch) -> MethodOutput:
        """The masked-frame cross-entropy ``L_m`` of ``batch`` (waveforms ``(batch, samples)``)."""
        attention_mask = sample_attention_mask(batch)  # (batch, samples)
        mask = torch.from_numpy(span_mask(self.model, attention_mask)).to(batch.waveforms.device)
        frames = mask.shape[1]
        # MFCC frames outnumber the CNN's by up to 2: units beyond the last frame are dropped.
        sequence = self.tokenizer(batch.waveforms, batch.lengths)
        units = sequence.units[:, :frames]  # (batch, frames), -1 on padding
        hidden = self.model(
            batch.waveforms, attention_mask=attention_mask, mask_time_indices=mask
        ).last_hidden_state  # (batch, frames, dim)
        selected = mask & (units >= 0)  # (batch, frames)
        queries = F.normalize(self.final_projection(hidden[selected]), dim=-1)  # (masked, final_dim)
        logits = queries @ F.normalize(self.unit_embeddings, dim=-1).T / self.temperature  # (masked, units)
        return MethodOutput(F.cross_entropy(logits, units[selected]))


@dataclasses.dataclass
class Contender:
    """One side of a comparison: its label, its module and one training step of it."""

    name: str
    module: nn.Module
    step: Callable[[], None]


def training_step(
    loss: Callable[[], torch.Tensor],
    optimizer: torch.optim.Optimizer,
    device_type: str,
    autocast: torch.dtype | None,
) -> Callable[[], None]:
    """Forward (under ``autocast`` when given), backward, optimizer step and ``zero_grad``."""

    def step() -> None:
        with torch.autocast(device_type, dtype=autocast, enabled=autocast is not None):
            value = loss()
        value.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step


def training_contenders(
    method: str,
    preset: str,
    batch: AudioBatch,
    units_dir: Path,
    reference: bool = True,
    autocast: torch.dtype | None = None,
    compile_models: bool = False,
) -> list[Contender]:
    """speechssl's ``method`` at ``preset`` and, when ``reference`` (wav2vec 2.0 and HuBERT
    only), its transformers counterpart, each with its own AdamW (the config's ``optim``) and
    a training step on ``batch``."""
    config = pretrain_config(method, preset, units_dir)
    device = batch.waveforms.device
    torch.manual_seed(0)
    ours: PretextMethod = build_pretrain_method(config).to(device).train()
    modules: dict[str, nn.Module] = {"speechssl": ours}
    if reference and method == "wav2vec2":
        modules["transformers"] = TransformersWav2Vec2(config.encoder, config.objective)
    elif reference and method == "hubert":
        modules["transformers"] = TransformersHuBERT(config.encoder, config.objective, ours.tokenizer)
    elif reference:
        raise ValueError(
            f"method: expected 'wav2vec2' or 'hubert' for a transformers reference, found {method!r}"
        )
    contenders = []
    for name, module in modules.items():
        module.to(device).train()
        call = torch.compile(module) if compile_models else module
        optimizer = build_optimizer(module, config.optim)
        contenders.append(
            Contender(
                name,
                module,
                training_step(lambda call=call: call(batch).loss, optimizer, device.type, autocast),
            )
        )
    return contenders
