"""The toy ontology and embedding of the metric spec (§3.5, §4.2)."""

import numpy as np

TOY_EDGES = [("CL:1", "CL:0"), ("CL:2", "CL:0"), ("CL:3", "CL:1"), ("CL:4", "CL:1"), ("CL:5", "CL:3"),
             ("CL:6", "CL:3"), ("CL:7", "CL:2"), ("CL:8", "CL:0"), ("CL:7", "CL:8")]
DAG_GADGET = [("P1", "CL:0"), ("P2", "CL:0"), ("M", "P2"), ("T", "P1"), ("T", "M"), ("S", "P1"), ("S", "P2")]
TEXT_VECTORS = {"CL:0": (1, 1, 1), "CL:1": (1, .2, 0), "CL:2": (0, 1, .2), "CL:3": (1, .3, .1), "CL:4": (.9, 0, .3),
                "CL:5": (1, .4, .1), "CL:6": (1, .3, .3), "CL:7": (.1, 1, .5), "CL:8": (.2, .6, 1)}
CENTRES = {"CL:4": (2, 0), "CL:5": (0, 0), "CL:6": (0.5, 0), "CL:7": (6, 5)}


def toy_embedding():
    """12 cells per label: centre + (±0.01k, ∓0.01k), k = 1..6, so every trimmed mean is the centre."""
    X, ids = [], []
    for t, (cx, cy) in CENTRES.items():
        for k in range(1, 7):
            X += [(cx + 0.01 * k, cy - 0.01 * k), (cx - 0.01 * k, cy + 0.01 * k)]
            ids += [t, t]
    return np.array(X), np.array(ids)


def write_vectors(path):
    path.write_text("".join(f"{t}\t" + "\t".join(map(str, v)) + "\n" for t, v in TEXT_VECTORS.items()))
    return path
