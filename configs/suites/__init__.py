"""Suite files for `pretrain-jax evaluate` (pretrain_jax/finetune/suite.py describes the format)."""
