"""A synthetic speech-like corpus with known, independent generative factors.

Utterances are made by source–filter synthesis (Fant, *Acoustic Theory of Speech
Production*, 1960): a glottal pulse train shaped like Rosenberg's pulses (Rosenberg,
*Effect of glottal pulse shape on the quality of natural vowels*, JASA 49(2), 1971) at a
time-varying F0 excites a cascade of second-order formant resonators (Klatt, *Software for
a cascade/parallel formant synthesizer*, JASA 67(3), 1980) for vowels; white noise through
broad resonators makes fricative-like consonants. Each resonator is a second-order IIR
section, the cascade run by ``scipy.signal.sosfilt``. Vowel formants are the adult male
averages of Peterson & Barney (JASA 24(2), 1952), scaled by each speaker's vocal-tract
length factor. A speaker's voice is its base F0 and vocal-tract length (both drawn from
its gender's range), glottal open quotient, breathiness and spectral tilt.

Each utterance's factors are drawn independently and uniformly, and recorded as label
columns: ``speaker`` (with its ``gender``), ``word`` (2–4 phones from a fixed 10-word
vocabulary; ``phones`` lists them, ``phone_times`` aligns them as ``phone:start:end``
segments in seconds, see :mod:`speechssl.data.alignment`), ``contour`` (rise/fall/flat F0), ``rate``
(slow/normal/fast), ``loudness`` (soft/medium/loud speech level) and ``snr`` (additive
white noise at 30/20/10 dB). It needs no download, generates 1000 utterances in seconds,
and is the ground truth for disentanglement analyses.

Splits are per speaker (every speaker appears in every split, so speaker identification
works): each speaker's utterances are shuffled and ``round(n * test_fraction)`` go to
``test``, ``round(n * valid_fraction)`` to ``valid``, the rest to ``train``.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile

from speechssl.config import to_dict
from speechssl.data.alignment import Segment, format_alignment
from speechssl.data.audio import DEFAULT_SAMPLE_RATE
from speechssl.data.manifest import Manifest, Utterance
from speechssl.storage import atomic_write_json

SYNTHESIS_VERSION = 2  # bump whenever the synthesis changes, so cached corpora regenerate

# (F1, F2, F3, F4) in Hz, adult male (Peterson & Barney 1952; F4 a typical 3300 Hz).
VOWEL_FORMANTS_HZ = {
    "i": (270.0, 2290.0, 3010.0, 3300.0),
    "e": (530.0, 1840.0, 2480.0, 3300.0),
    "ae": (660.0, 1720.0, 2410.0, 3300.0),
    "a": (730.0, 1090.0, 2440.0, 3300.0),
    "o": (570.0, 840.0, 2410.0, 3300.0),
    "u": (300.0, 870.0, 2240.0, 3300.0),
}
FORMANT_BANDWIDTHS_HZ = (80.0, 100.0, 150.0, 250.0)
# (centre, bandwidth) resonances shaping the frication noise, in Hz, before VTL scaling.
FRICATIVE_RESONANCES_HZ = {
    "s": ((4800.0, 1500.0), (6200.0, 1500.0)),
    "sh": ((2600.0, 600.0), (4200.0, 1200.0)),
    "f": ((3500.0, 4000.0),),
}
# RMS of each phone relative to an open vowel.
PHONE_LEVELS = {
    "i": 0.7,
    "e": 0.85,
    "ae": 1.0,
    "a": 1.0,
    "o": 0.95,
    "u": 0.7,
    "s": 0.3,
    "sh": 0.35,
    "f": 0.12,
}
WORDS = {
    "sa": ("s", "a"),
    "ish": ("i", "sh"),
    "ua": ("u", "a"),
    "afu": ("a", "f", "u"),
    "shos": ("sh", "o", "s"),
    "fie": ("f", "i", "e"),
    "oshi": ("o", "sh", "i"),
    "esau": ("e", "s", "a", "u"),
    "isfa": ("i", "s", "f", "a"),
    "shaefi": ("sh", "ae", "f", "i"),
}
CONTOURS_SEMITONES = {"rise": (-2.0, 4.0), "fall": (3.0, -4.0), "flat": (0.0, 0.0)}  # F0 start, end
RATES = {"slow": 1.35, "normal": 1.0, "fast": 0.7}  # phone-duration multipliers
LOUDNESS_DBFS = {"soft": -34.0, "medium": -27.0, "loud": -20.0}  # RMS of the spoken part
SNR_DB = {"30dB": 30.0, "20dB": 20.0, "10dB": 10.0}
VOWEL_SECONDS = 0.18
FRICATIVE_SECONDS = 0.13
CROSSFADE_SECONDS = 0.03
PREROLL_SECONDS = 0.02  # filter warm-up before a phone's window opens
SILENCE_SECONDS = (0.15, 0.25)  # range of the leading and trailing silences
F0_DRIFT_SEMITONES = 0.3
# Speaker voice ranges per gender: base F0 (Hz), vocal-tract-length formant scale.
F0_RANGE_HZ = {"m": (95.0, 145.0), "f": (175.0, 245.0)}
VTL_FACTOR_RANGE = {"m": (0.92, 1.04), "f": (1.10, 1.22)}
OPEN_QUOTIENT_RANGE = (0.45, 0.75)
BREATHINESS_RANGE = (0.02, 0.12)
TILT_COEFFICIENT_RANGE = (0.65, 0.9)
# Independent random streams derived from the seed.
SPEAKER_STREAM, FACTOR_STREAM, SPLIT_STREAM, AUDIO_STREAM = 1, 2, 3, 4
MARKER_FILE = "synthetic.json"
MANIFEST_FILE = "manifest.csv"


@dataclass
class SyntheticConfig:
    """Size, seed and splits of the synthetic corpus.

    Attributes:
        num_utterances: number of utterances (~1 s each).
        num_speakers: number of speakers, half female and half male (one more male when odd).
        seed: every random choice derives from it; same config -> identical corpus.
        valid_fraction: share of each speaker's utterances in ``valid``.
        test_fraction: share of each speaker's utterances in ``test``.
    """

    num_utterances: int = 1000
    num_speakers: int = 20
    seed: int = 0
    valid_fraction: float = 0.1
    test_fraction: float = 0.1

    def __post_init__(self) -> None:
        if self.num_utterances < 1:
            raise ValueError(f"num_utterances must be >= 1, found {self.num_utterances}")
        if self.num_speakers < 2:
            raise ValueError(f"num_speakers must be >= 2 (both genders), found {self.num_speakers}")
        if self.seed < 0:
            raise ValueError(f"seed must be >= 0, found {self.seed}")
        if self.valid_fraction < 0 or self.test_fraction < 0 or self.valid_fraction + self.test_fraction >= 1:
            raise ValueError(
                "valid_fraction and test_fraction must be >= 0 and sum below 1, "
                f"found {self.valid_fraction} and {self.test_fraction}"
            )


@dataclass(frozen=True)
class SpeakerVoice:
    """The fixed voice of one synthetic speaker.

    Attributes:
        id: ``spk00``, ``spk01``, ...
        gender: ``"f"`` or ``"m"``; sets the ranges the other attributes are drawn from.
        f0_hz: base fundamental frequency.
        vtl_factor: vocal-tract-length factor multiplying every formant frequency.
        open_quotient: open phase of the glottal pulse as a fraction of the period.
        breathiness: aspiration noise added during the open phase, relative to the pulses.
        tilt_coefficient: ``a`` of the one-zero filter ``1 - a z^-1`` that flattens the source's
            spectral tilt (cf. the tilt control TL of Klatt & Klatt, JASA 87(2), 1990); larger
            is brighter.
    """

    id: str
    gender: str
    f0_hz: float
    vtl_factor: float
    open_quotient: float
    breathiness: float
    tilt_coefficient: float


@dataclass(frozen=True)
class UtteranceFactors:
    """The generative factors of one utterance (each drawn independently)."""

    speaker: SpeakerVoice
    word: str
    contour: str
    rate: str
    loudness: str
    snr: str


def config_hash(config: SyntheticConfig) -> str:
    """Hex digest identifying the corpus ``config`` (and the synthesis version) produces."""
    text = json.dumps({"version": SYNTHESIS_VERSION, **to_dict(config)}, sort_keys=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def sample_speakers(num_speakers: int, seed: int) -> list[SpeakerVoice]:
    """``num_speakers`` voices, genders balanced and shuffled, attributes uniform in their ranges."""
    rng = np.random.default_rng([seed, SPEAKER_STREAM])
    genders = rng.permutation(["f"] * (num_speakers // 2) + ["m"] * (num_speakers - num_speakers // 2))
    voices = []
    for index, gender in enumerate(genders):
        voices.append(
            SpeakerVoice(
                id=f"spk{index:02d}",
                gender=str(gender),
                f0_hz=float(rng.uniform(*F0_RANGE_HZ[gender])),
                vtl_factor=float(rng.uniform(*VTL_FACTOR_RANGE[gender])),
                open_quotient=float(rng.uniform(*OPEN_QUOTIENT_RANGE)),
                breathiness=float(rng.uniform(*BREATHINESS_RANGE)),
                tilt_coefficient=float(rng.uniform(*TILT_COEFFICIENT_RANGE)),
            )
        )
    return voices


def sample_factors(config: SyntheticConfig) -> list[UtteranceFactors]:
    """Factors of every utterance, each factor drawn independently and uniformly."""
    voices = sample_speakers(config.num_speakers, config.seed)
    rng = np.random.default_rng([config.seed, FACTOR_STREAM])
    n = config.num_utterances
    choices = {
        name: rng.integers(len(options), size=n)
        for name, options in (
            ("speaker", voices),
            ("word", WORDS),
            ("contour", CONTOURS_SEMITONES),
            ("rate", RATES),
            ("loudness", LOUDNESS_DBFS),
            ("snr", SNR_DB),
        )
    }
    words, contours, rates = list(WORDS), list(CONTOURS_SEMITONES), list(RATES)
    levels, snrs = list(LOUDNESS_DBFS), list(SNR_DB)
    return [
        UtteranceFactors(
            speaker=voices[choices["speaker"][i]],
            word=words[choices["word"][i]],
            contour=contours[choices["contour"][i]],
            rate=rates[choices["rate"][i]],
            loudness=levels[choices["loudness"][i]],
            snr=snrs[choices["snr"][i]],
        )
        for i in range(n)
    ]


def resonator_sos(frequency_hz: float, bandwidth_hz: float, sample_rate: int) -> np.ndarray:
    """Klatt's (1980) digital resonator as one second-order section ``(6,)``, unity gain at 0 Hz.

    ``y[n] = A x[n] + B y[n-1] + C y[n-2]`` with ``C = -exp(-2 pi BW T)``,
    ``B = 2 exp(-pi BW T) cos(2 pi F T)``, ``A = 1 - B - C``.
    """
    period = 1.0 / sample_rate
    c = -np.exp(-2.0 * np.pi * bandwidth_hz * period)
    b = 2.0 * np.exp(-np.pi * bandwidth_hz * period) * np.cos(2.0 * np.pi * frequency_hz * period)
    return np.array([1.0 - b - c, 0.0, 0.0, 1.0, -b, -c])


def phone_filter(phone: str, vtl_factor: float, sample_rate: int) -> np.ndarray:
    """Cascade of resonators ``(sections, 6)`` for ``phone`` in a vocal tract scaled by ``vtl_factor``."""
    nyquist_margin = 0.45 * sample_rate
    if phone in VOWEL_FORMANTS_HZ:
        resonances = zip(VOWEL_FORMANTS_HZ[phone], FORMANT_BANDWIDTHS_HZ, strict=True)
    else:
        resonances = FRICATIVE_RESONANCES_HZ[phone]
    return np.stack(
        [resonator_sos(min(f * vtl_factor, nyquist_margin), bw, sample_rate) for f, bw in resonances]
    )


def rosenberg_flow(phase: np.ndarray, open_quotient: float) -> np.ndarray:
    """Rosenberg (1971) glottal flow at ``phase`` ``(samples,)`` in [0, 1) of each period.

    The opening (raised half cosine) lasts two thirds of the open phase, the closing
    (quarter cosine) one third; the glottis is closed for the rest of the period.
    """
    opening = open_quotient * 2.0 / 3.0
    closing = open_quotient / 3.0
    rising = 0.5 * (1.0 - np.cos(np.pi * phase / opening))
    falling = np.cos(0.5 * np.pi * (phase - opening) / closing)
    return np.where(phase < opening, rising, np.where(phase < opening + closing, falling, 0.0))


def _ramp(samples: np.ndarray, centre: float, width: float) -> np.ndarray:
    """Raised-cosine step from 0 to 1 centred on ``centre`` over ``width`` samples ``(samples,)``."""
    position = np.clip((samples - centre) / width + 0.5, 0.0, 1.0)
    return 0.5 - 0.5 * np.cos(np.pi * position)


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x)) + 1e-20))


def synthesize_utterance(
    factors: UtteranceFactors, rng: np.random.Generator, sample_rate: int = DEFAULT_SAMPLE_RATE
) -> np.ndarray:
    """One utterance ``(samples,)`` float32 with the given factors; noise and jitter from ``rng``."""
    return synthesize_aligned(factors, rng, sample_rate)[0]


def synthesize_aligned(
    factors: UtteranceFactors, rng: np.random.Generator, sample_rate: int = DEFAULT_SAMPLE_RATE
) -> tuple[np.ndarray, list[Segment]]:
    """:func:`synthesize_utterance` and its phone alignment.

    Phone ``k`` spans samples ``[b_k, b_{k+1})`` of the boundaries the synthesis uses (its
    window is centred on them, cross-fading ``CROSSFADE_SECONDS`` into its neighbours); the
    leading and trailing silences are not segments.

    Returns:
        the waveform ``(samples,)`` float32 and one :class:`~speechssl.data.alignment.Segment`
        per phone, times in seconds.
    """
    from scipy import signal  # imported here: scipy's import is slow and only synthesis needs it

    voice = factors.speaker
    phones = WORDS[factors.word]
    phone_seconds = np.array([VOWEL_SECONDS if p in VOWEL_FORMANTS_HZ else FRICATIVE_SECONDS for p in phones])
    phone_seconds = phone_seconds * RATES[factors.rate] * rng.uniform(0.9, 1.1, size=len(phones))
    lead, trail = rng.uniform(*SILENCE_SECONDS, size=2)
    boundaries = np.round(
        (lead + np.concatenate([[0.0], np.cumsum(phone_seconds)])) * sample_rate
    )  # (phones + 1,)
    num_samples = int(boundaries[-1] + round(trail * sample_rate))
    samples = np.arange(num_samples, dtype=np.float64)

    # F0: the contour's line in semitones over the word plus a slow random drift.
    progress = np.clip((samples - boundaries[0]) / (boundaries[-1] - boundaries[0]), 0.0, 1.0)
    start, end = CONTOURS_SEMITONES[factors.contour]
    drift = np.interp(progress, np.linspace(0.0, 1.0, 8), rng.standard_normal(8) * F0_DRIFT_SEMITONES)
    f0 = voice.f0_hz * 2.0 ** ((start + (end - start) * progress + drift) / 12.0)
    phase = np.mod(np.cumsum(f0) / sample_rate, 1.0)
    flow = rosenberg_flow(phase, voice.open_quotient)
    glottal = np.diff(flow, prepend=0.0)  # flow derivative: source with lip radiation
    glottal = signal.lfilter([1.0, -voice.tilt_coefficient], [1.0], glottal)  # spectral tilt correction
    glottal /= _rms(glottal)
    glottal += voice.breathiness * rng.standard_normal(num_samples) * (flow > 0)
    frication = rng.standard_normal(num_samples)

    speech = np.zeros(num_samples)
    crossfade = CROSSFADE_SECONDS * sample_rate
    for k, phone in enumerate(phones):
        begin, finish = boundaries[k], boundaries[k + 1]
        lo = int(max(0.0, begin - crossfade / 2 - PREROLL_SECONDS * sample_rate))
        hi = int(min(num_samples, finish + crossfade / 2 + 1))
        source = glottal if phone in VOWEL_FORMANTS_HZ else frication
        shaped = signal.sosfilt(phone_filter(phone, voice.vtl_factor, sample_rate), source[lo:hi])
        core = shaped[int(begin) - lo : int(finish) - lo]
        window = _ramp(samples[lo:hi], begin, crossfade) - _ramp(samples[lo:hi], finish, crossfade)
        speech[lo:hi] += window * shaped * (PHONE_LEVELS[phone] / _rms(core))

    spoken = speech[int(boundaries[0]) : int(boundaries[-1])]
    level = 10.0 ** (LOUDNESS_DBFS[factors.loudness] / 20.0)
    speech *= level / _rms(spoken)
    noise = rng.standard_normal(num_samples) * level * 10.0 ** (-SNR_DB[factors.snr] / 20.0)
    alignment = [
        Segment(phone, float(boundaries[k]) / sample_rate, float(boundaries[k + 1]) / sample_rate)
        for k, phone in enumerate(phones)
    ]
    return np.clip(speech + noise, -1.0, 1.0).astype(np.float32), alignment


def assign_splits(speakers: list[str], config: SyntheticConfig) -> list[str]:
    """Split of each utterance given its speaker (per-speaker shuffle; see the module docstring)."""
    rng = np.random.default_rng([config.seed, SPLIT_STREAM])
    splits = ["train"] * len(speakers)
    for speaker in sorted(set(speakers)):
        members = rng.permutation([i for i, s in enumerate(speakers) if s == speaker])
        n_test = round(len(members) * config.test_fraction)
        n_valid = round(len(members) * config.valid_fraction)
        for position, index in enumerate(members):
            if position < n_test:
                splits[index] = "test"
            elif position < n_test + n_valid:
                splits[index] = "valid"
    return splits


def generate_synthetic_corpus(config: SyntheticConfig, out_dir: str | Path) -> Manifest:
    """Write the corpus of ``config`` as 16 kHz WAVs plus ``manifest.csv`` under ``out_dir``.

    If ``out_dir`` already holds the corpus of an identical config (same
    :func:`config_hash`), it is loaded instead of regenerated. The marker file
    ``synthetic.json`` is written last, so an interrupted run regenerates next time.

    Returns:
        the manifest, with label columns ``gender, word, phones, phone_times, contour, rate,
        loudness, snr``.
    """
    out_dir = Path(os.path.abspath(Path(out_dir).expanduser()))
    marker = out_dir / MARKER_FILE
    manifest_path = out_dir / MANIFEST_FILE
    digest = config_hash(config)
    if marker.is_file() and manifest_path.is_file():
        try:
            stored = json.loads(marker.read_text(encoding="utf-8")).get("hash")
        except json.JSONDecodeError:
            stored = None
        if stored == digest:
            return Manifest.load(manifest_path)
    marker.unlink(missing_ok=True)
    audio_dir = out_dir / "wav"
    audio_dir.mkdir(parents=True, exist_ok=True)

    factors = sample_factors(config)
    splits = assign_splits([f.speaker.id for f in factors], config)
    rows = []
    for index, (utterance, split) in enumerate(zip(factors, splits, strict=True)):
        waveform, alignment = synthesize_aligned(
            utterance, np.random.default_rng([config.seed, AUDIO_STREAM, index])
        )
        path = audio_dir / f"utt{index:06d}.wav"
        encoded = io.BytesIO()  # via memory: soundfile's file flush fsyncs, slow for many small files
        soundfile.write(encoded, waveform, DEFAULT_SAMPLE_RATE, subtype="PCM_16", format="WAV")
        path.write_bytes(encoded.getvalue())
        rows.append(
            Utterance(
                id=path.stem,
                path=path,
                duration=len(waveform) / DEFAULT_SAMPLE_RATE,
                sample_rate=DEFAULT_SAMPLE_RATE,
                speaker=utterance.speaker.id,
                split=split,
                labels={
                    "gender": utterance.speaker.gender,
                    "word": utterance.word,
                    "phones": " ".join(WORDS[utterance.word]),
                    "phone_times": format_alignment(alignment),
                    "contour": utterance.contour,
                    "rate": utterance.rate,
                    "loudness": utterance.loudness,
                    "snr": utterance.snr,
                },
            )
        )
    manifest = Manifest(rows)
    manifest.save(manifest_path)
    atomic_write_json(marker, {"hash": digest, "version": SYNTHESIS_VERSION, "config": to_dict(config)})
    return manifest
