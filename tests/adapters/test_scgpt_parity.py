"""Parity with the authors' scGPT model class (PyPI ``scgpt`` 0.2.4, ``scgpt/model/model.py::TransformerModel``).

A tiny checkpoint is written by *their* class (every weight random, layer norms included, so a swapped
norm or a missing one shows), saved with the attention keys renamed to the flash-attn-1 layout
(``self_attn.Wqkv``) that released checkpoints use; our adapter loads that file. The same token ids and
binned values (our tokenisation; their binning draws from the global RNG) go through their ``_encode``
(what ``scgpt.tasks.embed_data`` calls) and our ``embed_batch``: the ``<cls>`` row, L2-normalised as
``embed_data`` does, must agree to 1e-5.

The package is installed without its dependencies (``pip install --no-deps scgpt==0.2.4``: it pins
scvi-tools<1.0, torchtext, …, which conflict with ours). Only its model module is imported: importing
``scgpt`` itself would run its ``__init__`` (trainer, tasks, scbank, …), so the packages ``scgpt`` and
``scgpt.model`` are stood in by empty modules pointing at the installed files (the import shim below).
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import sys
import types
import warnings

import numpy as np
import pytest
import torch
from ci_guard import skip_or_fail_in_ci
from tiny_ckpt import SYMBOLS, toy_counts

from scfm_bench.adapters.scgpt import ScGPT

pytestmark = pytest.mark.filterwarnings("ignore:The PyTorch API of nested tensors")  # their encoder in eval mode

ARGS = {"embsize": 16, "nheads": 2, "d_hid": 32, "nlayers": 2, "n_layers_cls": 3, "dropout": 0.2, "pad_token": "<pad>",
        "pad_value": -2, "mask_value": -1, "n_bins": 51, "max_seq_len": 1200, "input_style": "binned",
        "input_emb_style": "continuous", "fast_transformer": True}


def _authors_model_module():
    """``scgpt.model.model`` without running ``scgpt/__init__.py`` or ``scgpt/model/__init__.py``."""
    spec = importlib.util.find_spec("scgpt")
    if spec is None:
        skip_or_fail_in_ci("the authors' scgpt package is not installed (pip install --no-deps scgpt==0.2.4)")
    root = spec.submodule_search_locations[0]
    saved = {k: sys.modules.get(k) for k in ("scgpt", "scgpt.model")}
    for name, path in (("scgpt", root), ("scgpt.model", f"{root}/model")):
        stub = types.ModuleType(name)
        stub.__path__ = [path]
        sys.modules[name] = stub
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "flash_attn is not installed": the torch path is the one wanted
            return importlib.import_module("scgpt.model.model")
    finally:
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v


@pytest.fixture(scope="module")
def authors(tmp_path_factory):
    """Their TransformerModel with random weights, and a checkpoint folder saved from it."""
    mod = _authors_model_module()
    vocab = {g: i for i, g in enumerate(SYMBOLS)} | {"<pad>": 54, "<cls>": 55, "<eoc>": 56}
    torch.manual_seed(0)
    model = mod.TransformerModel(len(vocab), ARGS["embsize"], ARGS["nheads"], ARGS["d_hid"], ARGS["nlayers"],
                                 nlayers_cls=3, vocab=vocab, dropout=0.2, pad_token="<pad>", pad_value=-2, do_mvc=True,
                                 input_emb_style="continuous", cell_emb_style="cls", use_fast_transformer=False)
    with torch.no_grad():  # init leaves layer norms at ones/zeros: randomise every weight
        for p in model.parameters():
            p.copy_(torch.randn_like(p) * 0.3)
        for m in model.modules():
            if isinstance(m, torch.nn.LayerNorm):
                m.weight += 1.0
    model.eval()
    folder = tmp_path_factory.mktemp("scgpt_parity") / "scgpt"
    folder.mkdir()
    state = {k.replace("self_attn.in_proj_", "self_attn.Wqkv."): v for k, v in model.state_dict().items()}
    assert any(".self_attn.Wqkv.weight" in k for k in state) and any(k.startswith("mvc_decoder.") for k in state)
    torch.save(state, folder / "best_model.pt")
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "args.json").write_text(json.dumps(ARGS))
    return model, folder


def test_cls_embedding_equals_authors_model(authors):
    model, folder = authors
    ours = ScGPT({"checkpoint": str(folder), "use_hvg": False}, seed=0)
    ours.load("cpu")
    prep = ours.prepare(toy_counts())
    ids, vals = prep.collate(list(prep.dataset))  # one padded batch: the padding mask is exercised too
    assert (ids == 54).any()
    with torch.no_grad():
        theirs = model._encode(ids, vals, src_key_padding_mask=ids == 54)[:, 0, :].numpy()
        got = ours.embed_batch((ids, vals)).numpy()
    theirs = theirs / np.linalg.norm(theirs, axis=1, keepdims=True)  # embed_data's normalisation
    np.testing.assert_allclose(got, theirs, rtol=0, atol=1e-5)
    assert np.abs(theirs - theirs.mean(0)).max() > 0.1  # the cells differ: a constant output would not pass
