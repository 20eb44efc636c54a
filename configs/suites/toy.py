r"""The toy suite: one synthetic local-file task per task type (pretrain_jax/finetune/toy_tasks.py), three seeds each.

    pretrain-jax evaluate --suite=configs/suites/toy.py --config=configs/finetune/classify.py:tiny \
        --config.init_from=workdirs/bert_tiny --workdir=workdirs/bert_tiny_toy

Loading the suite writes the task files to $TOY_TASKS_DIR (default workdirs/toy_tasks). The tasks
check that fine-tuning and the suite work end to end, not what pre-training taught: an encoder
pre-trained for 2 steps solves them too (tests/finetune/test_finetune_tasks.py).
"""

import os

from pretrain_jax.finetune import toy_tasks
from pretrain_jax.finetune.suite import Suite, SuiteTask


def get_suite():
    paths = toy_tasks.write(os.environ.get("TOY_TASKS_DIR", "workdirs/toy_tasks"))

    def files(name):
        return {"dataset": "files", "train_file": paths[name][0], "test_file": paths[name][1]}

    pair = {"text_keys": "first", "text_b_keys": "second"}
    return Suite("toy", (
        SuiteTask("keyword", files("keyword"), seeds=3, score="accuracy"),
        SuiteTask("same_word", {**files("same_word"), **pair}, seeds=3, score="accuracy"),
        SuiteTask("distance", {**files("distance"), **pair, "task": "regression"}, seeds=3, score="score"),
    ))
