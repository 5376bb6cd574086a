"""The typer app: a thin layer over library functions. Exit codes: 0 ok, 1 some cell failed, 2 bad input."""

from __future__ import annotations

import logging
import re
import sys

import typer

from scfm_bench.cli import collect, compare, embed, fetch, info, listing, report, run, status, validate

app = typer.Typer(
    name="scfm-bench",
    help="Benchmark single-cell foundation models and baselines on shared datasets, tasks and metrics.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
for module in (run, embed, listing, validate, fetch, info, report, compare, status, collect):
    module.register(app)


def _version(value: bool) -> None:
    if value:
        from scfm_bench import __version__

        typer.echo(f"scfm-bench {__version__}")
        raise typer.Exit(0)


@app.callback()
def _main(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                       help="Print the version and exit.")) -> None:
    """Benchmark single-cell foundation models and baselines on shared datasets, tasks and metrics."""

_INT = re.compile(r"^\d+$")


def _expand_variadic(argv: list[str], option: str = "--seeds") -> list[str]:
    """Let ``--seeds 0 1 2`` mean ``--seeds 0 --seeds 1 --seeds 2`` (click has no variadic options)."""
    out: list[str] = []
    i = 0
    while i < len(argv):
        out.append(argv[i])
        if argv[i] == option:
            i += 1
            first = True
            while i < len(argv) and (first or _INT.match(argv[i])):
                if not first:
                    out.append(option)
                out.append(argv[i])
                first = False
                i += 1
            continue
        i += 1
    return out


def configure_logging(verbosity: int) -> None:
    """Only the CLI configures handlers. quiet: warnings; default: our progress; verbose: debug."""
    import warnings

    from rich.console import Console
    from rich.logging import RichHandler

    level = {-1: logging.WARNING, 0: logging.INFO, 1: logging.DEBUG}[max(-1, min(1, verbosity))]
    handler = RichHandler(console=Console(stderr=True), show_path=False, show_time=verbosity > 0, markup=False,
                          rich_tracebacks=verbosity > 0)
    if verbosity <= 0:  # library deprecation chatter is for developers, not benchmark users
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", category=FutureWarning)
    # lightning repeats this at each trainer step (three times per scVI fit), and its advice (prepend
    # srun) is wrong here: scfm-bench places Slurm jobs itself
    warnings.filterwarnings("ignore", message="The `srun` command is available on your system")
    handler.setFormatter(logging.Formatter("%(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)  # third-party libraries stay quiet unless they warn
    logging.getLogger("scfm_bench").setLevel(level)


def main() -> None:
    from typer.exceptions import Abort, Exit, TyperException

    from scfm_bench.cli._common import err_console
    from scfm_bench.exceptions import ScfmBenchError

    try:
        code = app(args=_expand_variadic(sys.argv[1:]), prog_name="scfm-bench", standalone_mode=False)
    except ScfmBenchError as e:
        from rich.text import Text

        err_console().print(Text("error: ", style="bold red") + Text(str(e)))
        sys.exit(e.exit_code)
    except Exit as e:
        sys.exit(e.exit_code)
    except TyperException as e:  # usage errors: unknown option, bad value, ...
        e.show() if hasattr(e, "show") else err_console().print(str(e))
        sys.exit(2)
    except Abort:
        err_console().print("aborted")
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else 0)
