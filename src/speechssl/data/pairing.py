"""Speech paired with a second modality: which corpus offers which pairing, images, and the
spoken-digit ↔ handwritten-digit pairing.

A manifest row carries its paired text in a label column (``transcript``, ``keyword``, ``word``
or any other text column) and its paired image in a label column holding the path of a
``.npy`` array or a ``.png`` file; :class:`~speechssl.data.dataset.AudioDataset` puts them in
the batch (``AudioBatch.text``, ``AudioBatch.images``) when ``DataConfig.text_column`` /
``image_column`` name them. :data:`PAIRINGS` says what each corpus loader offers
(``speechssl data list`` prints it).

The digit pairing follows AV-MNIST (Vielzeuf et al. 2018, "CentralNet"): each Free Spoken
Digit Dataset utterance is paired with a handwritten image of the same digit, here one of
scikit-learn's 1,797 8×8 digits (``sklearn.datasets.load_digits``, the UCI optical digits
test set; nothing is downloaded). The pairs are drawn so that a held-out pair shares neither
its speaker nor its image with training: FSDD's six speakers are split speaker-disjointly
4 / 1 / 1 (train / valid / test) by :func:`~speechssl.data.splits.group_disjoint_split`, the
images 70 / 15 / 15 % within each digit by :func:`~speechssl.data.splits.assign_splits`, and
each utterance draws its image (seeded) from the images of its digit in its own split.
"""

from __future__ import annotations

import dataclasses
import io
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from speechssl.data.manifest import Manifest
from speechssl.data.splits import assign_splits, group_disjoint_split
from speechssl.storage import atomic_write_bytes

if TYPE_CHECKING:
    import torch

DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
IMAGE_SUFFIXES = (".npy", ".png")


@dataclass(frozen=True)
class Pairing:
    """A second modality a corpus offers for each utterance.

    Attributes:
        modality: ``text`` or ``image``.
        column: the manifest column that holds it (``transcript``, ``keyword``, ``image``, ...).
        description: one line for listings.
    """

    modality: str
    column: str
    description: str


PAIRINGS: dict[str, tuple[Pairing, ...]] = {
    "librispeech": (Pairing("text", "transcript", "the utterance's transcript (upper-case words)"),),
    "fsdd": (
        Pairing("text", "keyword", "the spoken digit, '0'-'9'"),
        Pairing(
            "image",
            "image",
            "a handwritten 8x8 digit of the same class (speechssl data pair-digits: adds 'word' and 'image')",
        ),
    ),
    "arabic_speech_commands": (Pairing("text", "keyword", "the spoken command word"),),
    "speech_commands": (Pairing("text", "keyword", "the spoken command word"),),
    "speech_commands_superb": (Pairing("text", "word", "the spoken word (keyword holds its SUPERB class)"),),
    "fluent_speech_commands": (Pairing("text", "transcript", "the spoken command's transcript"),),
    "quesst14": (),
    "manifest": (Pairing("text", "<column>", "any text column; images: a column of .npy/.png paths"),),
}


def corpus_pairings(corpus: str) -> tuple[Pairing, ...]:
    """The pairings corpus loader ``corpus`` offers (none when it has no text or image column)."""
    return PAIRINGS.get(corpus, ())


def load_image(value: str | Path | np.ndarray | torch.Tensor) -> torch.Tensor:
    """An image as a float32 ``(channels, height, width)`` tensor.

    Args:
        value: an array or tensor ``(height, width)`` or ``(channels, height, width)``, or the
            path of a ``.npy`` file holding one, or of a ``.png`` file (read as
            ``(height, width, channels)`` and moved channels-first).

    Raises:
        ValueError: an unknown suffix or a shape that is not 2-D or 3-D (naming the file).
        FileNotFoundError: the file does not exist.
    """
    import torch  # here, so that listing corpora and writing manifests never import torch

    where = "image array"
    if isinstance(value, (str, Path)):
        path = Path(value)
        where = str(path)
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            raise ValueError(f"{path}: expected an image file ending in {' or '.join(IMAGE_SUFFIXES)}")
        if not path.is_file():
            raise FileNotFoundError(f"{path}: image file not found")
        if path.suffix.lower() == ".npy":
            array = np.load(path)
        else:
            from matplotlib.image import imread

            array = np.asarray(imread(path))
            if array.ndim == 3:
                array = np.moveaxis(array, -1, 0)  # (height, width, channels) -> (channels, height, width)
    else:
        array = np.asarray(value)
    if array.ndim == 2:
        array = array[None]  # (height, width) -> (1, height, width)
    if array.ndim != 3:
        raise ValueError(
            f"{where}: expected (height, width) or (channels, height, width), found {array.shape}"
        )
    return torch.as_tensor(np.ascontiguousarray(array), dtype=torch.float32)


@dataclass(frozen=True)
class DigitPairing:
    """FSDD utterances paired with handwritten digits (see the module docstring).

    Attributes:
        manifest: the FSDD rows re-split speaker-disjointly, with label columns ``word`` (the
            digit's English name) and ``image_index`` (a row of ``images``).
        images: ``(1797, 1, 8, 8)`` float32 images scaled to ``[0, 1]``.
        image_split: ``(1797,)`` the split each image belongs to.
    """

    manifest: Manifest
    images: np.ndarray
    image_split: np.ndarray


def digit_images() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's handwritten digits: ``(1797, 1, 8, 8)`` float32 in ``[0, 1]`` and their digits."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = (digits.images / 16.0).astype(np.float32)[:, None]  # (1797, 8, 8) -> (1797, 1, 8, 8)
    return images, digits.target.astype(np.int64)


def pair_digit_images(
    fsdd: Manifest, seed: int = 0, valid_fraction: float = 0.15, test_fraction: float = 0.15
) -> DigitPairing:
    """Pair every utterance of ``fsdd`` (the ``fsdd`` loader's manifest) with an image of its digit.

    Speakers are split 4 / 1 / 1 (for FSDD's six: ``round(6/6)`` each to valid and test) with
    ``seed``; the images of each digit ``valid_fraction`` / ``test_fraction`` into valid / test;
    an utterance draws its image uniformly (``numpy`` generator seeded by ``seed``) from its
    digit's images in its split. No speaker and no image is in two splits.

    Raises:
        ValueError: ``fsdd`` has no ``keyword`` column of digits, or fewer than 3 speakers.
    """
    if "keyword" not in fsdd.label_columns:
        raise ValueError(
            f"pair_digit_images: expected a 'keyword' column of digits, found {fsdd.label_columns}"
        )
    speakers = sorted(set(fsdd.column("speaker")))
    if len(speakers) < 3:
        raise ValueError(
            f"pair_digit_images: expected at least 3 speakers (train, valid, test), found {len(speakers)}"
        )
    share = 1.0 / len(speakers)
    manifest = group_disjoint_split(fsdd, share, share, group="speaker", seed=seed)
    images, targets = digit_images()
    image_split = np.empty(len(images), dtype=object)
    for digit in range(10):
        indices = np.flatnonzero(targets == digit)
        split_of = assign_splits([str(i) for i in indices], valid_fraction, test_fraction, seed)
        for index in indices:
            image_split[index] = split_of[str(index)]
    pools = {
        (split, digit): np.flatnonzero((image_split == split) & (targets == digit))
        for split in ("train", "valid", "test")
        for digit in range(10)
    }
    rng = np.random.default_rng(seed)
    rows = []
    for row in manifest:
        digit = row.labels["keyword"]
        if digit not in {str(d) for d in range(10)}:
            raise ValueError(f"pair_digit_images: {row.id}: expected a digit keyword, found {digit!r}")
        pool = pools[(row.split, int(digit))]
        labels = {**row.labels, "word": DIGIT_WORDS[int(digit)], "image_index": str(int(rng.choice(pool)))}
        rows.append(dataclasses.replace(row, labels=labels))
    return DigitPairing(Manifest(rows), images, image_split.astype(str))


def write_digit_pairing(pairing: DigitPairing, output: str | Path) -> Manifest:
    """Save ``pairing``'s manifest at ``output`` (``.csv`` or ``.jsonl``) with an ``image`` column:
    the path of each used image, saved as ``images/<index>.npy`` ``(1, 8, 8)`` next to it.

    Returns:
        the manifest written.
    """
    output = Path(output)
    folder = output.parent / "images"
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for row in pairing.manifest:
        index = int(row.labels["image_index"])
        path = (folder / f"{index}.npy").resolve()
        if not path.is_file():
            buffer = io.BytesIO()
            np.save(buffer, pairing.images[index])
            atomic_write_bytes(path, buffer.getvalue())
        rows.append(dataclasses.replace(row, labels={**row.labels, "image": str(path)}))
    manifest = Manifest(rows)
    manifest.save(output)
    return manifest


__all__ = [
    "DIGIT_WORDS",
    "PAIRINGS",
    "DigitPairing",
    "Pairing",
    "corpus_pairings",
    "digit_images",
    "load_image",
    "pair_digit_images",
    "write_digit_pairing",
]
