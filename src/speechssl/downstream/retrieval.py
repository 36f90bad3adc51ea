"""Cross-modal retrieval with a multi-modal run: speech → text, text → speech, speech ↔ image.

The run's own heads embed both sides (:func:`speechssl.methods.multimodal.load_multimodal`):
the speech encoder (masked mean, projection) and the text or image encoder. Each seed draws a
gallery of held-out pairs; every query ranks the candidates of the other modality by cosine
similarity, and a candidate is relevant when it carries the query's *match* value: its own
pair when pairs are unique (LibriSpeech transcripts), the same word or digit class when one
text or class has many utterances (a keyword corpus; the digit images of AV-MNIST). The
reported numbers are those of the retrieval literature (Harwath et al. 2016, §5; CLIP's
zero-shot retrieval, Radford et al. 2021): recall@k, the share of queries with a relevant
candidate among the k most similar, and the median rank of the first relevant candidate.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from speechssl.data.audio import load_audio
from speechssl.data.batch import pad_waveforms
from speechssl.data.manifest import Manifest
from speechssl.data.pairing import digit_images, load_image
from speechssl.methods.multimodal import load_multimodal

DIRECTIONS = ("speech_to_text", "text_to_speech", "speech_to_image", "image_to_speech")
DIGIT_INDEX = "image_index"  # the in-memory digit pairing's column (rows of digit_images())


@dataclass(frozen=True)
class RetrievalResult:
    """Recall@1/5/10, the median rank and chance recall@1 of one gallery.

    Attributes:
        ranks: ``(queries,)`` 1-based rank of each query's best-ranked relevant candidate.
        recall: k -> share of queries whose relevant candidate is in the top k.
        median_rank: median of ``ranks``.
        chance: recall@1 of a random ranking (mean share of relevant candidates).
        num_queries: queries.
        num_candidates: candidates.
    """

    ranks: np.ndarray
    recall: dict[int, float]
    median_rank: float
    chance: float
    num_queries: int
    num_candidates: int


def retrieval_ranks(similarity: np.ndarray, relevant: np.ndarray) -> np.ndarray:
    """``(queries,)`` 1-based rank of each query's most similar relevant candidate.

    Ties are counted against the query: an irrelevant candidate as similar as the best relevant
    one ranks before it.

    Args:
        similarity: ``(queries, candidates)``.
        relevant: ``(queries, candidates)`` bool, at least one True per row.

    Raises:
        ValueError: a query without a relevant candidate.
    """
    if not relevant.any(axis=1).all():
        raise ValueError("relevant: expected at least one relevant candidate per query")
    best = np.where(relevant, similarity, -np.inf).max(axis=1)  # (queries,)
    ahead = (~relevant) & (similarity >= best[:, None])  # (queries, candidates)
    return 1 + ahead.sum(axis=1)


def score_retrieval(
    similarity: np.ndarray, relevant: np.ndarray, ks: Sequence[int] = (1, 5, 10)
) -> RetrievalResult:
    """Recall@k and median rank of ``similarity`` ``(queries, candidates)`` given ``relevant``."""
    ranks = retrieval_ranks(similarity, relevant)
    return RetrievalResult(
        ranks=ranks,
        recall={k: float(np.mean(ranks <= k)) for k in ks},
        median_rank=float(np.median(ranks)),
        chance=float(relevant.mean(axis=1).mean()),
        num_queries=similarity.shape[0],
        num_candidates=similarity.shape[1],
    )


@dataclass(frozen=True)
class PairEmbeddings:
    """Unit-norm embeddings of held-out pairs.

    Attributes:
        speech: ``(pairs, embed_dim)``.
        other: ``(pairs, embed_dim)`` of each pair's text or image.
        other_keys: ``(pairs,)`` identity of each pair's text or image (equal keys: one candidate).
        match: ``(pairs,)`` the value that makes a candidate relevant to a query.
        text_column: the text column read (text runs), else None.
    """

    speech: np.ndarray
    other: np.ndarray
    other_keys: np.ndarray
    match: np.ndarray
    text_column: str | None


def _unit(embeddings: torch.Tensor) -> np.ndarray:
    return torch.nn.functional.normalize(embeddings, dim=-1).numpy()


@torch.inference_mode()
def embed_pairs(
    checkpoint: str | Path,
    pairs: Manifest,
    modality: str,
    column: str,
    match: str | None,
    batch_size: int = 32,
) -> PairEmbeddings:
    """Embed every pair of ``pairs`` with the multi-modal run at ``checkpoint``.

    Args:
        checkpoint: a ``speech_text``, ``visually_grounded`` or ``joint`` run or checkpoint.
        pairs: the held-out rows.
        modality: ``text`` or ``image``: the run's term must be of this modality.
        column: the text column (replaced by the run's own ``data.text_column`` when the
            manifest has it), or the image column (``.npy``/``.png`` paths, or
            ``image_index``: a row of scikit-learn's digits).
        match: the label column whose equal values make a candidate relevant; ``None``: the text
            itself for text, the pair itself for images.

    Raises:
        ValueError: the run is not multi-modal, or of the other modality.
    """
    from speechssl.config import load_yaml
    from speechssl.models.checkpoint import resolve_checkpoint

    encoder, term, name = load_multimodal(checkpoint)
    if term.modality != modality:
        raise ValueError(
            f"{checkpoint}: expected a run pairing speech with {modality}, found {name} (speech with {term.modality})"
        )
    rows = list(pairs)
    order = sorted(range(len(rows)), key=lambda i: rows[i].duration)  # similar lengths batched together
    speech = torch.empty(len(rows), term.config.embed_dim)
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        waves = [load_audio(rows[i].path, encoder.sample_rate) for i in chunk]
        padded, lengths = pad_waveforms(waves)  # (chunk, samples), (chunk,)
        speech[chunk] = term.embed_speech(encoder, padded, encoder.unpadded_lengths(padded, lengths))
    text_column = None
    if modality == "text":
        trained = (load_yaml(resolve_checkpoint(checkpoint) / "config.yaml") or {}).get("data", {})
        text_column = (
            trained.get("text_column") if trained.get("text_column") in pairs.label_columns else column
        )
        values = [row.labels[text_column] for row in rows]
        other = torch.cat(
            [
                term.embed_other(values[s : s + batch_size], torch.device("cpu"))
                for s in range(0, len(values), batch_size)
            ]
        )
        keys = np.asarray(values, dtype=object)
        matched = keys if match is None else np.asarray([row.labels[match] for row in rows], dtype=object)
    else:
        values = [row.labels[column] for row in rows]
        if column == DIGIT_INDEX:
            images = torch.from_numpy(digit_images()[0][[int(v) for v in values]])  # (pairs, 1, 8, 8)
        else:
            images = torch.stack([load_image(value) for value in values])  # (pairs, channels, height, width)
        other = torch.cat(
            [
                term.embed_other(images[s : s + batch_size], torch.device("cpu"))
                for s in range(0, len(values), batch_size)
            ]
        )
        keys = np.asarray(values, dtype=object)
        matched = keys if match is None else np.asarray([row.labels[match] for row in rows], dtype=object)
    return PairEmbeddings(_unit(speech), _unit(other), keys, matched, text_column)


def retrieve(embeddings: PairEmbeddings, direction: str, gallery: np.ndarray) -> RetrievalResult:
    """Score ``direction`` on the pairs ``gallery`` (row indices of ``embeddings``).

    Speech queries rank the gallery's distinct texts or images (one candidate per key); text or
    image queries (one per distinct key) rank the gallery's utterances.
    """
    if direction not in DIRECTIONS:
        raise ValueError(f"direction: expected one of {', '.join(DIRECTIONS)}, found {direction!r}")
    keys = embeddings.other_keys[gallery]
    _, first = np.unique(keys.astype(str), return_index=True)
    distinct = gallery[np.sort(first)]  # one row per distinct text or image
    speech, other = embeddings.speech[gallery], embeddings.other[distinct]
    relevant = (
        embeddings.match[gallery][:, None] == embeddings.match[distinct][None, :]
    )  # (utterances, candidates)
    similarity = speech @ other.T  # (utterances, distinct)
    if direction.startswith("speech"):
        return score_retrieval(similarity, relevant)
    return score_retrieval(similarity.T, relevant.T)


__all__ = [
    "DIRECTIONS",
    "PairEmbeddings",
    "RetrievalResult",
    "embed_pairs",
    "retrieval_ranks",
    "retrieve",
    "score_retrieval",
]
