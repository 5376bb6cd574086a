"""The Slurm executor (submitit): a job array per stage — embedding and direct jobs first, then the
evaluation jobs with an ``afterok`` dependency on them — a foreground waiter with a progress line and
retries of jobs that died from infrastructure causes, and the status/collect views of a run folder.

State of a submission lives in ``<run_dir>/slurm/jobs.json`` (job ids and specs) and submitit's
folder beside it, so ``status`` and ``collect`` work from any login-node shell."""

from __future__ import annotations

import json
import logging
import pickle
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scfm_bench.atomic import atomic_write_text
from scfm_bench.exceptions import ConfigError
from scfm_bench.runner.jobs import JobSpec, run_job

log = logging.getLogger(__name__)

ACTIVE = {"PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "REQUEUED", "RESIZING", "SUSPENDED", "STAGE_OUT"}
# died from an infrastructure cause, without a result — resubmitted up to the limit. KILLED: the process died
# from a signal (e.g. the OOM killer) with Slurm reporting FAILED; DEPENDENCY: an evaluation job Slurm cancelled
# because an embedding job it waited for died; LOST: gone from Slurm's memory with no result and no trace.
RETRYABLE = {"LOST", "KILLED", "DEPENDENCY", "NODE_FAIL", "PREEMPTED", "TIMEOUT", "OUT_OF_MEMORY", "BOOT_FAIL", "DEADLINE"}
FINAL = {"COMPLETED", "BAD_INPUT", "ERROR", "GAVE_UP", "CANCELLED"}  # CANCELLED: scancel by a person, never retried
REASONS = {"LOST": "died without a result (gone from Slurm's queue; node failure or kill)",
           "KILLED": "died without a result (killed by a signal, e.g. the OOM killer)",
           "DEPENDENCY": "cancelled by Slurm: an embedding job it depended on died",
           "NODE_FAIL": "node failure", "PREEMPTED": "pre-empted", "TIMEOUT": "time limit reached",
           "OUT_OF_MEMORY": "out of memory (OOM kill)", "BOOT_FAIL": "node boot failure", "DEADLINE": "deadline reached"}
# submitit's result of a job that got Slurm's time-limit signal (it requeues pre-empted jobs itself, same job id)
_SUBMITIT_TIMEOUT = "Job not requeued because: timed-out"
# slurmstepd's line in a job's stderr when Slurm ended it: the trace left once squeue has forgotten the job
_STEPD = {"DUE TO TIME LIMIT": "TIMEOUT", "DUE TO PREEMPTION": "PREEMPTED", "DUE TO NODE FAILURE": "NODE_FAIL"}


@dataclass
class SlurmOptions:
    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    time: str | None = None  # minutes or [D-]HH:MM:SS
    mem: str | None = None  # e.g. 16G; default: the job's estimate from its models' InputSpec (mem_gb)
    gpus: int | None = None  # default: 1 for models whose InputSpec needs a GPU, else 0
    max_parallel: int | None = None
    max_retries: int = 2
    poll_s: float = 2.0


def _minutes(value: str | None) -> int:
    if not value:
        return 120
    if value.isdigit():
        return int(value)
    days, _, hms = value.rpartition("-")
    parts = [int(p) for p in hms.split(":")]
    while len(parts) < 3:
        parts.insert(0, 0)
    return (int(days) if days else 0) * 1440 + parts[0] * 60 + parts[1] + (parts[2] > 0)


@dataclass
class Entry:
    spec: JobSpec
    job_id: str
    stage: int
    state: str = "PENDING"
    history: list[str] = field(default_factory=list)  # earlier job ids and why they were resubmitted

    def to_dict(self) -> dict[str, Any]:
        return {"spec": self.spec.to_dict(), "job_id": self.job_id, "stage": self.stage, "state": self.state,
                "history": self.history}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Entry":
        return cls(JobSpec.from_dict(d["spec"]), d["job_id"], d["stage"], d.get("state", "PENDING"), d.get("history", []))


class SlurmRun:
    def __init__(self, run_dir: Path, options: SlurmOptions | None = None) -> None:
        self.run_dir = Path(run_dir)
        self.folder = self.run_dir / "slurm"
        self.options = options or SlurmOptions()
        self.entries: list[Entry] = []

    # ---- submission ------------------------------------------------------------------------------

    def _executor(self, gpus: int, mem: str, dependency: str | None = None):
        try:
            import submitit
        except ImportError:
            from scfm_bench.exceptions import MissingDependencyError

            raise MissingDependencyError("--executor slurm needs submitit: pip install 'scfm-bench[slurm]'.") from None
        o = self.options
        ex = submitit.AutoExecutor(folder=self.folder / "%j", cluster="slurm")
        extra: dict[str, Any] = {"kill-on-invalid-dep": "yes"} if dependency else {}
        if o.account:
            extra["account"] = o.account
        params: dict[str, Any] = dict(name="scfm-bench", timeout_min=_minutes(o.time), slurm_partition=o.partition,
                                      slurm_qos=o.qos, gpus_per_node=gpus or None, slurm_additional_parameters=extra,
                                      slurm_dependency=dependency, slurm_mem=mem)
        if o.max_parallel:
            params["slurm_array_parallelism"] = o.max_parallel
        ex.update_parameters(**{k: v for k, v in params.items() if v is not None})
        return ex

    def resources(self, spec: JobSpec) -> tuple[int, str]:
        """(GPUs, memory) of a job: the --slurm-* overrides, else the job's own estimate."""
        o = self.options
        return (spec.gpus if o.gpus is None else o.gpus), (o.mem or f"{spec.mem_gb}G")

    def _submit(self, specs: list[JobSpec], stage: int, dependency: str | None = None) -> list[Entry]:
        """One job array per resource shape."""
        out = []
        by_shape: dict[tuple[int, str], list[JobSpec]] = {}
        for s in specs:
            by_shape.setdefault(self.resources(s), []).append(s)
        for (gpus, mem), group in by_shape.items():
            ex = self._executor(gpus, mem, dependency)
            try:
                with ex.batch():
                    jobs = [ex.submit(run_job, s) for s in group]
            except Exception as exc:  # sbatch refused: partition, account, QOS, limits
                raise ConfigError(f"Slurm refused the submission: {exc}. Fix the --slurm-* flags.") from None
            out += [Entry(s, j.job_id, stage) for s, j in zip(group, jobs)]
        return out

    def submit(self, first: list[JobSpec], second: list[JobSpec]) -> None:
        self.entries = self._submit(first, 1)
        if second:
            deps = sorted({e.job_id.split("_")[0] for e in self.entries if e.spec.kind == "embedding"})
            self.entries += self._submit(second, 2, f"afterok:{':'.join(deps)}" if deps else None)
        self.save()
        log.info("submitted %d Slurm jobs (%d embedding/direct, %d evaluation) from %s", len(self.entries),
                 len(first), len(second), self.folder)

    def save(self) -> None:
        atomic_write_text(self.folder / "jobs.json", json.dumps([e.to_dict() for e in self.entries], indent=1))

    @classmethod
    def load(cls, run_dir: Path, options: SlurmOptions | None = None) -> "SlurmRun":
        run = cls(run_dir, options)
        path = run.folder / "jobs.json"
        if not path.is_file():
            raise ConfigError(f"{run_dir} holds no Slurm submission ({path} is missing). Pass a run folder "
                              f"(<output-dir>/runs/<run_id>) of `scfm-bench run --executor slurm`.")
        run.entries = [Entry.from_dict(d) for d in json.loads(path.read_text())]
        return run

    # ---- states ----------------------------------------------------------------------------------

    def _result(self, job_id: str) -> tuple[str, Any] | None:
        path = self.folder / job_id / f"{job_id}_0_result.pkl"
        if not path.is_file():
            return None
        try:
            with path.open("rb") as fh:
                return pickle.load(fh)
        except Exception:  # noqa: BLE001 - a torn result file counts as no result
            return None

    def _slurm_states(self) -> dict[str, tuple[str, str]]:
        """job id -> (state, reason) of every job slurmctld still remembers (finished ones for MinJobAge,
        300 s by default). squeue, not sacct (which needs accounting) nor submitit's job.state (read
        from sacct: UNKNOWN without it); --me, not -j: squeue refuses a list once one id has left it."""
        r = subprocess.run(["squeue", "-h", "-r", "--me", "-t", "all", "-o", "%i|%T|%r"], capture_output=True, text=True,
                           timeout=60)
        out = {}
        for line in r.stdout.splitlines():
            jid, state, reason = (line.split("|") + ["", ""])[:3]
            out[jid.strip()] = (state.strip(), reason.strip())
        return out

    def _stepd_state(self, job_id: str) -> str | None:
        """How Slurm ended a running job, from slurmstepd's line in its stderr (CANCELLED [DUE TO …])."""
        path = self.folder / job_id / f"{job_id}_0_log.err"
        try:
            lines = [x for x in path.read_text(errors="replace").splitlines() if "*** JOB" in x and " CANCELLED AT " in x]
        except OSError:
            return None
        if not lines:
            return None
        return next((state for why, state in _STEPD.items() if why in lines[-1]), "CANCELLED")

    def _ended(self, e: Entry, state: str, reason: str) -> str:
        """The state of a job Slurm ended without a result."""
        if state == "CANCELLED" and reason == "DependencyNeverSatisfied":
            return "DEPENDENCY"
        if state in ("FAILED", "COMPLETED"):  # its process died (a signal) before submitit wrote a result
            return "KILLED"
        return state if state in RETRYABLE or state == "CANCELLED" else "LOST"

    def refresh(self) -> None:
        """Each job's state: squeue's while it is queued or running; once ended, its result file
        (COMPLETED, BAD_INPUT, ERROR), else how Slurm ended it (squeue's final state and reason, or
        slurmstepd's line in the job's stderr): CANCELLED by a person, or a retryable infrastructure
        death (TIMEOUT, NODE_FAIL, PREEMPTED, OUT_OF_MEMORY, KILLED, DEPENDENCY), else LOST."""
        slurm = self._slurm_states() if self.entries else {}
        for e in self.entries:
            if e.state in FINAL:
                continue
            # array elements never started (e.g. cancelled while pending) share one line under the array's id
            state, reason = slurm.get(e.job_id) or slurm.get(e.job_id.split("_")[0], ("", ""))
            if state in ACTIVE:
                e.state = state
                continue
            res = self._result(e.job_id)
            if res is not None:
                e.state = ("BAD_INPUT" if isinstance(res[1], dict) and "error" in res[1] else "COMPLETED") \
                    if res[0] == "success" else "TIMEOUT" if _SUBMITIT_TIMEOUT in str(res[1]) else "ERROR"
            elif state:
                e.state = self._ended(e, state, reason)
            elif e.state not in RETRYABLE:
                e.state = self._stepd_state(e.job_id) or "LOST"
        for e in self.entries:
            if e.state == "DEPENDENCY" and self._embedding(e, "CANCELLED"):  # its embedding job was scancelled
                e.state = "CANCELLED"

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for e in self.entries:
            out[e.state] = out.get(e.state, 0) + 1
        return out

    # ---- waiting and retries ---------------------------------------------------------------------

    def _retry(self, e: Entry) -> None:
        from dataclasses import replace

        reason = f"{e.state}: {REASONS[e.state]}"
        spec = replace(e.spec, attempt=e.spec.attempt + 1, retry_reason=reason)
        emb = self._embedding(e, *ACTIVE)  # its embedding may itself be running again
        dependency = f"afterok:{emb.job_id}" if emb is not None else None
        new = self._submit([spec], e.stage, dependency)[0]
        log.warning("job %s (%s) %s; resubmitted as %s (attempt %d)", e.job_id, e.spec.name, reason, new.job_id, spec.attempt)
        e.history.append(f"{e.job_id}: {reason}")
        e.spec, e.job_id, e.state = spec, new.job_id, "PENDING"

    def _embedding(self, e: Entry, *states: str) -> Entry | None:
        """The embedding job of an evaluation job, when it is in one of ``states``."""
        return next((x for x in self.entries if e.stage == 2 and x.spec.kind == "embedding" and x.spec.cells == e.spec.cells
                     and x.state in states), None)

    def wait(self) -> None:
        """Until every job is final; infrastructure deaths are resubmitted up to ``max_retries``."""
        from scfm_bench.progress import progress_bar

        total = len(self.entries)
        with progress_bar(f"{total} Slurm jobs", total, unit="jobs", eta=True) as advance:
            finished = 0
            while True:
                self.refresh()
                for e in self.entries:
                    if e.state in RETRYABLE:
                        if e.spec.attempt <= self.options.max_retries and not (
                                e.stage == 2 and any(x.state in ACTIVE for x in self.entries if x.stage == 1)):
                            self._retry(e)
                        elif e.spec.attempt > self.options.max_retries:
                            e.history.append(f"{e.job_id}: {e.state}; gave up after {e.spec.attempt} attempts")
                            e.state = "GAVE_UP"
                self.save()
                now = sum(e.state in FINAL for e in self.entries)
                advance(now - finished)
                finished = now
                if finished == total:
                    return
                time.sleep(self.options.poll_s)

    def problems(self) -> list[str]:
        out = []
        for e in self.entries:
            if e.state == "BAD_INPUT":
                res = self._result(e.job_id)
                out.append(f"{e.spec.name}: bad input: {res[1]['error'] if res else '?'}")
            elif e.state == "CANCELLED":
                out.append(f"{e.spec.name}: CANCELLED (scancel; not retried: --resume submits it again)")
            elif e.state in ("ERROR", "GAVE_UP") or e.state in RETRYABLE:
                res = self._result(e.job_id)
                detail = str(res[1]).strip().splitlines()[-1] if res else "; ".join(e.history[-1:]) or e.state
                out.append(f"{e.spec.name}: {e.state} ({detail}); see {self.folder / e.job_id}")
        return out

    def exit_code(self, records) -> int:
        if any(e.state == "BAD_INPUT" for e in self.entries):
            return 2
        unfinished = any(e.state != "COMPLETED" for e in self.entries)
        return 1 if unfinished or any(r.status == "failed" for r in records) else 0


def h5ad_obs_columns(path: Path) -> set[str]:
    """obs column names from the file's header (h5py): a login node never loads the matrix."""
    import h5py

    with h5py.File(path, "r") as f:
        obs = f["obs"]
        return {str(c) for c in obs.attrs.get("column-order", [])} | {k for k in obs.keys() if not k.startswith("_")}


def check_headers(plan) -> None:
    """Submit-time checks of local .h5ad files: the declared obs columns exist."""
    for name, entry in plan.datasets.items():
        if entry.source != "file" or entry.path is None:
            continue
        path = Path(entry.path).expanduser()
        path = path if path.is_absolute() else Path(plan.suite.root) / path
        if not path.is_file():
            raise ConfigError(f"dataset {name!r}: {path} does not exist. Fix the path in datasets.yaml or --dataset.")
        cols = h5ad_obs_columns(path)
        f = entry.fields
        wanted = {"label": f.label, "batch": f.batch, "ontology_id": f.ontology_id, **{f"continuous {c}": c for c in f.continuous}}
        missing = [f"{role} {col!r}" for role, col in wanted.items() if col and col not in cols]
        if missing:
            raise ConfigError(f"dataset {name!r}: {path} has no obs column {', '.join(missing)} (obs columns: "
                              f"{', '.join(sorted(cols)[:20])}). Fix the --*-key flags or the field map in datasets.yaml.")


def execute_slurm(plan, opts, settings, slurm_options: SlurmOptions, *, output_dir: Path, resume: bool = False,
                  detach: bool = False, command_line: list[str] | None = None):
    """Submit the plan's cells as Slurm jobs; in the foreground, wait for them (with retries).
    Returns (RunSummary, SlurmRun or None when nothing was left to run)."""
    import sys

    from scfm_bench import __version__
    from scfm_bench.records import RunManifest, RunWriter, new_run_id, read_records
    from scfm_bench.runner.jobs import make_jobs
    from scfm_bench.runner.local import RunSummary, resumable
    from scfm_bench.runner.lock import output_lock
    from scfm_bench.runner.provenance import git_commit, machine_info, package_versions

    check_headers(plan)
    output_dir = Path(output_dir)
    with output_lock(output_dir):
        done = resumable(plan, output_dir, {d: None for d in plan.datasets}, settings) if resume else set()
        todo = [c for c in plan.cells if c not in done]
        run_id = new_run_id()
        writer = RunWriter(output_dir, run_id)
        summary = RunSummary(run_id, writer.dir, resumed=[c for c in plan.cells if c in done])
        if not todo:
            return summary, None
        writer.write_manifest(RunManifest(
            run_id=run_id, package_version=__version__, git_commit=git_commit(), command_line=command_line or sys.argv,
            machine=machine_info("slurm"), packages=package_versions(), suite=plan.to_dict(),
            settings=settings.model_dump(mode="json")))
        run = SlurmRun(writer.dir, slurm_options)
        run.submit(*make_jobs(plan, opts, settings, output_dir=output_dir, run_id=run_id, cells=todo))
        if detach:
            return summary, run
        try:
            run.wait()
        except KeyboardInterrupt:
            log.warning("stopped waiting; the jobs keep running: follow them with `scfm-bench status %s`", writer.dir)
            raise
    if any(writer.dir.glob("records/*.jsonl")):
        summary.records = read_records(writer.dir)
    return summary, run
