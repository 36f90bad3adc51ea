"""PASE / PASE+: one encoder, several small workers regressing hand-crafted targets.

Pascual, Ravanelli, Serrà, Bonafonte, Bengio (2019), "Learning Problem-agnostic Speech
Representations from Multiple Self-supervised Tasks", Interspeech, §2; Ravanelli, Zhong,
Pascual, Swietojanski, Monteiro, Trmal, Bengio (2020), "Multi-task self-supervised learning
for Robust Speech Recognition" (PASE+), ICASSP, §2. Every worker ``k`` is a one-hidden-layer
MLP on the encoder's frames ``h_t`` predicting a target ``y^k_t`` computed from the clean
waveform; the loss is the weighted sum of the workers' losses over the valid frames ``T``:

    L = Σ_k λ_k L_k,    L_k = (1 / (|T| D_k)) Σ_{t ∈ T} ‖y^k_t − MLP_k(h_t)‖

with ``D_k`` the target's dimension and the L1 norm for the waveform worker, the squared L2
norm for the others (PASE+'s ``L1Loss`` decoder and ``MSELoss`` regressors).

The regression workers implemented, all at the encoder's frame rate (frame ``t`` centred on
the encoder frame's receptive field; :func:`frame_centre`):

* ``waveform``: the ``downsample_rate`` samples of the frame's own window (the waveform
  worker of PASE, which decodes the signal);
* ``lps``: the log power spectrum of a Hann window of ``n_fft`` samples;
* ``mfcc``: ``n_mfcc`` MFCCs of ``n_mels`` mel bands of that spectrum;
* ``prosody``: interpolated log-F0, zero-crossing rate, log-energy and the voicing
  probability (PASE's four prosodic features), F0 from a batched YIN
  (:mod:`speechssl.features.pitch`).

PASE normalises every target with corpus statistics; here each target dimension is
standardised per utterance over its valid frames instead (the waveform is scaled to unit
RMS per utterance, and the voicing probability is left in ``[0, 1]``). PASE+ trains on
distorted input (reverberation, additive noise, competing speech, temporal and frequency
masks) while the targets stay clean; ``distortion`` does this with speechssl's
augmentations. Not implemented: PASE+'s clipping and band-limiting distortions, its
"long" (wider-window), filterbank and gammatone workers, targets stacked with their
neighbouring frames, and the binary (mutual information) workers.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

import torch
from torch import nn

from speechssl.augment import AddNoise, FrequencyMask, Gain, MixUtterances, Reverberation, TimeMask
from speechssl.augment.views import ViewConfig, build_view
from speechssl.data.batch import AudioBatch, lengths_to_padding_mask
from speechssl.features.filterbank import FilterbankConfig, dct_matrix, mel_filterbank
from speechssl.features.framing import frame_signal
from speechssl.features.pitch import PitchConfig, estimate_pitch, interpolate_unvoiced
from speechssl.methods.base import MethodOutput, PretextMethod
from speechssl.models import SpeechEncoder, WaveformFrontend, utterance_mean_variance_norm
from speechssl.models.init import init_linear_


@dataclass
class WorkerWeights:
    """Weight ``λ_k`` of each worker's loss; a worker with weight 0 is not built.

    Attributes:
        waveform: the waveform worker.
        lps: the log-power-spectrum worker.
        mfcc: the MFCC worker.
        prosody: the prosody worker.
    """

    waveform: float = 1.0
    lps: float = 1.0
    mfcc: float = 1.0
    prosody: float = 1.0

    def __post_init__(self) -> None:
        for name, weight in self.as_dict().items():
            if weight < 0:
                raise ValueError(f"{name}: expected a weight >= 0, found {weight}")
        if not any(weight > 0 for weight in self.as_dict().values()):
            raise ValueError(
                f"{'/'.join(self.as_dict())}: expected at least one positive weight, found all 0"
            )

    def as_dict(self) -> dict[str, float]:
        """``{worker: weight}`` for every worker, in PASE's order."""
        return {item.name: getattr(self, item.name) for item in fields(self)}


def pase_plus_distortion() -> ViewConfig:
    """PASE+'s contamination (Ravanelli et al. 2020, §2.1) with speechssl's augmentations:
    reverberation (p = 0.5), additive noise at 0–10 dB (0.4), a competing utterance at
    5–10 dB (0.1), temporal masks (0.2) and frequency masks (0.4); no crop, gain or
    duration changes."""
    return ViewConfig(
        crop_seconds=None,
        reverb=Reverberation(p=0.5),
        gain=Gain(p=0.0),
        noise=AddNoise((0.0, 10.0), "white", p=0.4),
        mix=MixUtterances((5.0, 10.0), p=0.1),
        time_mask=TimeMask(20, 2, max_fraction=0.1, p=0.2),
        freq_mask=FrequencyMask(8, 2, p=0.4),
    )


@dataclass
class PASEConfig:
    """PASE+-style multi-target regression (defaults from PASE / PASE+).

    Attributes:
        weights: weight of each worker's loss (all 1 in the papers).
        worker_hidden: hidden units of every worker MLP (256 with PReLU in the papers).
        n_fft: Hann window and FFT size in samples of the LPS and MFCC targets
            (``n_fft // 2 + 1`` LPS bins).
        n_mels: mel bands under the MFCCs.
        n_mfcc: MFCCs per frame (PASE+ uses 20).
        pitch: YIN settings of the prosody target.
        distortion: augmentation of the encoder's input (targets stay clean); ``null``
            trains on clean input as the original PASE.
    """

    weights: WorkerWeights = field(default_factory=WorkerWeights)
    worker_hidden: int = 256
    n_fft: int = 1024
    n_mels: int = 40
    n_mfcc: int = 20
    pitch: PitchConfig = field(default_factory=PitchConfig)
    distortion: ViewConfig | None = field(default_factory=pase_plus_distortion)

    def __post_init__(self) -> None:
        for name in ("worker_hidden", "n_fft", "n_mels", "n_mfcc"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: expected a positive integer, found {getattr(self, name)}")
        if self.n_mfcc > self.n_mels:
            raise ValueError(f"n_mfcc: expected at most n_mels={self.n_mels}, found {self.n_mfcc}")
        if self.distortion is not None:
            if self.distortion.crop_seconds is not None:
                raise ValueError(
                    "distortion.crop_seconds: expected null (targets are aligned frame by frame with "
                    f"the input), found {self.distortion.crop_seconds}"
                )
            if self.distortion.changes_durations:
                raise ValueError(
                    "distortion: expected augmentations that keep durations, found "
                    f"speed.p={self.distortion.speed.p} and tempo.p={self.distortion.tempo.p} (set both to 0)"
                )


def frame_centre(encoder: SpeechEncoder) -> int:
    """Sample at the centre of encoder frame 0's receptive field; frame ``t`` is centred
    ``t · downsample_rate`` samples later.

    The wav2vec 2.0 CNN's frame ``t`` reads samples ``[t·stride, t·stride + receptive_field)``;
    the fbank front-end's centred STFT and symmetric subsampling centre frame ``t`` on
    sample ``t · downsample_rate``.
    """
    frontend = encoder.frontend
    if isinstance(frontend, WaveformFrontend):
        return frontend.feature_encoder.receptive_field // 2
    return 0


class Worker(nn.Module):
    """A PASE worker: ``Linear → PReLU → Linear`` applied to every frame.

    Args:
        dim: encoder dimension.
        hidden: hidden units.
        out_dim: target dimension.
    """

    def __init__(self, dim: int, hidden: int, out_dim: int) -> None:
        super().__init__()
        self.hidden_layer = nn.Linear(dim, hidden)
        self.activation = nn.PReLU(hidden)
        self.output_layer = nn.Linear(hidden, out_dim)
        init_linear_(self.hidden_layer)
        init_linear_(self.output_layer)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        """``frames (batch, frames, dim)`` → ``(batch, frames, out_dim)``."""
        hidden = self.hidden_layer(frames).transpose(
            1, 2
        )  # (batch, hidden, frames): PReLU's channel axis is 1
        return self.output_layer(self.activation(hidden).transpose(1, 2))


class WorkerTargets(nn.Module):
    """The clean per-frame targets of every worker, computed in torch on the batch's device.

    Args:
        config: the method's config (FFT size, mel bands, MFCCs, YIN settings).
        hop_length: samples between frames (the encoder's ``downsample_rate``).
        first_centre: centre of frame 0 in samples (:func:`frame_centre`).
        sample_rate: sample rate of the waveforms.
    """

    window: torch.Tensor
    mel_filters: torch.Tensor
    dct: torch.Tensor

    def __init__(self, config: PASEConfig, hop_length: int, first_centre: int, sample_rate: int) -> None:
        super().__init__()
        self.config = config
        self.hop_length = hop_length
        self.first_centre = first_centre
        self.sample_rate = sample_rate
        mel = FilterbankConfig(
            sample_rate=sample_rate, n_fft=config.n_fft, win_length=config.n_fft, n_mels=config.n_mels
        )
        self.register_buffer("window", torch.hann_window(config.n_fft, periodic=True), persistent=False)
        self.register_buffer("mel_filters", mel_filterbank(mel), persistent=False)
        self.register_buffer("dct", dct_matrix(config.n_mels, config.n_mfcc), persistent=False)

    def dims(self) -> dict[str, int]:
        """Dimension of each worker's target."""
        return {
            "waveform": self.hop_length,
            "lps": self.config.n_fft // 2 + 1,
            "mfcc": self.config.n_mfcc,
            "prosody": 4,
        }

    @torch.no_grad()
    def forward(
        self, waveforms: torch.Tensor, lengths: torch.Tensor, frame_lengths: torch.Tensor, num_frames: int
    ) -> dict[str, torch.Tensor]:
        """Targets of ``num_frames`` frames per utterance.

        Args:
            waveforms: ``(batch, samples)`` clean audio, zero-padded.
            lengths: ``(batch,)`` valid samples per utterance.
            frame_lengths: ``(batch,)`` valid frames per utterance (the encoder's output lengths).
            num_frames: frames per utterance (the encoder's padded output length).

        Returns:
            ``{worker: (batch, num_frames, dim)}``, zero on padded frames: ``waveform``
            (samples / utterance RMS), ``lps`` and ``mfcc`` (standardised), ``prosody``
            (standardised log-F0, zero-crossing rate and log-energy, then the voicing probability).
        """
        with torch.autocast(waveforms.device.type, enabled=False):
            waveforms = waveforms.float()
            valid_samples = ~lengths_to_padding_mask(lengths, waveforms.shape[1])  # (batch, samples)
            power = (waveforms.pow(2) * valid_samples).sum(1) / lengths.clamp(min=1)  # (batch,)
            rms = power.clamp(min=1e-10).sqrt()[:, None, None]  # (batch, 1, 1)
            hop, n_fft, centre = self.hop_length, self.config.n_fft, self.first_centre
            own = frame_signal(waveforms, lengths, num_frames, hop, hop, centre)  # (batch, frames, hop)
            # (batch, frames, n_fft) analysis windows with the same centres
            analysis = frame_signal(waveforms, lengths, num_frames, hop, n_fft, centre)
            spectrum = torch.fft.rfft(analysis * self.window, dim=-1).abs().pow(2)  # (batch, frames, bins)
            log_mel = torch.log(spectrum @ self.mel_filters + 1e-6)  # (batch, frames, n_mels)
            pitch = estimate_pitch(
                waveforms, lengths, num_frames, hop, self.sample_rate, self.config.pitch, centre
            )
            log_f0 = interpolate_unvoiced(pitch.f0.log(), pitch.voiced)  # (batch, frames)
            signs = torch.signbit(own)  # (batch, frames, hop)
            zero_crossings = (signs[..., 1:] != signs[..., :-1]).float().mean(-1)  # (batch, frames)
            log_energy = torch.log(own.pow(2).mean(-1) + 1e-10)  # (batch, frames)
            prosody = torch.stack([log_f0, zero_crossings, log_energy], dim=-1)  # (batch, frames, 3)
            prosody = utterance_mean_variance_norm(prosody, frame_lengths)
            targets = {
                "waveform": own / rms,
                "lps": utterance_mean_variance_norm(torch.log(spectrum + 1e-10), frame_lengths),
                "mfcc": utterance_mean_variance_norm(log_mel @ self.dct, frame_lengths),
                "prosody": torch.cat([prosody, pitch.periodicity[..., None]], dim=-1),  # (batch, frames, 4)
            }
            valid_frames = ~lengths_to_padding_mask(frame_lengths, num_frames)  # (batch, frames)
            return {name: target * valid_frames[..., None] for name, target in targets.items()}


class PASE(PretextMethod):
    """PASE+-style multi-task regression pretraining (Pascual et al. 2019; Ravanelli et al. 2020).

    Args:
        encoder: the encoder being pretrained (either front-end).
        config: workers, targets and distortion.
        generator: a CPU generator, source of the distortion randomness (global RNG when None).

    Targets and distortion are computed at the encoder's ``sample_rate``.
    """

    def __init__(
        self,
        encoder: SpeechEncoder,
        config: PASEConfig,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        self.encoder = encoder
        sample_rate = encoder.sample_rate
        self.config = config
        self.generator = generator
        self.targets = WorkerTargets(config, encoder.downsample_rate, frame_centre(encoder), sample_rate)
        dims = self.targets.dims()
        self.weights = {name: weight for name, weight in config.weights.as_dict().items() if weight > 0}
        self.workers = nn.ModuleDict(
            {name: Worker(encoder.dim, config.worker_hidden, dims[name]) for name in self.weights}
        )
        self.distortion = (
            build_view(config.distortion, sample_rate, crop=False) if config.distortion is not None else None
        )

    def forward(self, batch: AudioBatch) -> MethodOutput:
        """The weighted worker losses of ``batch`` (input distorted, targets clean).

        Returns:
            the loss and, as metrics, each worker's unweighted loss ``loss_<worker>``.
        """
        inputs, feature_transform = batch.waveforms, None
        if self.distortion is not None:
            inputs, _ = self.distortion(batch.waveforms, batch.lengths, self.generator)  # durations kept
            feature_transform = self.distortion.feature_transform(self.generator)
        output = self.encoder(
            inputs, batch.lengths, feature_transform=feature_transform, output_hidden_states=False
        )
        hidden = output.last_hidden_state  # (batch, frames, dim)
        targets = self.targets(batch.waveforms, batch.lengths, output.lengths, hidden.shape[1])
        valid = (~output.padding_mask)[..., None]  # (batch, frames, 1)
        count = output.lengths.sum().clamp(min=1)
        losses = {}
        for name, worker in self.workers.items():
            error = worker(hidden).float() - targets[name]  # (batch, frames, dim)
            distance = error.abs() if name == "waveform" else error.pow(2)
            losses[name] = (distance * valid).sum() / (count * error.shape[-1])
        loss = sum(self.weights[name] * value for name, value in losses.items())
        return MethodOutput(loss, {f"loss_{name}": value.detach() for name, value in losses.items()})


__all__ = [
    "PASE",
    "PASEConfig",
    "Worker",
    "WorkerTargets",
    "WorkerWeights",
    "frame_centre",
    "pase_plus_distortion",
]
