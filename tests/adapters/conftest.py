import pytest
from tiny_ckpt import build_scgpt, toy_counts


@pytest.fixture
def counts_adata():
    return toy_counts()


@pytest.fixture
def scgpt_dir(tmp_path):
    return build_scgpt(tmp_path / "scgpt")
