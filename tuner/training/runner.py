"""QLoRA supervised fine-tuning of one adapter version: ``run(config) -> TrainingResult``.

Runs in the child process that ``python -m tuner.training`` starts (never in the gateway): the
base model is loaded in 4-bit NF4 with double quantisation (bitsandbytes), LoRA matrices are
trained on it with TRL's ``SFTTrainer``, and the result is a plain PEFT LoRA folder that vLLM
loads. Checkpoints go to ``output_dir/checkpoints``; running again on the same ``output_dir``
resumes from the last one.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from adapters.base_model import LLAMA_PROJECTIONS
from tuner.training.callbacks import EventSink, ProgressCallback, peak_memory
from tuner.training.config import Hyperparameters, TrainingConfig, resolve_init
from tuner.training.data import TrainingData, load_training_data
from tuner.training.events import TrainingEvent, TrainingMetrics, TrainingResult
from tuner.training.stop import StopRequest

RUN_FILE = "run.json"
# PEFT options that vLLM refuses or that carry more than LoRA matrices; a fresh LoraConfig leaves
# them unset, a parent's config could bring them along.
NOT_PLAIN_LORA = ("modules_to_save", "trainable_token_indices", "use_dora", "lora_bias", "layer_replication")


def _use_gpu(device: str) -> bool:
    import torch

    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was asked for, but torch sees no CUDA device")
    return device != "cpu" and torch.cuda.is_available()


def _claim_output_dir(config: TrainingConfig) -> None:
    """Refuse to resume checkpoints of another run (other base, data or hyperparameters)."""
    config.output_dir.mkdir(parents=True, exist_ok=True)
    run_file = config.output_dir / RUN_FILE
    fingerprint = config.fingerprint()
    if run_file.is_file() and config.checkpoints_dir.is_dir() and any(config.checkpoints_dir.iterdir()):
        recorded = json.loads(run_file.read_text()).get("fingerprint")
        if recorded != fingerprint:
            raise ValueError("the output folder holds checkpoints of another training run; use a new folder")
    run_file.write_text(json.dumps({"fingerprint": fingerprint}))


def _last_checkpoint(config: TrainingConfig) -> tuple[str | None, int | None]:
    from transformers.trainer_utils import get_last_checkpoint

    if not config.checkpoints_dir.is_dir():
        return None, None
    last = get_last_checkpoint(str(config.checkpoints_dir))
    return (last, int(last.rsplit("-", 1)[-1])) if last else (None, None)


def load_quantized_base(base_model: str, *, on_gpu: bool, gradient_checkpointing: bool) -> Any:
    """The base in 4-bit NF4 with double quantisation, frozen and prepared for k-bit training."""
    import torch
    from peft import prepare_model_for_kbit_training
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    compute_dtype = torch.bfloat16 if on_gpu else torch.float32  # CPUs lack fast bf16 matmuls
    quantization = BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=compute_dtype,
    )
    model = AutoModelForCausalLM.from_pretrained(
        base_model, quantization_config=quantization, dtype=compute_dtype, device_map={"": 0} if on_gpu else None
    )
    return prepare_model_for_kbit_training(model, use_gradient_checkpointing=gradient_checkpointing)


def attach_adapter(model: Any, hp: Hyperparameters, parent: Path | None) -> tuple[Any, Any]:
    """(model, peft_config for the trainer): a new LoRA, or the parent's weights made trainable."""
    from peft import LoraConfig, PeftModel

    if parent is None:
        config = LoraConfig(
            r=hp.r,
            lora_alpha=hp.lora_alpha,
            lora_dropout=hp.lora_dropout,
            target_modules=list(hp.target_modules),
            bias="none",
            task_type="CAUSAL_LM",
        )
        return model, config
    # The parent's alpha stays: a new alpha would rescale the update it learned.
    config = LoraConfig.from_pretrained(str(parent))
    config.lora_dropout = hp.lora_dropout
    return PeftModel.from_pretrained(model, str(parent), config=config, is_trainable=True), None


def save_adapter(model: Any, folder: Path, *, base_model: str) -> None:
    """Write the PEFT folder atomically, with the config in the plain form vLLM loads."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".adapter-", dir=folder.parent))
    try:
        model.save_pretrained(str(staging), safe_serialization=True)
        config_file = staging / "adapter_config.json"
        config = json.loads(config_file.read_text())
        for key in NOT_PLAIN_LORA:
            if config.get(key):
                raise RuntimeError(f"the trained adapter has {key} set; only plain LoRA can be served")
        # PEFT keeps target_modules as a set and writes it in hash order; a list in serving order
        # makes the same training produce the same file.
        config["target_modules"] = [name for name in LLAMA_PROJECTIONS if name in set(config["target_modules"])]
        config["base_model_name_or_path"] = base_model
        config["inference_mode"] = True
        config_file.write_text(json.dumps(config, indent=2, sort_keys=True))
        # PEFT's generated model card is not part of the artifact (the two contract files are).
        (staging / "README.md").unlink(missing_ok=True)
        if folder.exists():  # the adapter of an earlier run of this job
            shutil.rmtree(folder)
        staging.rename(folder)
    finally:
        if staging.exists():
            shutil.rmtree(staging)


def _metrics(trainer: Any, progress: ProgressCallback, data: TrainingData, *, on_gpu: bool) -> TrainingMetrics:
    state = trainer.state
    rss, gpu = peak_memory(on_gpu)
    summary = progress.train_summary
    return TrainingMetrics(
        train_loss=summary.get("train_loss"),
        eval_loss=state.best_metric if data.holdout is not None else None,
        global_step=state.global_step,
        epochs=state.epoch or 0.0,
        runtime_s=summary.get("train_runtime", 0.0),
        tokens_per_s=progress.tokens_per_s,
        peak_rss_bytes=rss,
        peak_gpu_bytes=gpu,
        train_examples=len(data.train),
        holdout_examples=len(data.holdout) if data.holdout is not None else 0,
        dropped_too_long=data.dropped_too_long,
        trainable_params=sum(p.numel() for p in trainer.model.parameters() if p.requires_grad),
        stopped_early=state.global_step < state.max_steps,
    )


def run(
    config: TrainingConfig,
    *,
    on_event: EventSink | None = None,
    stop: StopRequest | None = None,
    callbacks: Sequence[Any] = (),
) -> TrainingResult:
    """Train one adapter version and return where it is and how training went.

    ``on_event`` receives the progress events; ``stop`` ends the run at the next step boundary
    with :class:`~tuner.training.stop.TrainingCancelled`; ``callbacks`` are extra
    ``TrainerCallback`` objects (tests use them to look at the live model).
    """
    from transformers import AutoTokenizer, EarlyStoppingCallback, PrinterCallback, set_seed
    from trl import SFTConfig, SFTTrainer

    emit = on_event or (lambda event: None)
    stop = stop or StopRequest()
    hp = config.hyperparameters
    init, init_reason = resolve_init(hp, config.parent_adapter)
    _claim_output_dir(config)
    emit(TrainingEvent(type="loading", message=f"loading the dataset and the base model ({init_reason})"))
    set_seed(hp.seed)  # before the LoRA matrices are drawn, which happens outside the trainer
    on_gpu = _use_gpu(config.device)

    tokenizer = AutoTokenizer.from_pretrained(config.base_model)
    data = load_training_data(config.dataset, tokenizer, max_length=hp.max_length)
    stop.check()
    model = load_quantized_base(config.base_model, on_gpu=on_gpu, gradient_checkpointing=hp.gradient_checkpointing)
    model, peft_config = attach_adapter(model, hp, config.parent_adapter if init == "parent" else None)
    stop.check()

    resume_from, resumed_step = _last_checkpoint(config)
    holdout = data.holdout
    started = TrainingEvent(
        type="started",
        resumed_from_step=resumed_step,
        message=(
            f"training on {len(data.train)} examples ({len(holdout) if holdout is not None else 0} held out, "
            f"{data.dropped_too_long} dropped as too long) on {'cuda' if on_gpu else 'cpu'}; {init_reason}"
            + (f"; resuming from step {resumed_step}" if resumed_step else "")
        ),
    )
    progress = ProgressCallback(emit, stop, on_gpu=on_gpu, started=started)
    extra = list(callbacks)
    if holdout is not None and hp.early_stopping_patience:
        extra.append(EarlyStoppingCallback(hp.early_stopping_patience, hp.early_stopping_threshold))
    trainer = SFTTrainer(
        model=model,
        args=SFTConfig(**config.sft_kwargs(on_gpu=on_gpu, has_holdout=holdout is not None)),
        train_dataset=data.train,
        eval_dataset=holdout,
        processing_class=tokenizer,
        peft_config=peft_config,
        callbacks=[progress, *extra],
    )
    # With tqdm off the trainer prints every log dict; the events carry them already.
    trainer.remove_callback(PrinterCallback)
    trainer.train(resume_from_checkpoint=resume_from)
    stop.check()  # the loop ended because of the stop: no adapter for a cancelled run

    save_adapter(trainer.model, config.adapter_dir, base_model=config.base_model)
    metrics = _metrics(trainer, progress, data, on_gpu=on_gpu)
    result = TrainingResult(
        adapter_dir=config.adapter_dir,
        output_dir=config.output_dir,
        init=init,
        init_reason=init_reason,
        resumed_from_step=resumed_step,
        hyperparameters=hp,
        metrics=metrics,
    )
    config.result_file.write_text(result.model_dump_json(indent=2))
    emit(TrainingEvent(type="result", step=metrics.global_step, epoch=metrics.epochs, result=result))
    return result
