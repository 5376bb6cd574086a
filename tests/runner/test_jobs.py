"""Job specs: per-model resources from the adapters' InputSpec, as submitit writes them for sbatch."""

from __future__ import annotations

import pytest
from quick_suite import quick_suite

from scfm_bench.runner import RunOptions, build_plan
from scfm_bench.runner.jobs import make_jobs
from scfm_bench.settings import Settings


def _sbatch_lines(run, spec) -> set[str]:
    gpus, mem = run.resources(spec)
    text = run._executor(gpus, mem)._executor._make_submission_file_text("true", "uid")
    return {line for line in text.splitlines() if line.startswith(("#SBATCH --mem", "#SBATCH --gpus"))}


def test_slurm_resources_follow_the_input_spec_unless_overridden(tmp_path):
    pytest.importorskip("submitit")
    from scfm_bench.adapters.pca import PCA
    from scfm_bench.adapters.scgpt import ScGPT
    from scfm_bench.adapters.scvi import SCVI
    from scfm_bench.runner.slurm import SlurmOptions, SlurmRun

    suite = quick_suite(tmp_path / "suite", models=("pca", "scvi", "scgpt"))
    opts = RunOptions(suite_dir=suite)
    plan = build_plan(opts)
    first, second = make_jobs(plan, opts, Settings(), output_dir=tmp_path / "out", run_id="r")
    by_model = {(s.kind, s.cells[0].model): s for s in first + second}
    run = SlurmRun(tmp_path / "run")
    for kind in ("embedding", "evaluation"):
        for model, cls in (("pca", PCA), ("scvi", SCVI), ("scgpt", ScGPT)):
            spec = cls.input_spec  # the declared needs, not numbers copied here
            want = {f"#SBATCH --mem={spec.mem_gb}G"} | ({"#SBATCH --gpus-per-node=1"} if spec.needs_gpu else set())
            assert _sbatch_lines(run, by_model[(kind, model)]) == want, (kind, model)
    assert ScGPT.input_spec.needs_gpu and not PCA.input_spec.needs_gpu and SCVI.input_spec.mem_gb > PCA.input_spec.mem_gb
    forced = SlurmRun(tmp_path / "run2", SlurmOptions(mem="3G", gpus=0))
    assert _sbatch_lines(forced, by_model[("embedding", "scgpt")]) == {"#SBATCH --mem=3G"}
    forced = SlurmRun(tmp_path / "run3", SlurmOptions(gpus=2))
    assert _sbatch_lines(forced, by_model[("embedding", "pca")]) == {f"#SBATCH --mem={PCA.input_spec.mem_gb}G",
                                                                      "#SBATCH --gpus-per-node=2"}


def test_direct_jobs_take_the_largest_memory_of_their_gene_embedding_models(tmp_path):
    from scfm_bench.adapters import InputSpec
    from scfm_bench.adapters.scgpt import ScGPT

    opts = RunOptions(tasks=["gene_function"], models=["random", "scgpt"])
    plan = build_plan(opts)
    first, second = make_jobs(plan, opts, Settings(), output_dir=tmp_path / "out", run_id="r")
    (direct,) = first
    assert direct.kind == "direct" and not second
    assert (direct.gpus, direct.mem_gb) == (0, max(InputSpec().mem_gb, ScGPT.input_spec.mem_gb))


def test_how_slurm_ended_a_job_once_squeue_has_forgotten_it(tmp_path):
    """After MinJobAge the state comes from slurmstepd's line in the job's stderr (format of slurm-wlm 22.05)."""
    from scfm_bench.runner.slurm import SlurmRun

    run = SlurmRun(tmp_path)
    lines = {"7": "slurmstepd-vm: error: *** JOB 7 ON vm CANCELLED AT 2026-11-29T22:29:33 ***",
             "8": "slurmstepd-vm: error: *** JOB 8 ON vm CANCELLED AT 2026-11-29T22:29:33 DUE TO TIME LIMIT ***",
             "9_1": "slurmstepd-vm: error: *** JOB 10 ON vm CANCELLED AT 2026-11-29T22:29:33 DUE TO PREEMPTION ***",
             "11": "Traceback (most recent call last): ..."}
    for job, line in lines.items():
        (tmp_path / "slurm" / job).mkdir(parents=True)
        (tmp_path / "slurm" / job / f"{job}_0_log.err").write_text(f"some log\n{line}\n")
    assert [run._stepd_state(j) for j in (*lines, "12")] == ["CANCELLED", "TIMEOUT", "PREEMPTED", None, None]


def test_a_time_out_submitit_reports_is_retried(tmp_path):
    """submitit answers Slurm's time-limit signal for a plain function with an UncompletedJobError result;
    that is a TIMEOUT (retried), other errors are the job's own (not retried)."""
    import pickle

    from scfm_bench.runner.jobs import JobSpec
    from scfm_bench.runner.plan import Cell
    from scfm_bench.runner.slurm import Entry, SlurmRun

    pytest.importorskip("submitit")
    from submitit.core.utils import UncompletedJobError

    run = SlurmRun(tmp_path)
    spec = JobSpec("evaluation", (Cell("t", "d", "m", 0),), {}, {}, str(tmp_path), "r")
    errors = {"5": repr(UncompletedJobError("Job not requeued because: timed-out and not checkpointable.")),
              "6": "Traceback ...\nValueError: model blew up"}
    for job, text in errors.items():
        (tmp_path / "slurm" / job).mkdir(parents=True)
        with (tmp_path / "slurm" / job / f"{job}_0_result.pkl").open("wb") as fh:
            pickle.dump(("error", text), fh)
    run.entries = [Entry(spec, job, 2) for job in errors]
    run._slurm_states = lambda: {}  # gone from squeue
    run.refresh()
    assert [e.state for e in run.entries] == ["TIMEOUT", "ERROR"]
