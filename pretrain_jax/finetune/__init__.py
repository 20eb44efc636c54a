"""Fine-tuning pre-trained workdirs on downstream tasks.

Sequence classification (configs/finetune/classify.py, `pretrain-jax finetune`):

    from pretrain_jax import finetune
    results = finetune.run(config, workdir)   # {"accuracy": ..., "macro_f1": ..., ...}

datasets.py reads labelled text (TFDS names, CSV / TSV / JSONL files) and draws stratified label
subsets; formats.py says how each model family reads an example and scores the classes;
classification.py is the loop; metrics.py computes accuracy and macro-F1.
"""

from pretrain_jax.finetune.classification import data_efficiency_curve, load_pretrained, run

__all__ = ["data_efficiency_curve", "load_pretrained", "run"]
