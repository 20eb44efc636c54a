"""Executes the Colab-ready notebooks in notebooks/ and checks that they run and show what they promise.

Each notebook runs top to bottom in a fresh python3 kernel (with this process's environment, so on
CPU with the fake devices of tests/conftest.py), from a temporary copy, with notebooks/ as the working
directory, exactly as a reader would open it there. The executed copy is written next to the temporary
one, so a failure can be inspected. Add a notebook by adding a row to NOTEBOOKS.
"""

import pathlib
import shutil
import time

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

NOTEBOOKS_DIR = pathlib.Path(__file__).resolve().parents[2] / "notebooks"
CELL_TIMEOUT_S = 600  # Generous: the machine running the tests may be slow and shared.


def registered_objectives() -> list[str]:
    from pretrain_jax import objectives

    return objectives.registered_names()


def objective_ablation_strings() -> list[str]:
    # Every objective pre-trained and fine-tuned, in the table with its fine-tuning metrics.
    return ["bert_mlm", "causal_lm", "t5_span_corruption", "accuracy", "macro-F1", "majority-class baseline"]


def scaling_law_strings() -> list[str]:
    # Fitted exponents with bootstrap intervals, synthetic (against the truth) and real, and the optimal split.
    return ["alpha", "beta", "gamma", "95% interval", "covered", "N_opt", "D_opt", "L(C) fitted"]


# (notebook file in notebooks/, function returning the strings its outputs must all mention).
NOTEBOOKS = [
    ("01_objectives_tour.ipynb", registered_objectives),
    ("02_pretrain_then_finetune.ipynb", lambda: ["pre-trained encoder", "encoder from scratch", "skip-gram + BiLSTM"]),
    ("03_objective_ablation.ipynb", objective_ablation_strings),
    ("04_scaling_laws.ipynb", scaling_law_strings),
]

# Notebooks that must show plots: the least number of inline PNG images their outputs hold.
MIN_IMAGES = {"02_pretrain_then_finetune.ipynb": 1, "03_objective_ablation.ipynb": 1, "04_scaling_laws.ipynb": 4}


def output_text(notebook) -> str:
    """Everything the code cells printed or displayed as text, joined."""
    parts = []
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        for output in cell.get("outputs", []):
            if output.output_type == "stream":
                parts.append(output.text)
            elif output.output_type in ("execute_result", "display_data"):
                parts.append(output.get("data", {}).get("text/plain", ""))
            elif output.output_type == "error":
                parts.append("\n".join(output.traceback))
    return "\n".join(parts)


def image_count(notebook) -> int:
    """How many PNG images the code cells displayed (inline plots)."""
    return sum("image/png" in output.get("data", {})
               for cell in notebook.cells if cell.cell_type == "code"
               for output in cell.get("outputs", []) if output.output_type in ("display_data", "execute_result"))


@pytest.mark.slow
@pytest.mark.parametrize(("filename", "expected"), NOTEBOOKS, ids=[name for name, _ in NOTEBOOKS])
def test_notebook_runs_and_shows_everything(filename, expected, tmp_path):
    source = NOTEBOOKS_DIR / filename
    copy = tmp_path / filename
    shutil.copyfile(source, copy)
    notebook = nbformat.read(copy, as_version=4)
    client = nbclient.NotebookClient(
        notebook,
        kernel_name="python3",
        timeout=CELL_TIMEOUT_S,
        resources={"metadata": {"path": str(NOTEBOOKS_DIR)}},  # The kernel's working directory.
    )
    start = time.perf_counter()
    try:
        client.execute()
    finally:
        nbformat.write(notebook, tmp_path / f"executed_{filename}")
    print(f"{filename} executed in {time.perf_counter() - start:.1f} s")

    text = output_text(notebook)
    missing = [item for item in expected() if item not in text]
    assert not missing, f"{filename}: outputs never mention {missing}; executed copy in {tmp_path}"
    images = image_count(notebook)
    assert images >= MIN_IMAGES.get(filename, 0), (
        f"{filename}: {images} PNG images in its outputs, expected at least {MIN_IMAGES[filename]}; executed copy in"
        f" {tmp_path}")
