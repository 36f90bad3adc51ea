"""Issue 17: speech–text and visually grounded speech (symmetric InfoNCE, learnable temperature,
global-batch negatives), the joint objective, and their pretraining runs."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import torch.nn.functional as F
from distributed_helpers import spawn_ranks
from preemption import assert_same_weights, preempted_at

from speechssl import distributed
from speechssl.data import Manifest
from speechssl.data.manifest import Utterance
from speechssl.methods import build_method, method_config
from speechssl.methods.joint import Joint, JointConfig
from speechssl.methods.multimodal import (
    PAD,
    SpeechTextConfig,
    SymmetricInfoNCE,
    load_multimodal,
    symmetric_info_nce,
    text_bytes,
)
from speechssl.models.checkpoint import find_latest
from speechssl.train import load_pretrain_config, pretrain
from speechssl.train.logging import read_metrics
from speechssl.train.pretrain import LoaderData
from speechssl.upstream import build_upstream

TEXT_TERM = {"embed_dim": 16, "text": {"dim": 16, "heads": 2, "ffn_dim": 32, "layers": 1, "max_chars": 8}}
IMAGE_TERM = {"embed_dim": 16, "positives": "keyword", "image": {"channels": [8, 8], "strides": [1, 2]}}

# the tiny configs shrunk to seconds (the corpus: `_paired_corpus`)
TINY = (
    "encoder.dim=32", "encoder.heads=2", "encoder.ffn_dim=64", "encoder.layers=1", "encoder.n_mels=16",
    "encoder.subsampling_channels=8", "encoder.pos_conv_kernel=8", "encoder.pos_conv_groups=4",
    "data.corpus=manifest", "data.crop_seconds=0.5", "data.max_batch_seconds=2.0", "data.num_workers=0",
    "optim.warmup_steps=1", "train.max_steps=4", "train.log_every=1", "train.checkpoint_every=2",
    "train.device=cpu",
)  # fmt: skip
TINY_OBJECTIVES = {
    "speech_text_tiny": (
        "objective.embed_dim=16", "objective.text.dim=16", "objective.text.heads=2",
        "objective.text.ffn_dim=32", "objective.text.layers=1", "data.text_column=word",
    ),
    "visually_grounded_tiny": (
        "objective.embed_dim=16", "objective.image.channels=[8, 8]", "objective.image.strides=[1, 2]",
        "data.image_column=image",
    ),
    "joint_tiny": (
        "objective.base_objective.projector=[32, 32]", "objective.base_objective.view.crop_seconds=0.4",
        "objective.term_objective.embed_dim=16", "objective.term_objective.text.dim=16",
        "objective.term_objective.text.heads=2", "objective.term_objective.text.ffn_dim=32",
        "objective.term_objective.text.layers=1", "data.text_column=word", "objective.alpha=0.5",
    ),
}  # fmt: skip


def _ce(logits: list[float], target: int) -> float:
    """Cross-entropy of one row of logits, by hand."""
    return -logits[target] + math.log(sum(math.exp(v) for v in logits))


def test_symmetric_info_nce_on_known_logits_equals_the_hand_computation():
    speech = torch.tensor([[1.0, 0.0], [0.0, 2.0]])  # unit after normalising: e1, e2
    other = torch.tensor([[3.0, 0.0], [0.6, 0.8]])  # e1, (0.6, 0.8)
    scale = 2.0
    out = symmetric_info_nce(speech, other, torch.tensor(math.log(scale)))
    logits = [[2.0, 1.2], [0.0, 1.6]]  # scale · cosines
    torch.testing.assert_close(out.logits, torch.tensor(logits))
    rows = (_ce(logits[0], 0) + _ce(logits[1], 1)) / 2
    columns = (_ce([2.0, 0.0], 0) + _ce([1.2, 1.6], 1)) / 2
    assert out.loss.item() == pytest.approx((rows + columns) / 2, rel=1e-6)
    assert out.accuracy.item() == 1.0


def test_rows_of_one_group_share_their_targets():
    """3x3: rows 0 and 1 say the same text, so each row's target is ½ on both of their columns."""
    other = torch.tensor([[1.0, 0.5, -1.0], [0.2, 0.8, 0.1], [0.0, -0.3, 0.9]])
    out = symmetric_info_nce(torch.eye(3), other, torch.tensor(0.0), groups=torch.tensor([7, 7, 3]))
    s = F.normalize(other, dim=1).T.tolist()  # logits[i][j] = ⟨e_i, ô_j⟩ = ô_j[i] (scale 1)

    def soft_ce(row: list[float], targets: dict[int, float]) -> float:
        return sum(weight * _ce(row, j) for j, weight in targets.items())

    targets = [{0: 0.5, 1: 0.5}, {0: 0.5, 1: 0.5}, {2: 1.0}]
    rows = sum(soft_ce(s[i], targets[i]) for i in range(3)) / 3
    columns = sum(soft_ce([s[i][j] for i in range(3)], targets[j]) for j in range(3)) / 3
    assert out.loss.item() == pytest.approx((rows + columns) / 2, rel=1e-6)


def test_temperature_gradient_matches_the_hand_derivative():
    """d L / d t with logits = eᵗ C: ½ eᵗ/N Σ_ij C_ij [(p_ij − δ_ij) + (q_ij − δ_ij)], with p the
    row softmax and q the column softmax of the logits (2x2 case computed with floats)."""
    t = torch.tensor(math.log(3.0), requires_grad=True)
    speech = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    other = torch.tensor([[0.8, 0.6], [0.0, 1.0]])
    symmetric_info_nce(speech, other, t).loss.backward()
    cos = [[0.8, 0.0], [0.6, 1.0]]  # ⟨s_i, o_j⟩
    z = [[3.0 * c for c in row] for row in cos]

    def softmax(values: list[float]) -> list[float]:
        total = sum(math.exp(v) for v in values)
        return [math.exp(v) / total for v in values]

    p = [softmax(row) for row in z]
    q_columns = [softmax([z[0][j], z[1][j]]) for j in range(2)]  # q_columns[j][i]
    expected = 0.0
    for i in range(2):
        for j in range(2):
            delta = 1.0 if i == j else 0.0
            expected += cos[i][j] * ((p[i][j] - delta) + (q_columns[j][i] - delta))
    expected *= 0.5 * 3.0 / 2
    assert t.grad.item() == pytest.approx(expected, rel=1e-5)


def test_loss_equals_open_clips_formulation():
    """open_clip's ClipLoss (local, no gather), written from its formula: CE of image→text and
    text→image logits against arange, averaged."""
    generator = torch.Generator().manual_seed(0)
    speech, text = torch.randn(8, 5, generator=generator), torch.randn(8, 5, generator=generator)
    logit_scale = torch.tensor(2.3)
    a, b = F.normalize(speech, dim=-1), F.normalize(text, dim=-1)
    per_speech = logit_scale.exp() * a @ b.T
    per_text = logit_scale.exp() * b @ a.T
    labels = torch.arange(8)
    reference = (F.cross_entropy(per_speech, labels) + F.cross_entropy(per_text, labels)) / 2
    assert symmetric_info_nce(speech, text, logit_scale).loss.item() == pytest.approx(
        reference.item(), rel=1e-6
    )


def test_temperature_starts_at_clips_value_and_is_clamped_at_100():
    loss = SymmetricInfoNCE()
    assert loss.logit_scale.item() == pytest.approx(math.log(1 / 0.07))
    with torch.no_grad():
        loss.logit_scale.fill_(7.0)
    loss.clamp_()
    assert loss.logit_scale.exp().item() == pytest.approx(100.0)
    assert not SymmetricInfoNCE(learn_temperature=False).logit_scale.requires_grad
    with pytest.raises(ValueError, match="max_logit_scale"):
        SymmetricInfoNCE(temperature=0.001, max_logit_scale=100.0)


def test_text_bytes_have_a_fixed_width_and_read_any_script():
    tokens = text_bytes(["Seven", "", "أربعة"], max_chars=4, lowercase=True)
    assert tokens.shape == (3, 5)
    assert tokens[0].tolist()[1:] == list(b"seve")
    assert tokens[1].tolist()[1:] == [PAD] * 4
    assert tokens[2].tolist()[1:] == list("أربعة".encode())[:4]


def _two_rank_inputs() -> tuple[torch.Tensor, ...]:
    generator = torch.Generator().manual_seed(3)
    x, y = torch.randn(6, 4, generator=generator), torch.randn(6, 3, generator=generator)
    w_speech, w_other = torch.randn(4, 5, generator=generator), torch.randn(3, 5, generator=generator)
    groups = torch.tensor([0, 1, 0, 2, 3, 1])
    return x, y, w_speech, w_other, groups


SPLIT = (2, 4)  # rows on rank 0 and rank 1 (unequal: the gather handles it)


def _loss_and_grads(rows: slice) -> tuple[float, list[torch.Tensor]]:
    x, y, w_speech, w_other, groups = _two_rank_inputs()
    w_speech.requires_grad_(True)
    w_other.requires_grad_(True)
    loss_module = SymmetricInfoNCE()
    out = loss_module(x[rows] @ w_speech, y[rows] @ w_other, groups[rows])
    out.loss.backward()
    return out.loss.item(), [w_speech.grad, w_other.grad, loss_module.logit_scale.grad]


def _ddp_worker(rank: int, world_size: int, out: str) -> None:
    distributed.setup_from_env()
    try:
        start = sum(SPLIT[:rank])
        loss, grads = _loss_and_grads(slice(start, start + SPLIT[rank]))
        for grad in grads:  # what DistributedDataParallel does: average the gradients over ranks
            torch.distributed.all_reduce(grad)
            grad /= world_size
        torch.save({"loss": loss, "grads": grads}, Path(out) / f"rank{rank}.pt")
    finally:
        distributed.cleanup()


def test_global_batch_negatives_under_two_gloo_ranks_equal_the_full_batch(tmp_path):
    spawn_ranks(_ddp_worker, str(tmp_path), world_size=2)
    loss, grads = _loss_and_grads(slice(0, sum(SPLIT)))
    for rank in range(2):
        found = torch.load(tmp_path / f"rank{rank}.pt")
        assert found["loss"] == pytest.approx(loss, rel=1e-6)
        for got, expected in zip(found["grads"], grads, strict=True):
            torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)


def test_joint_loss_is_the_base_loss_plus_alpha_times_the_term(tiny_encoder, tone_batch):
    torch.manual_seed(0)
    config = JointConfig(base="barlow_twins", term="speech_text", term_objective=TEXT_TERM, alpha=0.25)
    method = Joint(tiny_encoder(), config)
    batch = tone_batch([8000, 6400, 7200])
    torch.manual_seed(1)
    joint = method(batch)
    torch.manual_seed(1)  # the same randomness (views, dropout) in the same order
    base = method.base(batch)
    term = method.term(method.encoder, batch)
    assert joint.loss.item() == pytest.approx(base.loss.item() + 0.25 * term.loss.item(), rel=1e-6)
    assert joint.metrics["mm_loss"].item() == pytest.approx(term.loss.item(), rel=1e-6)
    assert {"invariance", "redundancy", "base_loss", "mm_logit_scale", "mm_text_retrieval_accuracy"} <= set(
        joint.metrics
    )
    assert method.encoder is method.base.encoder
    assert not any(name.startswith("encoder.") for name in method.state_dict())  # the encoder is saved once


def test_joint_rejects_an_unknown_base_and_a_negative_alpha():
    with pytest.raises(ValueError, match="base: expected a speech method"):
        JointConfig(base="speech_text")
    with pytest.raises(ValueError, match="alpha: expected >= 0"):
        JointConfig(alpha=-1.0)
    with pytest.raises(ValueError, match=r"objective\.base_objective"):
        JointConfig(base_objective={"no_such_option": 1})


def test_a_batch_without_the_paired_modality_is_refused(tiny_encoder, tone_batch):
    batch = tone_batch([8000, 6400])
    batch.text, batch.images = None, None
    text = build_method("speech_text", method_config("speech_text", TEXT_TERM), tiny_encoder())
    with pytest.raises(ValueError, match=r"set data\.text_column"):
        text(batch)
    image = build_method("visually_grounded", method_config("visually_grounded", IMAGE_TERM), tiny_encoder())
    with pytest.raises(ValueError, match=r"set data\.image_column"):
        image(batch)


def _tiny_bert(folder: Path) -> Path:
    """A randomly initialised 2-layer BERT and a 30-word tokenizer saved in ``folder`` (nothing downloaded)."""
    transformers = pytest.importorskip("transformers")
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "zero", "one", "two", "three", "four", "five"]
    words += [*"abcdefghijklmnopqrstuvwxyz"]
    folder.mkdir(parents=True)
    (folder / "vocab.txt").write_text("\n".join(words) + "\n")
    transformers.BertTokenizer(str(folder / "vocab.txt")).save_pretrained(folder)
    config = transformers.BertConfig(
        vocab_size=len(words),
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=32,
    )
    torch.manual_seed(0)
    transformers.BertModel(config).save_pretrained(folder)
    return folder


def test_a_frozen_local_text_model_is_read_offline_and_not_trained(tmp_path, tiny_encoder, tone_batch):
    folder = _tiny_bert(tmp_path / "bert")
    options = {"embed_dim": 16, "text": {"model": f"hf:{folder}"}}
    method = build_method("speech_text", method_config("speech_text", options), tiny_encoder())
    assert not any("text_encoder" in name for name in method.state_dict())  # its weights stay in its folder
    batch = tone_batch([8000, 6400])
    batch.text = ["two", "five"]
    method(batch).loss.backward()
    assert method.term.other_projection.weight.grad is not None
    model = method.term.text_encoder.__dict__["model"]
    assert all(p.grad is None and not p.requires_grad for p in model.parameters())
    missing = {"text": {"model": f"hf:{tmp_path / 'missing'}"}}
    with pytest.raises(FileNotFoundError, match="not a folder"):
        build_method("speech_text", method_config("speech_text", missing), tiny_encoder())


def _paired_corpus(folder: Path, utterances: int = 12) -> Path:
    """Tone "utterances" of 3 speakers saying 4 words, each with an 8x8 image; returns the manifest."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    words = ["zero", "one", "two", "three"]
    rows = []
    for index in range(utterances):
        digit = index % 4
        time = np.arange(8000) / 16000
        audio = 0.3 * np.sin(2 * np.pi * (300 + 200 * digit) * time) + 0.01 * rng.standard_normal(8000)
        path = folder / f"{index}.wav"
        sf.write(path, audio.astype(np.float32), 16000)
        image = folder / f"{index}.npy"
        np.save(image, rng.random((1, 8, 8)).astype(np.float32))
        labels = {"keyword": str(digit), "word": words[digit], "image": str(image)}
        rows.append(Utterance(f"u{index}", path, 0.5, 16000, f"s{index % 3}", "train", labels))
    manifest = folder / "manifest.csv"
    Manifest(rows).save(manifest)
    return manifest


@pytest.mark.parametrize("config_name", list(TINY_OBJECTIVES))
def test_tiny_config_pretrains_loads_as_upstream_and_resumes_exactly(config_name, tmp_path, monkeypatch):
    manifest = _paired_corpus(tmp_path / "corpus")
    overrides = [*TINY, *TINY_OBJECTIVES[config_name], f"data.root={manifest}"]
    config = load_pretrain_config(config_name, overrides)
    straight = pretrain(config, tmp_path / "straight")
    records = read_metrics(tmp_path / "straight")
    assert [r["step"] for r in records] == [1, 2, 3, 4]
    assert all(math.isfinite(r["loss"]) for r in records)
    assert any(key.endswith("retrieval_accuracy") for key in records[0])

    upstream = build_upstream(str(straight.checkpoint))  # an ordinary upstream
    assert upstream(torch.randn(2, 8000), torch.tensor([8000, 6400])).hidden_states[-1].shape[-1] == 32
    _, term, modality = load_multimodal(tmp_path / "straight")
    assert modality == ("visually_grounded" if config_name.startswith("visually") else "speech_text")
    assert term.loss.logit_scale.exp().item() <= 100.0

    with preempted_at(monkeypatch, LoaderData, 3):
        pretrain(config, tmp_path / "resumed")
    assert find_latest(tmp_path / "resumed").name == "step_00000002"
    resumed = pretrain(config, tmp_path / "resumed", resume=True)
    assert_same_weights(resumed.checkpoint, straight.checkpoint)


def test_pretraining_without_the_paired_column_names_the_option(tmp_path):
    manifest = _paired_corpus(tmp_path / "corpus", utterances=4)
    config = load_pretrain_config(
        "speech_text_tiny", [*TINY, f"data.root={manifest}", "data.text_column=null"]
    )
    with pytest.raises(ValueError, match=r"data\.text_column: speech_text needs"):
        pretrain(config, tmp_path / "run")


def test_speech_text_defaults_are_clips():
    config = SpeechTextConfig()
    assert (config.temperature, config.max_logit_scale, config.learn_temperature) == (0.07, 100.0, True)
    assert config.embed_dim == 512 and config.positives == "text"
