"""Discrete speech units as a product: fit, label a corpus, score, or take a trained quantizer.

* :mod:`speechssl.models.kmeans`: k-means on a bounded sample of a corpus's frames → a
  :class:`~speechssl.models.units.UnitTokenizer` (HuBERT's targets, Hsu et al. 2021, §II-B);
* :mod:`.labels`: the units of every utterance, cached on disk and memory-mapped;
* :mod:`.quality`: phone/label purity, cluster purity and PNMI (Hsu et al. 2021, §IV-G),
  codebook usage;
* :mod:`.truth`: frame-level ground truth from phone alignments or utterance labels;
* :mod:`speechssl.methods.tokenizers`: the tokenizer of a trained VQ-APC or wav2vec 2.0 quantizer;
* :mod:`.pipeline`: the entry points behind ``speechssl units fit|label|score``.
"""

from speechssl.units.labels import UnitLabels, iter_units, label_corpus, tokenizer_fingerprint
from speechssl.units.pipeline import corpus_manifest, load_tokenizer, score_units, unit_features
from speechssl.units.quality import JointCounter, UnitQuality, codebook_usage, joint_counts, unit_quality
from speechssl.units.truth import frame_truth

__all__ = [
    "JointCounter",
    "UnitLabels",
    "UnitQuality",
    "codebook_usage",
    "corpus_manifest",
    "frame_truth",
    "iter_units",
    "joint_counts",
    "label_corpus",
    "load_tokenizer",
    "score_units",
    "tokenizer_fingerprint",
    "unit_features",
    "unit_quality",
]
