"""Every notebook in notebooks/ runs top to bottom without an error, from the repository root."""

import os
import sys
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

from ipykernel.kernelspec import write_kernel_spec
from jupyter_client import KernelManager
from jupyter_client.kernelspec import KernelSpecManager

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
pytestmark = pytest.mark.slow


def run_notebook(path: Path, tmp: Path) -> None:
    """Execute `path` in a kernel of this interpreter, working in the repository root, with its
    temporary files under `tmp`; raises CellExecutionError on the first failing cell."""
    # A kernelspec written here runs sys.executable, whatever `python3` kernel the machine has installed.
    kernels = tmp / "kernels"
    write_kernel_spec(kernels / "python3")
    km = KernelManager(kernel_name="python3", kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(kernels)]))
    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(nb, km=km, timeout=600, resources={"metadata": {"path": str(ROOT)}})
    client.execute(env={**os.environ, "TMPDIR": str(tmp)})


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs(path, tmp_path):
    run_notebook(path, tmp_path)


def test_failing_cell_fails(tmp_path):
    checks = f"import os, sys\nassert sys.executable == {sys.executable!r}\nassert os.getcwd() == {str(ROOT)!r}"
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(checks),
                                         nbformat.v4.new_code_cell("raise ValueError('boom')")])
    path = tmp_path / "broken.ipynb"
    nbformat.write(nb, path)
    # the error comes from the second cell: the kernel is this interpreter, started in the repository root
    with pytest.raises(nbclient.exceptions.CellExecutionError, match="boom"):
        run_notebook(path, tmp_path)
