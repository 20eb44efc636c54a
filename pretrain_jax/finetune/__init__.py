"""Fine-tuning pre-trained workdirs on downstream tasks.

Sequence classification (configs/finetune/classify.py, `pretrain-jax finetune`):

    from pretrain_jax import finetune
    results = finetune.run(config, workdir)   # {"accuracy": ..., "macro_f1": ..., ...}

datasets.py reads labelled text (TFDS names, CSV / TSV / JSONL files) and draws stratified label
subsets; formats.py says how each model family reads an example and scores the classes;
classification.py sets a run up and trains it through pretrain_jax.loop; metrics.py computes accuracy
and macro-F1. The scores of the other task types are ready for them: regression_metrics.py (Pearson,
Spearman), entity_metrics.py (entity-level F1, through seqeval), squad_metrics.py (exact match, F1).
"""

from pretrain_jax.finetune.classification import data_efficiency_curve, load_pretrained, run

__all__ = ["data_efficiency_curve", "load_pretrained", "run"]
