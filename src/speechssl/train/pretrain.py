"""``speechssl pretrain``: wire a :class:`PretrainConfig` into data, encoder, method and trainer.

Nothing here is method-specific: the method is looked up by name in
:mod:`speechssl.methods`, built around the encoder, and handed to :func:`train`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import warnings
from collections.abc import Iterator
from pathlib import Path

from torch.utils.data import DataLoader

from speechssl import distributed
from speechssl.config import ConfigError, from_dict, load_yaml, to_dict
from speechssl.data.audio import BadFile, BadFileSummary
from speechssl.data.batch import AudioBatch
from speechssl.data.config import SHARDS, load_manifest
from speechssl.data.dataset import AudioDataset, build_dataloader, header_durations, short_utterances
from speechssl.data.sampler import DurationBatchSampler
from speechssl.data.shards import DEFAULT_SHUFFLE_BUFFER, ShardIndex, ShardLoaderData, ShardStream
from speechssl.data.validate import DURATION_TOLERANCE, held_seconds
from speechssl.methods import PretextMethod, build_method, method_spec
from speechssl.models.checkpoint import read_safetensors, resolve_checkpoint, verify_checkpoint
from speechssl.models.encoder import EncoderConfig, SpeechEncoder
from speechssl.storage import FolderLockedError, folder_lock, remove_stale_partials
from speechssl.train.config import PretrainConfig
from speechssl.train.rng import seed_everything
from speechssl.train.trainer import TrainResult, train

BAD_FILES = "bad_files.json"


class LoaderData:
    """A :class:`~speechssl.train.trainer.PretrainData` over a dataset and a duration batch sampler.

    Args:
        dataset: the corpus, with ``set_epoch`` selecting each epoch's random crops.
        sampler: this rank's shard of duration-bounded batches; ``set_epoch(epoch, start_batch)``
            makes epochs deterministic and resumable mid-epoch.
        loader: a DataLoader over ``dataset`` driven by ``sampler``.
        bad_files: files left out of the manifest because their header was unreadable or
            they are shorter than the encoder reads (with ``data.skip_bad``); files that fail later, when decoded, are dropped from
            their batch with a warning naming them.
    """

    def __init__(
        self,
        dataset: AudioDataset,
        sampler: DurationBatchSampler,
        loader: DataLoader,
        bad_files: BadFileSummary,
    ) -> None:
        self.dataset = dataset
        self.bad_files = bad_files
        self.sampler = sampler
        self.loader = loader
        self.sample_rate = dataset.sample_rate

    def loader_for_epoch(self, epoch: int, start_batch: int) -> Iterator[AudioBatch]:
        """This rank's batches of ``epoch`` from batch ``start_batch`` on.

        The DataLoader iterator is created here, not lazily, because creating it draws its
        workers' base seed from the global RNG (see :func:`speechssl.train.trainer.train`).
        """
        self.dataset.set_epoch(epoch)
        self.sampler.set_epoch(epoch, start_batch)
        return iter(self.loader)


def check_sample_rates(config: PretrainConfig) -> None:
    """Raise unless the data is read at the encoder's rate (``encoder.sample_rate`` owns it)."""
    if config.data.sample_rate != config.encoder.sample_rate:
        raise ConfigError(
            f"data.sample_rate: expected encoder.sample_rate = {config.encoder.sample_rate} Hz (the rate the "
            f"encoder's front-end and the method's views and crops are built for), found {config.data.sample_rate} Hz"
        )


def check_min_duration(dataset: AudioDataset | ShardStream, min_samples: int) -> None:
    """Raise unless every item (after cropping) has the ``min_samples`` the encoder's front-end
    reads: the pipeline's check, so that the training step itself reads no lengths on the host."""
    durations = dataset.effective_durations()
    if len(durations) == 0 or min_samples <= 1:
        return
    shortest = int(durations.argmin())
    samples = round(float(durations[shortest]) * dataset.sample_rate)
    if samples < min_samples:
        raise ValueError(
            f"data: expected every utterance (after data.crop_seconds) to have at least {min_samples} samples "
            f"(the encoder front-end's receptive field), found {samples} in {dataset.describe_item(shortest)}; "
            "data.skip_bad=true skips such files"
        )


def skip_stale_rows(dataset: AudioDataset, bad_files: BadFileSummary) -> AudioDataset:
    """``dataset`` (read from a saved manifest, whose rows were not probed) without the rows whose
    file header is bad or whose stated duration is not the file's (more than
    ``DURATION_TOLERANCE`` off: a crop would start past its end), each recorded in ``bad_files``."""
    manifest = dataset.manifest
    headers, unreadable = header_durations(manifest)
    stale = BadFileSummary(list(unreadable))
    for row, found in zip(manifest, headers.tolist(), strict=True):
        held = held_seconds(row, found)
        if not math.isnan(found) and abs(row.duration - held) > DURATION_TOLERANCE:
            reason = f"the manifest's duration {row.duration:.3f} s is not the file's {held:.3f} s"
            stale.add(BadFile(id=row.id, path=str(row.path), reason=reason))
    if not stale:
        return dataset
    bad_files.extend(stale)
    return AudioDataset(
        manifest.exclude_ids(stale.ids),
        dataset.sample_rate,
        dataset.crop_seconds,
        dataset.skip_bad,
        dataset.seed,
    )


def skip_short(dataset: AudioDataset, min_samples: int, bad_files: BadFileSummary) -> AudioDataset:
    """``dataset`` without the items shorter (after cropping) than the ``min_samples`` the encoder's
    front-end reads, each recorded in ``bad_files`` like an unreadable file (``data.skip_bad``).

    Raises:
        ConfigError: ``data.crop_seconds`` itself is shorter than ``min_samples`` (every item would go).
    """
    crop = dataset.crop_seconds
    if crop is not None and round(crop * dataset.sample_rate) < min_samples:
        raise ConfigError(
            f"data.crop_seconds: expected at least {min_samples / dataset.sample_rate:g} s ({min_samples} samples, "
            f"the encoder front-end's receptive field), found {crop:g}"
        )
    short = short_utterances(
        dataset.manifest, dataset.effective_durations(), dataset.sample_rate, min_samples
    )
    if not short:
        return dataset
    bad_files.extend(short)
    return AudioDataset(
        dataset.manifest.exclude_ids(short.ids),
        dataset.sample_rate,
        dataset.crop_seconds,
        dataset.skip_bad,
        seed=dataset.seed,
    )


def build_shard_data(config: PretrainConfig) -> ShardLoaderData:
    """The streaming counterpart of :func:`build_pretrain_data` for ``data.corpus=shards``."""
    data = config.data
    stream = ShardStream(
        ShardIndex.load(data.root),
        data.sample_rate,
        data.crop_seconds,
        data.max_batch_seconds,
        skip_bad=data.skip_bad,
        seed=config.train.seed,
        num_replicas=distributed.world_size(),
        rank=distributed.rank(),
        num_workers=data.num_workers,
        min_batch_size=method_spec(config.method).method_class.min_batch_size,
        shuffle_buffer=int(data.corpus_options.get("shuffle_buffer", DEFAULT_SHUFFLE_BUFFER)),
    )
    check_min_duration(stream, config.encoder.min_samples)
    return ShardLoaderData(stream, data.num_workers)


def build_pretrain_data(config: PretrainConfig) -> LoaderData | ShardLoaderData:
    """Manifest, cropped dataset, this rank's duration batch sampler and the DataLoader.

    The manifest is built (the synthetic corpus generated, if needed) by the main process
    first, then read by the others, so ranks never write the same files at once. The
    audio is read at ``data.sample_rate``, which must equal ``encoder.sample_rate``.
    """
    check_sample_rates(config)
    data = config.data
    if data.corpus == SHARDS:
        return build_shard_data(config)
    if not distributed.is_main_process():
        distributed.barrier()
    bad_files = BadFileSummary() if data.skip_bad else None
    manifest = load_manifest(data, bad_files=bad_files)
    if distributed.is_main_process():
        distributed.barrier()
    dataset = AudioDataset(
        manifest,
        data.sample_rate,
        data.crop_seconds,
        data.skip_bad,
        seed=config.train.seed,
        text_column=data.text_column,
        image_column=data.image_column,
    )
    if bad_files is not None:
        if data.corpus == "manifest":
            dataset = skip_stale_rows(dataset, bad_files)
        dataset = skip_short(dataset, config.encoder.min_samples, bad_files)
        if not len(dataset):
            first = bad_files.files[0]
            raise ValueError(
                f"data: expected usable utterances, found {len(bad_files)} bad file(s) and no other "
                f"(first: {first.path}: {first.reason})"
            )
    check_min_duration(dataset, config.encoder.min_samples)
    sampler = DurationBatchSampler(
        dataset.effective_durations(),
        data.max_batch_seconds,
        shuffle=True,
        min_batch_size=method_spec(config.method).method_class.min_batch_size,
        seed=config.train.seed,
        num_replicas=distributed.world_size(),
        rank=distributed.rank(),
    )
    loader = build_dataloader(dataset, sampler, data.num_workers)
    return LoaderData(dataset, sampler, loader, bad_files or BadFileSummary())


def report_bad_files(bad_files: BadFileSummary, run_dir: Path) -> None:
    """Warn about skipped files and list them in ``run_dir/bad_files.json`` (main process only)."""
    if not bad_files or not distributed.is_main_process():
        return
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / BAD_FILES).write_text(json.dumps(bad_files.to_dict(), indent=2))
    warnings.warn(f"{bad_files.format()}\n(listed in {run_dir / BAD_FILES})", stacklevel=2)


def prepare_method(config: PretrainConfig, run_dir: str | Path) -> PretrainConfig:
    """``config`` with the objective its method's :meth:`~speechssl.methods.base.PretextMethod.prepare` returns.

    E.g. HuBERT's and Discrete BERT's unit tokenizer, fitted on the pretraining corpus into
    ``run_dir/units`` when ``objective.units`` is empty. Call it with the process group set up.
    """
    method_class = method_spec(config.method).method_class
    objective = method_class.prepare(config.objective, config.encoder, config.data, Path(run_dir))
    return dataclasses.replace(config, objective=objective)


def build_pretrain_method(config: PretrainConfig) -> PretextMethod:
    """The config's encoder wrapped in its method, initialised from ``train.seed``, or from the
    weights of ``train.init_from`` (loaded into the encoder before the method wraps it, so that
    a copy it makes, e.g. data2vec's teacher, starts from them too).

    The encoder is built by the method's
    :meth:`~speechssl.methods.base.PretextMethod.build_encoder` (e.g. Discrete BERT's unit
    front-end). ``data.sample_rate`` must equal ``encoder.sample_rate``.
    """
    check_sample_rates(config)
    seed_everything(config.train.seed)
    encoder = method_spec(config.method).method_class.build_encoder(config.encoder, config.objective)
    if config.train.init_from:
        load_initial_encoder(encoder, config.train.init_from)
    method = build_method(config.method, config.objective, encoder)
    if config.train.init_from:
        load_initial_heads(method, config.train.init_from, config.method)
    return method


def with_init_encoder(config: PretrainConfig) -> PretrainConfig:
    """``config`` with the encoder architecture of ``train.init_from``'s checkpoint (unchanged without one)."""
    if not config.train.init_from:
        return config
    checkpoint = resolve_checkpoint(config.train.init_from)
    encoder = from_dict(EncoderConfig, load_yaml(checkpoint / "encoder.yaml"), where="encoder")
    return dataclasses.replace(config, encoder=encoder)


def load_initial_encoder(encoder: SpeechEncoder, path: str | Path) -> None:
    """Load the encoder weights of checkpoint (or run directory) ``path`` into ``encoder``
    (``train.init_from``); a mask embedding the checkpoint lacks keeps its fresh initialisation.

    Raises:
        ValueError: a tensor is missing or left over (naming it and the checkpoint).
    """
    checkpoint = resolve_checkpoint(path)
    verify_checkpoint(checkpoint, ["encoder.safetensors"])
    state = read_safetensors(checkpoint / "encoder.safetensors")
    missing, unexpected = encoder.load_state_dict(state, strict=False)
    missing = [name for name in missing if name != "mask_embedding"]
    if missing or unexpected:
        name = (missing or unexpected)[0]
        raise ValueError(
            f"train.init_from: {checkpoint} does not fit the encoder ({'missing' if missing else 'unexpected'} "
            f"tensor {name!r})"
        )


def load_initial_heads(method: PretextMethod, path: str | Path, method_name: str) -> None:
    """Load the head weights of checkpoint (or run directory) ``path`` into ``method`` when the
    checkpoint was made by ``method_name`` and holds any (``train.init_from``).

    Raises:
        ValueError: a tensor does not fit the method (naming it and the checkpoint).
    """
    checkpoint = resolve_checkpoint(path)
    if (load_yaml(checkpoint / "config.yaml") or {}).get("method") != method_name:
        return
    verify_checkpoint(checkpoint, ["model.safetensors"])
    heads = {
        name: tensor
        for name, tensor in read_safetensors(checkpoint / "model.safetensors").items()
        if not name.startswith("encoder.")
    }
    own = method.state_dict()
    for name, tensor in heads.items():
        if name not in own or own[name].shape != tensor.shape:
            raise ValueError(
                f"train.init_from: {checkpoint} holds {name!r}, which does not fit the {method_name} heads"
            )
    method.load_state_dict(heads, strict=False)


def pretrain(config: PretrainConfig, run_dir: str | Path, resume: bool = False) -> TrainResult:
    """Pretrain the encoder of ``config`` with its method; what ``speechssl pretrain`` runs.

    Under ``torchrun`` (``RANK``/``WORLD_SIZE`` set) the process group is set up here, once,
    and every rank trains on its shard of the batches; otherwise it runs in one process. The
    method's :meth:`~speechssl.methods.base.PretextMethod.prepare` hook runs first
    (:func:`prepare_method`), so the config written with every checkpoint names what it made.

    Args:
        config: the resolved run config (see :func:`~speechssl.train.config.load_pretrain_config`).
        run_dir: where checkpoints, ``metrics.jsonl`` and TensorBoard logs go.
        resume: continue from ``run_dir``'s latest checkpoint (which takes precedence over
            ``train.init_from``).

    Returns:
        The trainer's :class:`~speechssl.train.trainer.TrainResult`.
    """
    started_group = not distributed.is_distributed()
    distributed.setup_from_env(config.train.collective_timeout_s)
    try:
        with run_folder_lock(run_dir):
            config = prepare_method(with_init_encoder(config), run_dir)
            data = build_pretrain_data(config)
            report_bad_files(data.bad_files, Path(run_dir))
            method = build_pretrain_method(config)
            return train(method, data, config.optim, config.train, run_dir, to_dict(config), resume=resume)
    finally:
        if started_group:
            distributed.cleanup()


@contextlib.contextmanager
def run_folder_lock(run_dir: str | Path) -> Iterator[None]:
    """Hold the lock of ``run_dir`` (:func:`speechssl.storage.folder_lock`) while training in it.

    Only the main process takes it; under ``torchrun`` the other ranks learn whether it did
    and all stop together when it did not. Temporary files of writers that died are removed.

    Raises:
        FolderLockedError: another live process trains in ``run_dir`` (before anything is written).
    """
    with contextlib.ExitStack() as stack:
        refused = None
        if distributed.is_main_process():
            try:
                stack.enter_context(folder_lock(run_dir, "run folder"))
                remove_stale_partials(run_dir)
            except FolderLockedError as error:
                refused = error
        if distributed.broadcast_object(refused is not None):
            raise refused or FolderLockedError(f"run folder {run_dir}: rank 0 could not lock it")
        yield
