"""Options and helpers shared by the commands."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

SuiteDir = Annotated[
    Path | None,
    typer.Option("--suite-dir", help="Folder with datasets.yaml, tasks/ and metrics/ (default: ./ if it has datasets.yaml, else the packaged suite)."),
]


# Options `run` and `embed` share: how a user's own .h5ad declares its columns and counts
LabelKey = Annotated[str | None, typer.Option(help="obs column with cell-type labels (for an .h5ad --dataset).")]
BatchKey = Annotated[str | None, typer.Option(help="obs column with batches.")]
OntologyKey = Annotated[str | None, typer.Option(
    help="obs column with Cell Ontology ids (default: cell_type_ontology_term_id when the file has it).")]
CountsLayer = Annotated[str | None, typer.Option(help="Layer with raw integer counts ('X', 'raw.X' or a layers key).")]
RoundCounts = Annotated[bool, typer.Option(
    "--round-counts", help="Round counts deposited as non-integers instead of refusing them (never log/normalised values).")]
Device = Annotated[str | None, typer.Option(
    help="auto (every visible GPU, else CPU) | cpu | cuda | cuda:N | cuda:0,cuda:1 (data-parallel shards). Env SCFM_BENCH_DEVICE.")]
BatchSize = Annotated[int | None, typer.Option(help="Cells per forward batch (env SCFM_BENCH_BATCH_SIZE).")]


class Format(str, Enum):
    table = "table"
    json = "json"


FormatOpt = Annotated[Format, typer.Option("--format", "-f", help="table or json.")]
OutOpt = Annotated[Path | None, typer.Option("--out", "-o", help="Write to this file instead of standard output.")]


def plural(n: int, word: str, words: str | None = None) -> str:
    """``plural(1, "cell")`` -> "1 cell"; ``plural(2, "cell")`` -> "2 cells"."""
    return f"{n:,} {word if n == 1 else (words or word + 's')}"


def emit(data, fmt: Format, out: Path | None, table=None) -> None:
    """``data`` as JSON, or ``table`` (a rich renderable) as text, to standard output or ``--out``."""
    import json

    if out is None:
        if fmt is Format.json:
            typer.echo(json.dumps(data, indent=2, default=str))
        else:
            out_console().print(table)
        return
    from rich.console import Console

    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w") as f:
        if fmt is Format.json:
            f.write(json.dumps(data, indent=2, default=str) + "\n")
        else:
            Console(file=f, width=240, soft_wrap=False, color_system=None).print(table)
    err_console().print(f"wrote {out}", highlight=False, markup=False)


def err_console():
    from rich.console import Console

    return Console(stderr=True, soft_wrap=True)


def out_console():
    """Standard output; wide when redirected (logs, CI), so tables are not squeezed to 80 columns."""
    import sys

    from rich.console import Console

    return Console(soft_wrap=False, width=None if sys.stdout.isatty() else 240)


def settings(**overrides):
    """Settings from SCFM_BENCH_* environment, then CLI overrides (those that were given)."""
    from pydantic import ValidationError

    from scfm_bench.exceptions import ConfigError
    from scfm_bench.settings import Settings

    try:
        s = Settings()
        for k, v in overrides.items():
            if v is not None:
                setattr(s, k, v)
    except ValidationError as e:
        raise ConfigError("Invalid setting: " + "; ".join(
            f"{'.'.join(map(str, er['loc'])) or 'value'} (SCFM_BENCH_{str(er['loc'][0]).upper() if er['loc'] else ''} or flag): {er['msg']}"
            for er in e.errors())) from None
    return s


Checkpoint = Annotated[list[str], typer.Option(
    "--checkpoint", help="MODEL=FOLDER with the model's checkpoint files (default: $SCFM_BENCH_MODEL_DIR/MODEL).")]


def checkpoint_params(items: list[str]) -> list[str]:
    """``--checkpoint scgpt=/models/scGPT_human`` -> the model parameter ``scgpt.checkpoint=/models/scGPT_human``."""
    from scfm_bench.exceptions import ConfigError
    from scfm_bench.registry import ADAPTERS

    out = []
    for item in items:
        model, sep, path = item.partition("=")
        if not (sep and model and path):
            raise ConfigError(f"--checkpoint {item!r}: expected MODEL=FOLDER, e.g. --checkpoint scgpt=~/models/scGPT_human.")
        if "checkpoint" not in ADAPTERS.get(model).Params.model_fields:
            raise ConfigError(f"--checkpoint {item!r}: model {model!r} takes no checkpoint (it has no weights to load).")
        out.append(f"{model}.checkpoint={path}")
    return out
