"""Using a trained workdir: held-out evaluation and masked-token filling."""

import jax
import jax.numpy as jnp
import numpy as np

from pretrain_jax import evaluation, experiment, train, workdirs
from pretrain_jax.batch import TARGETS, Targets
from pretrain_jax.checkpoint import Checkpointer
from pretrain_jax.data import corpus


def load(workdir: str) -> tuple[experiment.Experiment, dict, int]:
    """(experiment, params, step) of the newest restorable checkpoint in `workdir`, read-only: nothing
    in the workdir is created, renamed or written (a damaged newer step is skipped, and left as it is)."""
    workdirs.check_readable(workdir)
    config = experiment.load_saved_config(workdir)
    exp = experiment.Experiment.create(config, workdir, read_only=True)
    checkpointer = Checkpointer(workdir, keep=config.train.keep_checkpoints, read_only=True)
    try:
        restored = checkpointer.restore_latest_good(exp.abstract_state())
    finally:
        checkpointer.close()
    if restored is None:
        raise FileNotFoundError(f"no checkpoint in {checkpointer.directory}: train first")
    step, state, _, _ = restored
    return exp, state["params"], step


def evaluate_workdir(workdir: str, num_batches: int | None = None) -> dict[str, float]:
    """Held-out metrics of the latest checkpoint (`loss`, `accuracy`, `baseline_accuracy`, ...)."""
    exp, params, step = load(workdir)
    config = exp.config
    eval_docs = corpus.load_documents(config.data, config.data.eval_split, workdir)
    evaluator = evaluation.Evaluator(
        exp, lambda: train._make_loader(exp, eval_docs, train=False, batch_size=config.data.eval_batch_size)
    )
    scalars = evaluator.evaluate(params, num_batches or config.train.eval_steps)
    scalars["step"] = step
    return scalars


WORD_BOUNDARY = "\u2581"  # SentencePiece's "▁": the space that starts a word.


def mask_ready_ids(tokenizer, text: str) -> list[int]:
    """Token ids of `text` as pre-training saw masked words: "a [MASK] of" encodes as
    ▁a ▁ [MASK] ▁of, but a masked word-start token (▁list) became a single [MASK], space included,
    so a lone ▁ just before [MASK] is dropped: ▁a [MASK] ▁of."""
    ids = tokenizer.encode(text)
    mask = tokenizer.specials.mask
    return [t for i, t in enumerate(ids)
            if not (i + 1 < len(ids) and ids[i + 1] == mask and tokenizer.id_to_piece(t) == WORD_BOUNDARY)]


def fill_mask(workdir: str, text: str, top_k: int = 5) -> list[list[tuple[str, float]]]:
    """Top-k (piece, probability) for each [MASK] in `text`, from an encoder trained with masked LM."""
    exp, params, _ = load(workdir)
    if exp.config.model.family != "encoder":
        raise ValueError(f"fill-mask needs an encoder model; this workdir has {exp.config.model.family!r}")
    specials, seq_len = exp.specials, exp.config.data.seq_len
    ids = mask_ready_ids(exp.tokenizer, text)[: seq_len - 1] + [specials.eos]
    mask_at = [i for i, t in enumerate(ids) if t == specials.mask]
    if not mask_at:
        raise ValueError(f"no [MASK] in {text!r}: write [MASK] where a token should be predicted")
    length = len(ids)
    inputs = np.zeros((1, seq_len), np.int32)
    inputs[0, :length] = ids
    segment_ids = (np.arange(seq_len) < length).astype(np.int32)[None]
    batch = {
        "inputs": inputs,
        "segment_ids": segment_ids,
        "positions": (np.arange(seq_len) * segment_ids[0]).astype(np.int32)[None],
        "token_type_ids": np.zeros((1, seq_len), np.int32),
        "mlm_positions": np.asarray([mask_at], np.int32),
        TARGETS: {"mlm": Targets(np.zeros((1, len(mask_at)), np.int32), np.ones((1, len(mask_at)), np.float32))},
    }
    logits = exp.model(params)(jax.tree.map(jnp.asarray, batch)).logits["mlm"][0]  # (num_masks, V)
    special_ids = np.asarray([i for i in range(exp.tokenizer.vocab_size) if specials.is_special(i)])
    logits = logits.at[:, special_ids].set(-jnp.inf)  # Predict words, not control tokens.
    probs = np.asarray(jax.nn.softmax(logits, axis=-1))
    results = []
    for row in probs:
        best = np.argsort(-row)[:top_k]
        results.append([(exp.tokenizer.id_to_piece(int(i)), float(row[i])) for i in best])
    return results
