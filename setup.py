"""Package metadata for pretrain_jax."""

from setuptools import find_packages, setup

setup(
    name="pretrain_jax",
    version="0.1.0",
    description="Every language-model pre-training objective, one JAX/Flax trainer.",
    python_requires=">=3.10",
    packages=find_packages(include=["pretrain_jax", "pretrain_jax.*", "configs", "configs.*"]),
    install_requires=[
        "jax>=0.10",
        "flax>=0.12",
        "optax>=0.2.8",
        "orbax-checkpoint>=0.12",
        "tensorflow-datasets>=4.9.10",
        "grain>=0.2.18",
        "sentencepiece>=0.2",
        "ml-collections>=1.1",
        "absl-py>=2.0",
        "tensorboardX>=2.6",
        "numpy>=1.26",
        "scipy>=1.11",
        "seqeval>=1.2",  # Entity-level F1 for token tagging (finetune/entity_metrics.py).
    ],
    extras_require={
        "test": ["pytest>=8", "pytest-xdist>=3.5", "hypothesis>=6.100", "ruff>=0.6", "nbformat>=5.9",
                 "nbclient>=0.10", "ipykernel>=6.29", "matplotlib>=3.8"],
        "gpu": ["jax[cuda12]"],
        "tpu": ["jax[tpu]"],
    },
    entry_points={"console_scripts": ["pretrain-jax=pretrain_jax.main:entry_point"]},
)
