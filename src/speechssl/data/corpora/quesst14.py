"""QUESST 2014 (MediaEval Query by Example Search on Speech), read in its native layout.

Anguera et al., *Query by Example Search on Speech at MediaEval 2014*, and the
``quesst14Database`` distribution: documents ``Audio/quesst14_NNNNN.wav``, queries
``dev_queries/quesst14_dev_NNNN.wav`` and ``eval_queries/quesst14_eval_NNNN.wav`` (8 kHz),
and per query set a NIST STD ground-truth folder ``scoring/groundtruth_quesst14_{dev,eval}/``
holding ``quesst14.ecf.xml`` (the documents searched: ``<excerpt audio_filename=...>``),
``quesst14_{set}.tlist.xml`` (the queries: ``<term termid=...>``) and
``quesst14_{set}.rttm`` (the occurrences: ``LEXEME {document} {channel} {tbeg} {dur}
{termid} ...`` lines, NIST RTTM).

The manifest holds every document (split ``train``: searched, never a query), every dev
query (``valid``) and eval query (``test``); the ``role`` column says ``document`` or
``query``. The corpus names no speakers (``speaker`` is ``unknown``).
"""

from __future__ import annotations

import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass
from pathlib import Path

from speechssl.data.audio import BadFileSummary
from speechssl.data.corpora.common import PendingUtterance, probe_utterances, require_folder
from speechssl.data.manifest import Manifest

CORPUS = "quesst14"
QUERY_SETS = {"dev": "valid", "eval": "test"}


@dataclass(frozen=True)
class QuesstGroundTruth:
    """One query set's NIST STD ground truth.

    Attributes:
        documents: document ids (file names without ``.wav``) of the ECF, in its order.
        queries: query (term) ids of the term list, in its order.
        occurrences: ``(query, document)`` pairs of the RTTM (one per document, however
            often the query occurs in it: QUESST scores whole documents).
    """

    documents: list[str]
    queries: list[str]
    occurrences: frozenset[tuple[str, str]]


def _xml(path: Path) -> ElementTree.Element:
    if not path.is_file():
        raise FileNotFoundError(f"corpus {CORPUS!r}: ground-truth file not found: {path}")
    try:
        return ElementTree.parse(path).getroot()
    except ElementTree.ParseError as error:
        raise ValueError(f"corpus {CORPUS!r}: {path}: not valid XML ({error})") from error


def read_ground_truth(root: str | Path, query_set: str) -> QuesstGroundTruth:
    """The ECF, term list and RTTM of ``scoring/groundtruth_quesst14_{query_set}`` under ``root``.

    Raises:
        ValueError: unknown ``query_set``, malformed files (naming file and line), or an
            RTTM occurrence of a query or document the other two files do not list.
        FileNotFoundError: a missing file.
    """
    if query_set not in QUERY_SETS:
        raise ValueError(f"query_set: expected one of {sorted(QUERY_SETS)}, found {query_set!r}")
    folder = Path(root) / "scoring" / f"groundtruth_quesst14_{query_set}"
    ecf = _xml(folder / "quesst14.ecf.xml")
    documents = [Path(e.get("audio_filename", "")).stem for e in ecf.iter("excerpt")]
    if not documents or "" in documents:
        raise ValueError(
            f"corpus {CORPUS!r}: {folder / 'quesst14.ecf.xml'}: expected <excerpt audio_filename=...> elements"
        )
    tlist = _xml(folder / f"quesst14_{query_set}.tlist.xml")
    queries = [term.get("termid", "") for term in tlist.iter("term")]
    if not queries or "" in queries:
        raise ValueError(
            f"corpus {CORPUS!r}: {folder}/quesst14_{query_set}.tlist.xml: expected <term termid=...> elements"
        )
    rttm = folder / f"quesst14_{query_set}.rttm"
    if not rttm.is_file():
        raise FileNotFoundError(f"corpus {CORPUS!r}: ground-truth file not found: {rttm}")
    occurrences = set()
    known_documents, known_queries = set(documents), set(queries)
    for number, line in enumerate(rttm.read_text(encoding="utf-8").splitlines(), start=1):
        fields = line.split()
        if not fields or fields[0] != "LEXEME":
            continue
        if len(fields) < 6 or fields[1] not in known_documents or fields[5] not in known_queries:
            raise ValueError(
                f"corpus {CORPUS!r}: {rttm}, line {number}: expected 'LEXEME {{document}} {{channel}} {{tbeg}} "
                f"{{dur}} {{termid}} ...' naming an ECF document and a listed query, found {line.strip()!r}"
            )
        occurrences.add((fields[5], fields[1]))
    return QuesstGroundTruth(documents, queries, frozenset(occurrences))


def load_quesst14(root: str | Path, bad_files: BadFileSummary | None = None) -> Manifest:
    """Manifest of QUESST 2014 at ``root`` (the ``quesst14Database`` folder).

    Raises:
        FileNotFoundError: no such folder, no ``Audio/`` documents, or no query folder.
        AudioError: with ``bad_files=None``, a file whose header is bad.
    """
    root = require_folder(root, CORPUS)
    documents = sorted((root / "Audio").glob("*.wav"))
    if not documents:
        raise FileNotFoundError(f"corpus {CORPUS!r}: no .wav documents in {root / 'Audio'}")
    candidates = [PendingUtterance(p, p.stem, "unknown", "train", {"role": "document"}) for p in documents]
    for query_set, split in QUERY_SETS.items():
        folder = root / f"{query_set}_queries"
        if not folder.is_dir():
            raise FileNotFoundError(f"corpus {CORPUS!r}: query folder not found: {folder}")
        candidates += [
            PendingUtterance(p, p.stem, "unknown", split, {"role": "query"})
            for p in sorted(folder.glob("*.wav"))
        ]
    return Manifest(probe_utterances(candidates, bad_files))
