"""Beam search of character CTC outputs with a KenLM n-gram and a lexicon, as s3prl's ASR decoder.

s3prl v0.4 (``downstream/asr/config.yaml``, ``decoder_args``; its ``W2lKenLMDecoder``)
decodes SUPERB ASR with flashlight's lexicon-constrained beam search (Collobert et al.
2016, wav2letter; Pratap et al. 2019) and a KenLM n-gram (Heafield 2011): the official
LibriSpeech 4-gram (``4-gram.arpa``, openslr.org/11) and a letter lexicon (each word
spelled by its characters then the word boundary ``|``, fairseq's
``librispeech_lexicon.lst``), beam 5, beam threshold 25, LM weight 2, word score -1,
unknown words excluded (score -inf), silence score 0. The search runs here through
``flashlight-text`` (extra ``lm``), the library s3prl calls; the user supplies both files,
nothing is downloaded.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

WORD_BOUNDARY = "|"


@dataclass
class LMDecodingConfig:
    """Settings of the n-gram beam search (s3prl's ``decoder_args``).

    Attributes:
        kenlm_model: an ARPA or KenLM binary n-gram over upper-case words; ``None``: no
            LM decoding (greedy only, SUPERB's reported setting).
        lexicon: the lexicon file, one ``WORD<tab>W O R D |`` line per spelling.
        beam: hypotheses kept per frame.
        beam_threshold: hypotheses scoring more than this below the best are dropped.
        lm_weight: weight of the LM log-probability.
        word_score: score added per emitted word.
    """

    kenlm_model: str | None = None
    lexicon: str | None = None
    beam: int = 5
    beam_threshold: float = 25.0
    lm_weight: float = 2.0
    word_score: float = -1.0

    def __post_init__(self) -> None:
        if (self.kenlm_model is None) != (self.lexicon is None):
            raise ValueError(
                "kenlm_model and lexicon: expected both (LM decoding) or neither, "
                f"found kenlm_model={self.kenlm_model!r} and lexicon={self.lexicon!r}"
            )
        if self.beam < 1:
            raise ValueError(f"beam: expected an integer >= 1, found {self.beam}")


class LexiconBeamSearch:
    """flashlight's ``LexiconDecoder`` over a character vocabulary whose word separator is a space.

    Args:
        config: the LM, lexicon and search settings (``kenlm_model`` and ``lexicon`` set).
        vocabulary: the CTC output symbols, the blank first; ``" "`` is the word boundary.

    Raises:
        ImportError: ``flashlight-text`` is not installed (``pip install speechssl[lm]``).
        FileNotFoundError: the LM or the lexicon file does not exist.
        ValueError: the vocabulary has no space, or no lexicon word can be spelled with it.
    """

    def __init__(self, config: LMDecodingConfig, vocabulary: Sequence[str]) -> None:
        try:
            from flashlight.lib.text import decoder, dictionary
            from flashlight.lib.text.decoder.kenlm import KenLM
        except ImportError as err:
            raise ImportError(
                "LM decoding needs the flashlight-text package: pip install 'speechssl[lm]'"
            ) from err
        for name in ("kenlm_model", "lexicon"):
            if not Path(str(getattr(config, name))).is_file():
                raise FileNotFoundError(f"asr.lm.{name}: file not found: {getattr(config, name)}")
        if " " not in vocabulary:
            raise ValueError("LM decoding: expected a character vocabulary with a space between words")
        tokens = [WORD_BOUNDARY if symbol == " " else symbol for symbol in vocabulary]
        self.tokens = dictionary.Dictionary(tokens)
        spellings = {
            word: [s for s in spelled if all(t in tokens for t in s)]
            for word, spelled in dictionary.load_words(config.lexicon).items()
        }
        spellings = {word: spelled for word, spelled in spellings.items() if spelled}
        if not spellings:
            raise ValueError(f"{config.lexicon}: no word can be spelled with the vocabulary {tokens[1:]}")
        self.words = dictionary.Dictionary(["<unk>", *spellings])
        lm = KenLM(config.kenlm_model, self.words)
        boundary = self.tokens.get_index(WORD_BOUNDARY)
        trie = decoder.Trie(len(tokens), boundary)
        start = lm.start(False)
        for word, spelled in spellings.items():
            index = self.words.get_index(word)
            _, score = lm.score(start, index)
            for spelling in spelled:
                trie.insert([self.tokens.get_index(t) for t in spelling], index, score)
        trie.smear(decoder.SmearingMode.MAX)
        options = decoder.LexiconDecoderOptions(
            beam_size=config.beam,
            beam_size_token=len(tokens),
            beam_threshold=config.beam_threshold,
            lm_weight=config.lm_weight,
            word_score=config.word_score,
            unk_score=-math.inf,
            sil_score=0.0,
            log_add=False,
            criterion_type=decoder.CriterionType.CTC,
        )
        unknown = self.words.get_index("<unk>")
        self.decoder = decoder.LexiconDecoder(options, trie, lm, boundary, 0, unknown, [], False)

    def decode(self, log_probs: torch.Tensor, lengths: torch.Tensor) -> list[str]:
        """The best word sequence of each utterance of ``log_probs`` ``(frames, batch, vocab)``
        (valid frames ``lengths (batch,)``), words joined by spaces."""
        texts = []
        for b, length in enumerate(lengths.tolist()):
            emissions = log_probs[:length, b].detach().float().cpu().contiguous()  # (length, vocab)
            results = self.decoder.decode(emissions.data_ptr(), length, emissions.shape[1])
            words = results[0].words if results else []
            texts.append(" ".join(self.words.get_entry(w) for w in words if w >= 0))
        return texts


__all__ = ["WORD_BOUNDARY", "LMDecodingConfig", "LexiconBeamSearch"]
