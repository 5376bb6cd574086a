"""Seeded synthetic perturbation screen with known effects (spec perturbation.md §5.1).

A linear-response gene-regulatory model: genes load on K latent programs; perturbing gene j moves its
programs (``Δ_j = a_j·β·Z z_jᵀ + t·e_j``), doubles add with optional buffering/synergy, an optional
shared shift hits every perturbed cell but no control, and counts are Poisson around the log rates.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import numpy as np

if TYPE_CHECKING:
    from anndata import AnnData

_BETA = 0.6
_SELF_EFFECT = {"CRISPRa": 1.5, "CRISPRi": float(np.log(0.2))}
_GAMMA = {"buffering": -0.6, "synergy": 0.8}


def gene_name(i: int) -> str:
    return f"GENE_{i:04d}"


def perturbation_synthetic(
    *,
    n_genes: int = 1000,
    n_programs: int = 8,
    n_single: int = 120,
    n_double: int = 60,
    cells_per_condition: int = 200,
    n_control: int = 2000,
    sys_shift: float = 0.0,
    frac_nonadditive: float = 0.3,
    perturbation_type: Literal["CRISPRa", "CRISPRi"] = "CRISPRa",
    seed: int = 0,
    replicate: int = 0,
) -> AnnData:
    """Raw counts in X (CSR float32); ``obs['perturbation']`` is ``control``, ``GENE_0123`` or
    ``GENE_0123+GENE_0456``. Effects, programs and interactions come from ``seed``; the cells from
    ``(seed, replicate)``, so another ``replicate`` is an independent draw of the same screen (the
    positive control). ``uns['true_delta']`` (conditions × genes, in ``uns['true_delta_conditions']``
    order), ``uns['interaction_type']`` and ``uns['perturbation_type']`` hold the truth and
    ``varm['programs']`` the loadings Z (the source of oracle gene embeddings).
    """
    params = dict(locals())
    import anndata as ad
    import pandas as pd
    import scipy.sparse as sp

    if n_genes < 2 or n_programs < 1 or n_single < 1 or n_double < 0 or cells_per_condition < 1 or n_control < 1:
        raise ValueError("n_genes >= 2, n_programs >= 1, n_single >= 1, n_double >= 0, cells_per_condition >= 1 "
                         "and n_control >= 1 are required")
    if n_single > n_genes:
        raise ValueError(f"n_single ({n_single}) cannot exceed n_genes ({n_genes})")
    if n_double > n_single * (n_single - 1) // 2:
        raise ValueError(f"n_double ({n_double}) exceeds the pairs of {n_single} singles")
    if perturbation_type not in _SELF_EFFECT:
        raise ValueError(f"perturbation_type must be one of {sorted(_SELF_EFFECT)}")
    labels, deltas, mu0, shift, Z, interaction = _truth(
        n_genes=n_genes, n_programs=n_programs, n_single=n_single, n_double=n_double, sys_shift=sys_shift,
        frac_nonadditive=frac_nonadditive, perturbation_type=perturbation_type, seed=seed)
    blocks, obs_labels = [], []
    for label, block in _cell_blocks(labels, deltas, mu0, shift, n_control=n_control,
                                     cells_per_condition=cells_per_condition, seed=seed, replicate=replicate):
        blocks.append(block)
        obs_labels += [label] * block.shape[0]
    obs = pd.DataFrame({"perturbation": pd.Categorical(obs_labels)}, index=[f"cell_{i}" for i in range(len(obs_labels))])
    adata = ad.AnnData(X=sp.vstack(blocks, format="csr"), obs=obs, var=pd.DataFrame(index=[gene_name(g) for g in range(n_genes)]))
    adata.varm["programs"] = Z.astype(np.float32)
    adata.uns["true_delta"] = deltas.astype(np.float32)
    adata.uns["true_delta_conditions"] = np.array(labels)
    adata.uns["interaction_type"] = interaction
    adata.uns["perturbation_type"] = perturbation_type
    adata.uns["provenance"] = {"builder": "perturbation_synthetic", **{k: str(v) for k, v in params.items()}}
    return adata


def _truth(*, n_genes, n_programs, n_single, n_double, sys_shift, frac_nonadditive, perturbation_type, seed):
    """Programs Z, control log-rates, per-condition effects and the shared shift, all from ``seed``."""
    rng = np.random.default_rng(seed)

    Z = np.zeros((n_genes, n_programs))
    genes = np.arange(n_genes)
    Z[genes, rng.integers(n_programs, size=n_genes)] = rng.uniform(0.5, 1.5, n_genes)
    second = rng.random(n_genes) < 0.3
    Z[genes[second], rng.integers(n_programs, size=int(second.sum()))] += rng.uniform(0.2, 0.8, int(second.sum()))
    Z *= rng.choice([-1.0, 1.0], n_programs)
    mu0 = rng.normal(-1.0, 1.5, n_genes)

    targets = rng.choice(n_genes, n_single, replace=False)
    kind = rng.choice(3, n_single, p=[0.3, 0.4, 0.3])  # strong, weak, null
    strength = np.where(kind == 0, rng.uniform(0.8, 1.2, n_single), np.where(kind == 1, rng.uniform(0.2, 0.4, n_single), 0.0))
    single = strength[:, None] * _BETA * (Z[targets] @ Z.T)
    single[np.arange(n_single), targets] += _SELF_EFFECT[perturbation_type]

    pairs = set()
    while len(pairs) < n_double:
        i, j = sorted(rng.choice(n_single, 2, replace=False))
        pairs.add((int(i), int(j)))
    pairs = sorted(pairs)
    interaction = {}
    doubles = []
    for i, j in pairs:
        a, b = single[i], single[j]
        kind_ij = "additive"
        if rng.random() < frac_nonadditive:
            kind_ij = "buffering" if rng.random() < 0.5 else "synergy"
        gamma = _GAMMA.get(kind_ij, 0.0)
        doubles.append(a + b + gamma * np.sign(a) * np.minimum(np.abs(a), np.abs(b)))
        names = sorted([gene_name(targets[i]), gene_name(targets[j])])
        interaction["+".join(names)] = kind_ij
    v_sys = np.where(rng.random(n_genes) < 0.1, rng.standard_normal(n_genes), 0.0)

    labels = [gene_name(t) for t in targets] + list(interaction)
    deltas = np.vstack([single, *doubles]) if doubles else single
    return labels, deltas, mu0, sys_shift * v_sys, Z, interaction


def _cell_blocks(labels, deltas, mu0, shift, *, n_control, cells_per_condition, seed, replicate):
    """(label, CSR counts) per condition, controls first; the noise comes from ``(seed, replicate)``."""
    import scipy.sparse as sp

    cell_rng = np.random.default_rng([seed, replicate])
    n_genes = len(mu0)
    for label, delta, n in [("control", np.zeros(n_genes), n_control)] + [(c, d, cells_per_condition) for c, d in zip(labels, deltas)]:
        log_rate = mu0 + delta + (0.0 if label == "control" else shift) + cell_rng.normal(0.0, 0.3, (n, n_genes))
        library = cell_rng.lognormal(0.0, 0.3, n)[:, None]
        yield label, sp.csr_matrix(cell_rng.poisson(np.exp(log_rate) * library).astype(np.float32))


def replicate_draw(adata: AnnData, *, replicate: int = 1):
    """An independent replicate of a ``perturbation_synthetic`` screen (same effects, new cell noise),
    as (condition label, CSR counts) blocks so that callers can reduce it without holding it whole;
    None when ``adata`` did not come from the generator."""
    import inspect

    prov = dict(adata.uns.get("provenance") or {})
    if prov.pop("builder", None) != "perturbation_synthetic":
        return None
    sig = inspect.signature(perturbation_synthetic).parameters
    kwargs = {k: type(sig[k].default)(v) for k, v in prov.items() if k in sig}  # provenance holds strings
    kwargs["replicate"] = int(kwargs.get("replicate", 0)) + replicate
    truth = _truth(**{k: v for k, v in kwargs.items() if k not in ("cells_per_condition", "n_control", "replicate")})
    return _cell_blocks(*truth[:4], n_control=kwargs["n_control"], cells_per_condition=kwargs["cells_per_condition"],
                        seed=kwargs["seed"], replicate=kwargs["replicate"])


def synthetic_gene_embeddings(adata: AnnData, *, sigma: float | None, dim: int | None = None, seed: int = 0) -> tuple[list[str], np.ndarray]:
    """Known-quality gene embeddings for a ``perturbation_synthetic`` screen: ``oracle_σ = Z + N(0, σ²)``
    (``sigma`` given) or pure noise ``N(0, 1)`` of dimension ``dim`` (``sigma=None``)."""
    rng = np.random.default_rng(seed)
    Z = np.asarray(adata.varm["programs"], dtype=np.float64)
    if sigma is None:
        emb = rng.standard_normal((Z.shape[0], dim or Z.shape[1]))
    else:
        emb = Z + rng.normal(0.0, sigma, Z.shape) if sigma > 0 else Z.copy()
    return list(map(str, adata.var_names)), emb.astype(np.float32)
