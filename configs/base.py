"""Every config key of pretrain_jax, defined once, each with its meaning and unit.

Experiment files (configs/*.py) start from `get_config()` here and change values only; a key that
is not defined here is an error (configs are locked). Override from the command line:

    pretrain-jax train --config=configs/bert_mlm.py:tiny --config.optim.lr=1e-3 --workdir=/tmp/run
"""

import ml_collections


def get_config(arg=None):
    del arg
    c = ml_collections.ConfigDict()
    c.seed = 0  # Seed for parameter init, data order and objective randomness.

    c.data = ml_collections.ConfigDict()
    c.data.source = "builtin"  # "builtin" (Python's own docs), "files" (local text/JSONL) or "tfds".
    c.data.files = ""  # With source="files": comma-separated paths or globs of .txt / .jsonl files.
    c.data.text_key = "text"  # Field holding the text in JSONL files and TFDS examples.
    c.data.tfds_name = ""  # With source="tfds": dataset name, e.g. "lm1b" or "c4/en:3.1.0".
    c.data.tfds_data_dir = ""  # TFDS data_dir ("" = TFDS default, ~/tensorflow_datasets).
    c.data.train_split = "train"  # Split name used for training.
    c.data.eval_split = "validation"  # Split name used for held-out evaluation.
    c.data.eval_fraction = 0.02  # builtin/files: fraction of documents held out (by a hash of the text).
    c.data.seq_len = 128  # Tokens per packed row (L).
    c.data.batch_size = 32  # Global rows per train step (B), split over processes and data axes.
    c.data.eval_batch_size = 32  # Global rows per eval step.
    c.data.shuffle = True  # Shuffle documents every epoch (order fixed by seed and epoch).
    c.data.worker_count = 0  # grain worker processes for tokenization (0 = in the main process).
    c.data.max_documents = 0  # Use at most this many documents per split (0 = all).
    c.data.cache_dir = ""  # builtin: where the collected corpus is cached ("" = ~/.cache/pretrain_jax).

    c.tokenizer = ml_collections.ConfigDict()
    c.tokenizer.vocab_size = 8192  # Total ids: SentencePiece pieces + sentinels (the embedding size).
    c.tokenizer.num_sentinels = 100  # T5-style sentinel ids at the top of the vocabulary.
    c.tokenizer.model_type = "unigram"  # SentencePiece model type: "unigram" or "bpe".
    c.tokenizer.max_train_chars = 20_000_000  # Characters of training text fed to SentencePiece.
    c.tokenizer.character_coverage = 0.9995  # SentencePiece character coverage.
    c.tokenizer.num_threads = 4  # SentencePiece training threads; fixed, as the trained model depends on it.
    c.tokenizer.path = ""  # Use this trained .model file instead of training one in the workdir.

    c.objective = ml_collections.ConfigDict()
    c.objective.name = "bert_mlm"  # Registered objective name (see pretrain_jax/objectives/registry.py).

    c.objective.bert_mlm = ml_collections.ConfigDict()
    c.objective.bert_mlm.rate = 0.15  # Fraction of eligible (non-special, non-pad) tokens chosen.
    c.objective.bert_mlm.max_predictions = 20  # Cap on chosen positions per row (P, output shape).
    c.objective.bert_mlm.count = "fixed"  # "fixed": round(n*rate) per row (BERT); "bernoulli": per token.
    c.objective.bert_mlm.mask_prob = 0.8  # Of the chosen: share replaced by [MASK].
    c.objective.bert_mlm.random_prob = 0.1  # Of the chosen: share replaced by a random normal id.
    c.objective.bert_mlm.unit = "token"  # "token", "word" (whole-word), "span" (SpanBERT), "ngram" (ALBERT).
    c.objective.bert_mlm.span_geometric_p = 0.2  # unit="span": geometric p of span lengths.
    c.objective.bert_mlm.span_max_len = 10  # unit="span": longest span (words); the geometric is truncated here.
    c.objective.bert_mlm.ngram_max = 3  # unit="ngram": n in 1..ngram_max with p proportional to 1/n.

    c.objective.nsp = ml_collections.ConfigDict()
    c.objective.nsp.not_next_prob = 0.5  # Probability that B is sentences of another document (label 1, NotNext).
    c.objective.nsp.short_seq_prob = 0.1  # Probability of a random pair length in [2, seq_len - 3] tokens.
    c.objective.nsp.mlm = ml_collections.ConfigDict(c.objective.bert_mlm.to_dict())  # Pair masking: bert_mlm keys.

    c.objective.sop = ml_collections.ConfigDict()
    c.objective.sop.swap_prob = 0.5  # Probability that A and B are swapped (label 1), ALBERT.
    c.objective.sop.short_seq_prob = 0.1  # Probability of a random pair length in [2, seq_len - 3] tokens.
    c.objective.sop.mlm = ml_collections.ConfigDict(c.objective.bert_mlm.to_dict())  # Pair masking: bert_mlm keys.

    # ELECTRA's generator masked LM (bert_mlm keys). The generator's size is model.electra_generator_fraction and
    # the weight of replaced-token detection is train.loss_weights="rtd=50" (configs/electra.py sets both).
    c.objective.electra = ml_collections.ConfigDict(c.objective.bert_mlm.to_dict())
    c.objective.electra.mask_prob = 0.85  # Of the chosen: share replaced by [MASK] (the rest unchanged).
    c.objective.electra.random_prob = 0.0  # Of the chosen: share replaced by a random id (none in ELECTRA).

    c.objective.xlnet_plm = ml_collections.ConfigDict()
    c.objective.xlnet_plm.mask_alpha = 6  # An n-token n-gram gets n * mask_alpha / mask_beta tokens of context (XLNet).
    c.objective.xlnet_plm.mask_beta = 1  # See mask_alpha; XLNet's 6 / 1 with the top-up predicts ~1 token in 6.
    c.objective.xlnet_plm.max_ngram = 5  # N-grams of n in 1..max_ngram tokens from a word start, p proportional to 1/n.
    c.objective.xlnet_plm.num_predict = 85  # Targets per row (Np, output shape; <= data.seq_len; XLNet 85 at 512).

    c.objective.bart = ml_collections.ConfigDict()
    c.objective.bart.permute_sentence_rate = 1.0  # Share of each document's sentences shuffled (0 = off).
    c.objective.bart.token_mask_rate = 0.0  # Token masking: probability a token becomes [MASK].
    c.objective.bart.token_delete_rate = 0.0  # Token deletion: probability a token is dropped.
    c.objective.bart.infill_ratio = 0.3  # Text infilling: share of a document's units (token/word) masked; 0 = off.
    c.objective.bart.infill_poisson_lambda = 3.0  # Text infilling: Poisson mean span length (units).
    c.objective.bart.infill_unit = "token"  # "token" (paper: 30% of tokens) or "word" (fairseq: whole words).
    c.objective.bart.insert_rate = 0.0  # Random insertion: ceil(rate * tokens) noise tokens added per document.
    c.objective.bart.rotate_rate = 0.0  # Document rotation: probability a document starts at a uniform token.
    c.objective.bart.random_ratio = 0.0  # Share of noise tokens made random ids, not [MASK].
    c.objective.bart.encoder_extra_len = 0  # Encoder slots beyond data.seq_len (tokens) for growth from insertions.

    c.objective.causal_lm = ml_collections.ConfigDict()  # Causal LM (decoder): no hyper-parameters.

    c.objective.prefix_lm = ml_collections.ConfigDict()  # Prefix LM (decoder): split uniform in [1, n); no knobs.

    c.objective.fim = ml_collections.ConfigDict()
    c.objective.fim.fim_rate = 0.5  # Probability a document is FIM-transformed (else plain causal LM).
    c.objective.fim.spm_rate = 0.5  # Of transformed documents, probability of SPM order (0.5: joint PSM/SPM).
    c.objective.fim.loss_on = "all"  # "all": loss on every next token; "middle": middle tokens and its EOS only.
    c.objective.fim.cut_unit = "token"  # Cut points on "token"s (on device) or "char"acters (on the host, the paper).

    c.objective.t5_span_corruption = ml_collections.ConfigDict()
    c.objective.t5_span_corruption.noise_density = 0.15  # Fraction of each document's tokens corrupted.
    c.objective.t5_span_corruption.mean_noise_span_length = 3.0  # Mean corrupted-span length (tokens).
    c.objective.t5_span_corruption.targets_length = 0  # Decoder length (tokens); 0 = T5's helper (114 at 512).

    c.objective.ul2 = ml_collections.ConfigDict()
    c.objective.ul2.mean_noise_span_lengths = (3.0, 8.0, 3.0, 8.0, 64.0, 64.0)  # Span denoisers' mean spans (tokens).
    c.objective.ul2.noise_densities = (0.15, 0.15, 0.5, 0.5, 0.15, 0.5)  # Span denoisers' corrupted fractions.
    c.objective.ul2.span_denoiser_rates = (1.0, 1.0, 1.0, 1.0, 1.0, 1.0)  # Relative sampling weights, per document.
    c.objective.ul2.prefix_lm_rate = 1.0  # Relative sampling weight of the S-denoiser (prefix LM); 0 = off.
    c.objective.ul2.mode_tokens = True  # Start encoder inputs with [NLU] (R), [NLG] (X) or [S2S] (S).
    c.objective.ul2.targets_length = 0  # Decoder length (tokens); 0 = the most any denoiser needs.

    c.objective.t5_deshuffle = ml_collections.ConfigDict()  # T5 deshuffling baseline: no hyper-parameters.

    c.objective.t5_mass = ml_collections.ConfigDict()
    c.objective.t5_mass.noise = "iid"  # "iid" per token (T5 paper baselines), "uniform" (fixed count) or "spans".
    c.objective.t5_mass.noise_density = 0.15  # Fraction of tokens replaced by [MASK].
    c.objective.t5_mass.mean_noise_span_length = 3.0  # noise="spans": mean span length (tokens).

    c.objective.t5_drop_tokens = ml_collections.ConfigDict()
    c.objective.t5_drop_tokens.noise = "uniform"  # "uniform": T5's count, uniform positions; "iid" (T5); "spans".
    c.objective.t5_drop_tokens.noise_density = 0.15  # Fraction of tokens dropped from the inputs (the targets).
    c.objective.t5_drop_tokens.mean_noise_span_length = 3.0  # noise="spans": mean span length (tokens).
    c.objective.t5_drop_tokens.targets_length = 0  # Decoder length (tokens); 0 = what a full row needs (91 at 512).

    c.model = ml_collections.ConfigDict()
    c.model.family = "auto"  # "auto" (the objective's registered family), "encoder", "decoder", ... or "two_stream".
    c.model.num_layers = 12  # Transformer blocks (per stack for encoder-decoder).
    c.model.d_model = 768  # Hidden width.
    c.model.num_heads = 12  # Attention heads (d_model must be divisible by it).
    c.model.d_ff = 3072  # MLP hidden width.
    c.model.dropout = 0.1  # Dropout rate on residual branches and attention probabilities.
    c.model.max_len = 512  # Size of the learned position table (>= data.seq_len).
    c.model.type_vocab_size = 2  # Token-type (segment A/B) embeddings; 0 disables them.
    c.model.dtype = "float32"  # Compute dtype of matmuls/activations ("float32", "bfloat16"); losses stay float32.
    c.model.param_dtype = "float32"  # Master weight and optimizer-state dtype (keep float32 with bfloat16 compute).
    c.model.remat = "none"  # Recompute blocks in backprop: none, full, dots_saveable, dots_with_no_batch_dims_saveable.
    c.model.attention_dropout = 0.1  # Dropout on attention probabilities (> 0 trains on the einsum path).
    c.model.attention_impl = "xla"  # jax.nn.dot_product_attention backend: "xla" or "cudnn" (GPU flash).
    c.model.norm = "auto"  # "layernorm", "rmsnorm" or "auto" (RMSNorm for encoder_decoder, else LayerNorm).
    c.model.norm_position = "auto"  # "pre", "post" or "auto" (post-LN: encoder, two_stream; pre-LN: others).
    c.model.activation = "auto"  # MLP: "gelu", "gelu_tanh", "relu", "auto" (T5 relu, GPT-2 gelu_tanh, else gelu).
    c.model.embed_dim = 0  # Token-embedding width (0 = d_model); else projected to d_model (ALBERT, ELECTRA).
    c.model.init_std = 0.02  # Std of the normal initialisation of kernels and embeddings.
    c.model.position_encoding = "auto"  # "learned", "relative" (T5 bias), "alibi" (encoder) or "auto" (see spec.py).
    c.model.relative_attention_num_buckets = 32  # Relative positions: T5 relative-position buckets (per head).
    c.model.relative_attention_max_distance = 128  # Relative positions: distance (tokens) where buckets end.
    c.model.relative_bias_init = "normal"  # Relative positions: the table starts "normal" (T5) or "alibi".
    c.model.electra = False  # encoder: build ELECTRA's generator + discriminator pair (rtd_logits).
    c.model.electra_generator_fraction = 0.25  # ELECTRA generator width, MLP width and heads / discriminator's.

    c.optim = ml_collections.ConfigDict()
    c.optim.lr = 1e-4  # Peak learning rate.
    c.optim.warmup_steps = 10_000  # Linear warm-up steps from 0 to the peak.
    add_adamw_keys(c.optim)

    c.train = ml_collections.ConfigDict()
    c.train.num_steps = 1_000_000  # Optimizer steps in the whole run.
    c.train.log_every_secs = 15.0  # Seconds between progress lines (also written to metrics.jsonl).
    c.train.eval_every = 10_000  # Steps between evaluations on the held-out split (0 = only at the end).
    c.train.eval_steps = 20  # Eval batches per evaluation.
    c.train.checkpoint_every = 10_000  # Steps between checkpoints (one is always saved at the end).
    c.train.keep_checkpoints = 3  # Most recent checkpoints kept.
    c.train.nonfinite = "stop"  # After a non-finite loss/gradient (its update is always skipped): "stop" or "skip".
    c.train.keep_every = 0  # Also keep every checkpoint whose step is a multiple of this (0 = none).
    c.train.loss_weights = ""  # Per-head loss multipliers, e.g. "rtd=50" (heads not named weigh 1).
    c.train.stop_after_steps = 0  # Stop with a checkpoint after this many steps of this invocation (0 = never).
    c.train.restart = False  # Start over when no checkpoint of the workdir can be restored (old ones are moved aside).
    c.train.microbatches = 1  # Gradient accumulation: each global batch runs as this many microbatches, one update.
    c.train.peak_flops_per_device = 0.0  # Peak FLOP/s per device for MFU (0 = by device kind or measured; -1 = no MFU).
    c.train.profile_steps = 0  # Steps to trace with jax.profiler into WORKDIR/profile (0 = no trace).
    c.train.profile_after = 5  # Trace from this many steps into the invocation (compiling stays out).

    c.mesh = ml_collections.ConfigDict()
    c.mesh.data = -1  # Devices on the data axis (-1 = all devices not used by the other axes).
    c.mesh.fsdp = 1  # Devices on the fsdp axis (parameters and optimizer state sharded over it).
    c.mesh.tensor = 1  # Devices on the tensor axis (model-parallel matmuls).
    c.mesh.distributed = "auto"  # jax.distributed.initialize: "on", "off" or "auto" (on with a coordinator/SLURM/MPI).
    c.mesh.coordinator_address = ""  # "host:port" of process 0 ("" = $JAX_COORDINATOR_ADDRESS or the cluster's own).
    c.mesh.num_processes = 0  # Processes in the run (0 = $JAX_NUM_PROCESSES or the cluster's own).
    c.mesh.process_id = -1  # This process's index (-1 = $JAX_PROCESS_ID or the cluster's own).
    return c


def add_adamw_keys(optim: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """The optimizer keys pre-training and fine-tuning share (each sets its own lr and warm-up)."""
    optim.decay = "linear"  # After warm-up: "linear" (to end_lr_fraction), "cosine" or "constant".
    optim.end_lr_fraction = 0.0  # Final learning rate as a fraction of the peak.
    optim.weight_decay = 0.01  # Decoupled (AdamW) weight decay; not applied to biases and norms.
    optim.b1 = 0.9  # Adam beta1.
    optim.b2 = 0.999  # Adam beta2.
    optim.eps = 1e-6  # Adam epsilon.
    optim.grad_clip_norm = 1.0  # Clip gradients to this global norm (0 disables).
    return optim
