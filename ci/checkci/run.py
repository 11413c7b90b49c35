"""Run an expanded pipeline here: check the paths its commands name, run every job's commands in a scratch
workspace (short durations through the file's own variables), pass artifacts on, then check the merge.

Why a workspace per job: CI jobs start from a clean checkout and see only the artifacts passed to them; a
shared directory would let a job read what another left behind and hide a broken hand-over. The workspace holds
symlinks to the repository's ci/, scenarios/, qemu/ and target/ (the scripts build with the checkout they live
in, so the warm build is reused) and nothing else; the job's outputs (out/, artifacts/, merged/) are its own.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import fnmatch
import glob
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import time
from pathlib import Path

from .model import Download, Job, JunitGlob, Pipeline, Upload

LINKED = ("ci", "scenarios", "qemu", "target")
PATH_TOKEN = re.compile(r"^(?:\./)?(ci|qemu|scenarios)/\S+$")
TIMED_OUT = -1000
VAR = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))")


def shell_expand(text: str, env: dict[str, str]) -> str:
    """$NAME and ${NAME} from the job's variables (what the shell will see); others left as written."""
    return VAR.sub(lambda m: env.get(m.group(1) or m.group(2), m.group(0)), text)


def static_checks(p: Pipeline, root: Path, overrides: dict[str, str]) -> list[str]:
    """Findings that need no run: images, sudo, paths the commands name, the overridden variables exist."""
    errors = []
    for name in overrides:
        if name not in p.variables:
            errors.append(f"{p.path}: defines no top-level variable {name}: the check could not shorten the run")
    for job in p.jobs:
        if "bookworm" not in job.image:
            errors.append(f"{p.path}: {job.name}: image {job.image!r} is not Debian bookworm (the scripts use apt "
                          "packages of Debian 12)")
        for cmd in job.commands():
            text = shell_expand(cmd, job.env)
            try:
                tokens = shlex.split(text, comments=True)
            except ValueError as e:
                errors.append(f"{p.path}: {job.name}: cannot split {text!r}: {e}")
                continue
            if "sudo" in tokens:
                errors.append(f"{p.path}: {job.name}: `sudo` in {text!r}: container jobs run as root, without sudo")
            for t in tokens:
                if not PATH_TOKEN.match(t) or any(c in t for c in "*?[$"):
                    continue
                f = root / t.removeprefix("./")
                if not f.exists():
                    errors.append(f"{p.path}: {job.name}: {t} does not exist (in: {' '.join(tokens)})")
                elif t.endswith(".sh") and t == tokens[0] and not os.access(f, os.X_OK):
                    errors.append(f"{p.path}: {job.name}: {t} is not executable")
    return errors


def workspace(scratch: Path, index: int, job: Job, root: Path) -> Path:
    ws = scratch / f"{index:02d}-{re.sub(r'[^A-Za-z0-9]+', '-', job.name).strip('-')[:80]}"
    if ws.exists():
        shutil.rmtree(ws)
    ws.mkdir(parents=True)
    for d in LINKED:
        (ws / d).symlink_to(root / d)
    return ws


def copy_tree(src: Path, dst: Path) -> None:
    if src.is_dir():
        shutil.copytree(src, dst, dirs_exist_ok=True, symlinks=True)
    else:
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dst)


def run_bounded(argv: list[str], cwd: Path, env: dict[str, str], out, timeout: float) -> int:
    """Run in a process group of its own; at the timeout (or if the checker is interrupted) the whole group is
    killed, so no torture worker or qemu outlives the check. Returns the exit status, TIMED_OUT on timeout."""
    proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        return TIMED_OUT
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


class Runner:
    def __init__(self, root: Path, scratch: Path, overrides: dict[str, str], timeout: float, log=print,
                 extra_env: dict[str, str] | None = None, done: dict | None = None):
        self.root, self.scratch, self.overrides, self.timeout, self.log = root, scratch, overrides, timeout, log
        self.extra_env = extra_env or {}  # set in every job's environment (the self-test plants a bug with it)
        self.store = scratch / "artifacts"  # artifact name → its files, as the CI would keep them
        self.ran: list[tuple[str, str, int, float]] = []  # job, command as run, exit status, seconds
        # Jobs already run, shared between the Runners of one check: a job of the second file whose commands,
        # environment and seed are those of a job the first file ran (same_jobs checks the two files run the
        # same torture jobs) takes that job's workspace and exit statuses instead of running again — the same
        # command twice only measures the machine. Jobs that download artifacts (merges) always run.
        self.done = done if done is not None else {}

    def job_key(self, job: Job, env: dict[str, str]) -> tuple:
        steps = tuple(tuple(shlex.split(shell_expand(c, {**job.env, **self.overrides}))) for c in job.commands())
        return steps, tuple(sorted(env.items()))

    def run_job(self, index: int, job: Job, stage_jobs: set[str]) -> list[str]:
        ws = workspace(self.scratch / "jobs", index, job, self.root)
        env = {**os.environ, **job.env, **{k: v for k, v in self.overrides.items() if k in job.env}, "CI": "true",
               **self.extra_env}
        env = {k: v for k, v in env.items() if k not in ("CARGO_TARGET_DIR",)}
        errors = []
        downloads = any(isinstance(s, Download) for s in job.steps)
        key = None if downloads else self.job_key(job, env)
        earlier = self.done.get(key) if key is not None else None
        if earlier is not None:
            first_ws, first_name, statuses = earlier
            for item in first_ws.iterdir():
                if item.name not in LINKED:
                    copy_tree(item, ws / item.name)
            self.log(f"  [reused] {job.name}: the same commands as {first_name!r}, its outputs taken")
            statuses = list(statuses)
        else:
            statuses = None
        ran_here: list[int] = []
        for step in job.steps:
            if isinstance(step, Download):
                for art in sorted(self.store.iterdir()) if self.store.exists() else []:
                    if art.name in stage_jobs or not fnmatch.fnmatchcase(art.name, step.pattern):
                        continue
                    copy_tree(art, ws / step.into / art.name if step.into else ws)
            elif isinstance(step, Upload):
                src = ws / step.path
                if not src.exists():
                    errors.append(f"{job.name}: uploads {step.path}, which the job did not write")
                    continue
                copy_tree(src, self.store / step.name / step.path if step.keep_path else self.store / step.name)
            elif isinstance(step, JunitGlob):
                found = glob.glob(str(ws / step.glob))
                if not found:
                    errors.append(f"{job.name}: publishes {step.glob}, which matches nothing")
                for f in found:
                    errors += self.xmllint(Path(f), job)
            else:
                start = time.monotonic()
                log = ws.parent / f"{ws.name}.log"
                if statuses is not None:
                    status = statuses.pop(0)
                    log = first_ws.parent / f"{first_ws.name}.log"
                else:
                    with open(log, "w") as out:
                        status = run_bounded(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step], ws,
                                             env, out, self.timeout)
                    ran_here.append(status)
                secs = time.monotonic() - start
                shown = shell_expand(step, {**job.env, **self.overrides}).replace("\n", " ; ")
                self.ran.append((job.name, shown, status, secs))
                self.log(f"  [{status:>3}] {secs:5.1f}s  {job.name}\n         $ {shown}")
                # A torture job that found something exits 1 and still wrote complete reports (the night is red,
                # the file is fine); so does a qemu job whose guest oopsed or was lost (4, 5: under this check's
                # load a slow guest can outlive its wall clock — the reports are still written). A job that
                # merges must succeed, and exits 1 only when what it merged was red: then the report job is
                # red too, which is the verdict the night's artifacts carry (merge_counts still checks them).
                red_before = any(s in (1, 4, 5) for name, _, s, _ in self.ran if name != job.name)
                if downloads:
                    ok = (0, 1) if red_before else (0,)
                else:
                    ok = (0, 1, 4, 5) if "nightly.sh qemu" in step else (0, 1)
                if status in (4, 5) and status in ok:
                    self.log(f"         (guest {'kernel trouble' if status == 4 else 'lost'}: a red night, not a broken file)")
                    # Why: the guest's console says (a stall under memory pressure, an oops); the workspace goes.
                    for console in sorted(ws.glob("**/console.log")):
                        tail = console.read_text(errors="replace").splitlines()[-15:]
                        self.log(f"         --- {console.relative_to(ws)} (last lines) ---")
                        self.log("\n".join(f"         | {line}" for line in tail))
                elif downloads and status == 1 and status in ok:
                    self.log("         (a job before it was red: the merged report is red as well)")
                if status not in ok:
                    tail = "".join(log.read_text(errors="replace").splitlines(keepends=True)[-25:])
                    what = "timed out" if status == TIMED_OUT else f"exited {status}"
                    errors.append(f"{job.name}: {what}: {shown}\n--- {log} (last lines) ---\n{tail}")
                    break
        if key is not None and statuses is None:
            self.done[key] = (ws, job.name, ran_here)
        return errors

    def xmllint(self, f: Path, job: Job) -> list[str]:
        r = subprocess.run(["xmllint", "--noout", "--schema", str(self.root / "reports/schema/junit.xsd"), str(f)],
                           capture_output=True, text=True)
        return [] if r.returncode == 0 else [f"{job.name}: {f} does not validate: {r.stderr.strip()[-1500:]}"]

    def run(self, p: Pipeline, parallel: int) -> list[str]:
        errors: list[str] = []
        index = 0
        for stage in sorted({j.stage for j in p.jobs}):
            jobs = [j for j in p.jobs if j.stage == stage]
            names = {s.name for j in jobs for s in j.steps if isinstance(s, Upload)}
            with concurrent.futures.ThreadPoolExecutor(max_workers=parallel) as pool:
                futures = [pool.submit(self.run_job, index + i, j, names) for i, j in enumerate(jobs)]
                for f in futures:
                    errors += f.result()
            index += len(jobs)
            if errors:
                return errors
        return errors + self.merge_counts(p)

    def merge_counts(self, p: Pipeline) -> list[str]:
        """The runs the first stage uploaded against the summaries the last stage uploaded: same scenarios, every
        cycle counted once."""
        first, last = min(j.stage for j in p.jobs), max(j.stage for j in p.jobs)
        up = {s.name: j.stage for j in p.jobs for s in j.steps if isinstance(s, Upload)}
        runs, merged = {}, {}
        for art, stage in up.items():
            for s in sorted((self.store / art).rglob("summary.json")):
                d = json.loads(s.read_text())
                target = runs if stage == first else merged if stage == last else None
                if target is not None:
                    target.setdefault(d["scenario"], []).append((s, d["cycles"]))
        errors = []
        if first == last or not merged:
            return [f"{p.path}: no job merges the runs' outputs into a report"]
        for sc in sorted(set(runs) | set(merged)):
            n_runs = sum(c for _, c in runs.get(sc, []))
            n_merged = sum(c for _, c in merged.get(sc, []))
            self.log(f"  {sc}: {len(runs.get(sc, []))} run(s), {n_runs} cycles → merged {n_merged} cycles")
            if len(merged.get(sc, [])) != 1 or n_merged != n_runs:
                errors.append(f"{p.path}: scenario {sc}: the runs have {n_runs} cycles, the merged report(s) "
                              f"{[str(s) for s, _ in merged.get(sc, [])]} count {n_merged}")
            for s, c in runs.get(sc, []):
                if c == 0:
                    errors.append(f"{p.path}: {s} ran no cycle in the short run: nothing was checked")
        return errors
