"""Fine-tuning pre-trained workdirs on downstream tasks.

Sequence classification (configs/finetune/classify.py, `pretrain-jax finetune`):

    from pretrain_jax import finetune
    results = finetune.run(config, workdir)   # {"accuracy": ..., "macro_f1": ..., ...}

datasets.py reads labelled text and sentence pairs (TFDS names, CSV / TSV / JSONL files) and draws
stratified label subsets; tasks.py says what a task predicts (a class, or a number) and how it is
scored; formats.py says how each model family reads an example and scores the outputs;
classification.py sets a run up and trains it through pretrain_jax.loop; saved.py writes and reads
the fine-tuned model, predict.py labels new files with it. metrics.py computes accuracy and macro-F1,
regression_metrics.py Pearson and Spearman (through scipy). The scores of the task types still to
come are ready for them: entity_metrics.py (entity-level F1, through seqeval), squad_metrics.py (exact
match, F1).
"""

from pretrain_jax.finetune.classification import data_efficiency_curve, load_pretrained, run

__all__ = ["data_efficiency_curve", "load_pretrained", "run"]
