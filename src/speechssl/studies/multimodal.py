"""What a second modality adds to a speech representation (the review's section D).

Chrupała (2022) reviews speech models grounded in text or vision and asks whether the second
modality moves the representation toward content (words, keywords, intents) and away from
who speaks. ``speechssl study multimodal`` checks it at equal compute: the same tiny encoder,
updates, seed and speech objective (Barlow Twins by default) are pretrained on FSDD's spoken
digits paired with their words and with handwritten digit images
(:func:`~speechssl.data.pairing.pair_digit_images`; speakers 4/1/1 and images split
disjointly), once without and once with the multi-modal term
(``L = L_speech + α · L_mm``, :mod:`speechssl.methods.joint`), optionally beside the
multi-modal objectives alone. Every variant's encoder is then evaluated as an ordinary upstream
on the same utterance tasks and seeds in one report, with paired tests of each multi-modal
variant against the speech-only one, and the answer per task: a content task should gain, a
speaker task should lose. The multi-modal variants' own heads are scored on cross-modal
retrieval of the held-out speaker's pairs (:class:`~speechssl.downstream.tasks.RetrievalTask`).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from speechssl.config import to_dict
from speechssl.data import load_corpus
from speechssl.data.pairing import pair_digit_images, write_digit_pairing
from speechssl.downstream.evaluate import run_evaluation
from speechssl.downstream.plan import EvaluationPlan
from speechssl.downstream.report import ReportTable, write_report
from speechssl.downstream.row import Row
from speechssl.downstream.statistics import holm_bonferroni, significance_floor_note, summarize
from speechssl.downstream.tasks import get_task
from speechssl.studies.comparison import compare
from speechssl.studies.grid import final_metrics_table, run_pretraining_grid
from speechssl.train import PretrainConfig, load_pretrain_config

SPEECH_ONLY = "speech_only"
PAIRS_FILE = "fsdd_digit_pairs.csv"  # its keyword task is named keyword_fsdd_digit_pairs
VARIANTS = ("speech_only", "joint_text", "joint_image", "speech_text", "visually_grounded")
DEFAULT_VARIANTS = ("speech_only", "joint_text", "joint_image")
# what each variant's heads can retrieve
RETRIEVAL = {
    "joint_text": ("retrieval_fsdd_speech_to_text", "retrieval_fsdd_text_to_speech"),
    "speech_text": ("retrieval_fsdd_speech_to_text", "retrieval_fsdd_text_to_speech"),
    "joint_image": ("retrieval_fsdd_speech_to_image", "retrieval_fsdd_image_to_speech"),
    "visually_grounded": ("retrieval_fsdd_speech_to_image", "retrieval_fsdd_image_to_speech"),
}
CONTENT, SPEAKER, OTHER = "content", "speaker", "other"


def task_role(task: str) -> str:
    """``content`` (keywords, words, intents, transcripts), ``speaker`` (identity, verification) or ``other``."""
    name = task.lower()
    if name.startswith(("speaker", "verification", "superb_sid", "superb_asv")):
        return SPEAKER
    if name.startswith(("keyword", "intent", "qbe", "asr", "superb_ks", "superb_ic", "superb_pr")):
        return CONTENT
    return OTHER


def study_variants(
    names: Sequence[str], pairs_manifest: Path, alpha: float, overrides: Sequence[str] = ()
) -> dict[str, PretrainConfig]:
    """The pretraining config of each variant, all on ``pairs_manifest``'s ``train`` rows with the
    encoder, optimiser and updates of ``joint_tiny`` (plus ``overrides``).

    * ``speech_only``: the base method of ``joint_tiny`` (Barlow Twins) alone;
    * ``joint_text``: base + α · speech_text on the digit words (``word``);
    * ``joint_image``: base + α · visually_grounded on the digit images (images of one digit are positives);
    * ``speech_text``, ``visually_grounded``: the multi-modal objective alone.
    """
    unknown = [name for name in names if name not in VARIANTS]
    if unknown or not names:
        raise ValueError(
            f"variants: expected names from {', '.join(VARIANTS)}, found {list(names) or 'none'}"
        )
    root = str(pairs_manifest.resolve())
    common = ["data.corpus=manifest", f"data.root={root}", "data.split=train", *overrides]
    joint = load_pretrain_config("joint_tiny", common)
    text = load_pretrain_config("speech_text_tiny", common)
    image = load_pretrain_config("visually_grounded_tiny", common)
    shared = {"encoder": joint.encoder, "optim": joint.optim, "train": joint.train}
    plain = dataclasses.replace(joint.data, text_column=None, image_column=None)
    with_text = dataclasses.replace(plain, text_column="word")
    with_image = dataclasses.replace(plain, image_column="image")
    base = joint.objective
    configs = {
        "speech_only": lambda: PretrainConfig(base.base, base.base_config(), data=plain, **shared),
        "joint_text": lambda: PretrainConfig(
            "joint",
            dataclasses.replace(
                base, term="speech_text", term_objective=to_dict(text.objective), alpha=alpha
            ),
            data=with_text,
            **shared,
        ),
        "joint_image": lambda: PretrainConfig(
            "joint",
            dataclasses.replace(
                base, term="visually_grounded", term_objective=to_dict(image.objective), alpha=alpha
            ),
            data=with_image,
            **shared,
        ),
        "speech_text": lambda: PretrainConfig("speech_text", text.objective, data=with_text, **shared),
        "visually_grounded": lambda: PretrainConfig(
            "visually_grounded", image.objective, data=with_image, **shared
        ),
    }
    return {name: configs[name]() for name in names}


@dataclass(frozen=True)
class Answer:
    """One task's answer for one multi-modal variant against the speech-only one.

    Attributes:
        task: the task.
        role: ``content``, ``speaker`` or ``other``.
        variant: the multi-modal variant.
        advantage: mean paired difference, positive when the variant is better on the task.
        p_value: two-sided Wilcoxon p-value over seeds (NaN with one seed).
        p_holm: Holm-corrected over every test of the page.
    """

    task: str
    role: str
    variant: str
    advantage: float
    p_value: float
    p_holm: float

    def verdict(self, alpha: float = 0.05) -> str:
        """The answer in words: toward content / away from speaker, or not, and whether it is significant."""
        significant = not math.isnan(self.p_holm) and self.p_holm <= alpha
        strength = "significant" if significant else "not significant"
        if self.role == CONTENT:
            moved = "toward content" if self.advantage > 0 else "NOT toward content"
        elif self.role == SPEAKER:
            moved = "away from speaker" if self.advantage < 0 else "NOT away from speaker"
        else:
            moved = "better" if self.advantage > 0 else "worse"
        return f"{moved} ({strength})" if self.advantage != 0 else "no change"


def answers(rows: Sequence[Row], checkpoints: dict[str, str]) -> list[Answer]:
    """Every multi-modal variant against ``speech_only`` on every task of ``rows``, Holm-corrected
    together. ``checkpoints``: variant name -> its upstream spec in ``rows``."""
    reference = checkpoints[SPEECH_ONLY]
    found = []
    for variant, spec in checkpoints.items():
        if variant == SPEECH_ONLY:
            continue
        for comparison in compare([r for r in rows if r.upstream in (spec, reference)], spec, reference):
            found.append((variant, comparison))
    p_values = [c.p_value for _, c in found]
    tested = [p for p in p_values if not math.isnan(p)]
    adjusted = iter(holm_bonferroni(tested)[0] if tested else [])
    holm = [math.nan if math.isnan(p) else float(next(adjusted)) for p in p_values]
    return [
        Answer(c.task, task_role(c.task), variant, c.advantage, c.p_value, p)
        for (variant, c), p in zip(found, holm, strict=True)
    ]


def answers_table(found: Sequence[Answer], seeds: int) -> ReportTable:
    """The review's question per task: does the second modality move the representation toward
    content and away from speaker?"""
    notes = [
        "advantage: the variant's mean paired difference from speech_only (positive: better on the task, "
        "whatever the metric's direction). A content task answers 'toward content' when the variant is "
        "better; a speaker task answers 'away from speaker' when the variant is worse. p: two-sided "
        "Wilcoxon over seeds; Holm over every test of this table. The seeds vary the probe, not the "
        "pretraining (each variant was pretrained once)."
    ]
    floor = significance_floor_note(seeds, max(len(found), 1))
    if floor:
        notes.append(f"Note: {floor}")
    return ReportTable(
        "Does the second modality move the representation toward content and away from speaker?",
        ["task", "role", "variant", "advantage", "p", "p (Holm)", "answer"],
        [
            [a.task, a.role, a.variant, f"{a.advantage:+.3f}", _p(a.p_value), _p(a.p_holm), a.verdict()]
            for a in found
        ],
        notes,
    )


def _p(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.3g}"


def retrieval_table(rows: Sequence[Row], labels: dict[str, str]) -> ReportTable:
    """Cross-modal retrieval of each multi-modal variant: R@1, R@5, R@10 and median rank over seeds."""
    body = []
    for spec, task in dict.fromkeys((r.upstream, r.task) for r in rows):
        group = [r for r in rows if (r.upstream, r.task) == (spec, task)]
        cells = []
        for key in ("value", "recall_at_5", "recall_at_10", "median_rank", "chance"):
            values = [r.value if key == "value" else r.extras[key] for r in group]
            summary = summarize(values)
            cells.append(f"{summary.mean:.3f}" + (f" ± {summary.std:.3f}" if len(values) > 1 else ""))
        body.append([labels.get(spec, spec), task, *cells])
    return ReportTable(
        "Cross-modal retrieval on the held-out speaker's pairs (the variants' own heads)",
        ["variant", "task", "R@1", "R@5", "R@10", "median rank", "chance R@1"],
        body,
        ["mean ± std over seeds; each seed draws a gallery of 100 held-out pairs."],
    )


def run_multimodal_study(
    output: str | Path,
    plan: EvaluationPlan,
    variants: Sequence[str] = DEFAULT_VARIANTS,
    alpha: float = 1.0,
    overrides: Sequence[str] = (),
    pairing_seed: int = 0,
) -> Path:
    """Pair FSDD with digit images, pretrain ``variants``, evaluate them on ``plan``'s tasks (and the
    multi-modal ones on retrieval), and write one report with the answers. Returns ``report.md``.

    Args:
        output: study folder (``pairs/``, ``runs/<variant>``, ``retrieval/``, ``report.md``).
        plan: the utterance tasks, seeds and data root (FSDD is read from ``<data_root>/fsdd``).
            The paired manifest's keyword task (``keyword_fsdd_digit_pairs``: digits of the
            held-out speaker, whom no variant heard in pretraining) is evaluated first.
        variants: names from :data:`VARIANTS`; ``speech_only`` is the reference.
        alpha: α of the joint variants.
        overrides: pretraining ``key=value`` overrides for every variant (e.g. ``train.max_steps=300``).
        pairing_seed: seed of the speaker/image splits and pairs.
    """
    if SPEECH_ONLY not in variants:
        raise ValueError(
            f"variants: expected {SPEECH_ONLY!r} among them (the reference), found {list(variants)}"
        )
    output = Path(output)
    pairs = output / "pairs" / PAIRS_FILE
    if not pairs.is_file():
        fsdd = load_corpus("fsdd", Path(plan.data_root) / "fsdd")
        write_digit_pairing(pair_digit_images(fsdd, pairing_seed), pairs)
    plan = dataclasses.replace(plan, tasks=[f"{pairs}:keyword", *plan.tasks])
    configs = study_variants(variants, pairs, alpha, overrides)
    grid = run_pretraining_grid(configs, output, plan)
    specs = {name: str(path) for name, path in grid.checkpoints.items()}
    labels = {spec: name for name, spec in specs.items()}
    found = answers(grid.rows, specs)
    tables = [answers_table(found, len(plan.seeds))]
    retrieval_specs = [specs[name] for name in variants if name in RETRIEVAL]
    retrieval_rows: list[Row] = []
    for name in variants:
        if name in RETRIEVAL:
            sub = dataclasses.replace(plan, tasks=list(RETRIEVAL[name]), baselines=[])
            retrieval_rows += run_evaluation([specs[name]], sub, output / "retrieval" / name, labels)
    if retrieval_specs:
        tables.append(retrieval_table(retrieval_rows, labels))
    runs = {name: output / "runs" / name for name in variants}
    upstreams = [*plan.baselines, *specs.values()]
    tasks = [get_task(name) for name in plan.tasks]
    report = write_report(grid.rows, tasks, upstreams, output, labels, [*tables, final_metrics_table(runs)])
    print("\n".join(line for table in tables for line in table.markdown()))
    return report


__all__ = [
    "DEFAULT_VARIANTS",
    "VARIANTS",
    "Answer",
    "answers",
    "answers_table",
    "retrieval_table",
    "run_multimodal_study",
    "study_variants",
    "task_role",
]
