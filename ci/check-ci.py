#!/usr/bin/env python3
"""Check the nightly CI files the way their users will run them (called by .ci/run).

  ci/check-ci.py [FILE…]           lint, check names, run every expanded job for a few seconds, then the merge
  ci/check-ci.py --static [FILE…]  lint and check names only
  ci/check-ci.py --self-test       scratch copies with a broken scenario name, a misspelt flag, a misspelt
                                   keyword: each must make the check fail with the reason

Default files: ci/github/nightly.yml and ci/gitlab/nightly.gitlab-ci.yml. GitHub Actions files are linted by
actionlint; GitLab files are validated against GitLab's keywords (ci/checkci/gitlab.py). Then every job is
expanded (matrix included), each path its commands name must exist, and each job's commands run exactly as the
file spells them, in a workspace of their own, with the file's variables DURATION and QEMU_DURATION shortened
and DBTORTURE_SEED fixed; artifacts pass between jobs the way the CI passes them; every published junit.xml
validates against reports/schema/junit.xsd and the merged summaries count every job's cycles.
Exit status: 0 all good, 1 a finding, 2 bad usage.
"""

from __future__ import annotations

import argparse
import re
import shlex
import shutil
import sys
import tempfile
from pathlib import Path

sys.dont_write_bytecode = True  # no __pycache__ in the checkout
sys.path.insert(0, str(Path(__file__).resolve().parent))
from checkci import github, gitlab  # noqa: E402
from checkci.lint import actionlint  # noqa: E402
from checkci.model import CheckError, Pipeline  # noqa: E402
from checkci.run import Runner, shell_expand, static_checks  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_FILES = [ROOT / "ci/github/nightly.yml", ROOT / "ci/gitlab/nightly.gitlab-ci.yml"]


def load(path: Path) -> Pipeline:
    return gitlab.load(path) if path.name.endswith(".gitlab-ci.yml") else github.load(path)


def check(files: list[Path], args: argparse.Namespace, scratch: Path) -> list[str]:
    overrides = {"DURATION": args.duration, "QEMU_DURATION": args.qemu_duration, "DBTORTURE_SEED": args.seed}
    errors: list[str] = []
    pipelines = []
    gh = [f for f in files if not f.name.endswith(".gitlab-ci.yml")]
    if gh:
        errors += [f"actionlint: {e}" for e in actionlint(gh, ROOT / "target/ci-tools")]
    for f in files:
        try:
            p = load(f)
        except CheckError as e:
            errors.append(str(e))
            continue
        print(f"{f}: {len(p.jobs)} jobs after expanding the matrix")
        if f.resolve() in [d.resolve() for d in DEFAULT_FILES]:
            # README's "Running it nightly" counts the jobs; keep that claim true.
            claim = re.search(r"Both run the same (\d+) jobs", (ROOT / "README.md").read_text())
            if not claim or int(claim.group(1)) != len(p.jobs):
                errors.append(f"README.md says \"Both run the same {claim.group(1) if claim else '?'} jobs\"; "
                              f"{f} has {len(p.jobs)}")
        errors += static_checks(p, ROOT, overrides)
        pipelines.append(p)
    errors += same_jobs(pipelines)
    if errors or args.static:
        return errors
    done: dict = {}  # jobs run so far, by commands and environment: the second file reuses the first's
    for p in pipelines:
        if args.only:
            first = min(j.stage for j in p.jobs)
            p.jobs = [j for j in p.jobs if j.stage > first or re.search(args.only, j.name)]
        print(f"{p.path}: running every job ({', '.join(f'{k}={v}' for k, v in overrides.items())})")
        runner = Runner(ROOT, scratch / p.dialect, overrides, args.timeout, done=done)
        errors += runner.run(p, args.parallel)
    return errors


def same_jobs(pipelines: list[Pipeline]) -> list[str]:
    """The GitHub and GitLab files run the same torture jobs: the same command lines once expanded."""
    def lines(p: Pipeline) -> set[tuple[str, ...]]:
        first = min(j.stage for j in p.jobs)
        return {tuple(shlex.split(shell_expand(c, j.env))) for j in p.jobs if j.stage == first for c in j.commands()}

    errors = []
    for a, b in zip(pipelines, pipelines[1:]):
        if a.dialect != b.dialect:
            for x, y in ((a, b), (b, a)):
                for cmd in sorted(lines(x) - lines(y)):
                    errors.append(f"{x.path} runs a job {y.path} does not: {shlex.join(cmd)}")
    return errors


def self_test(args: argparse.Namespace, scratch: Path) -> list[str]:
    """Each mutation of a scratch copy must fail the check, for the stated reason."""
    gh, gl = DEFAULT_FILES
    cases = [
        (gh, "lock-region-lost-write", "lock-region-lost-wirte", "scenarios/lock-region-lost-wirte.toml does not exist", True),
        (gl, "lock-region-lost-write", "lock-region-lost-wirte", "scenarios/lock-region-lost-wirte.toml does not exist", True),
        (gh, "runs-on:", "run-on:", "actionlint", True),
        (gl, "  script:", "  scirpt:", "unknown keyword(s) ['scirpt']", True),
        (gl, 'SHARD: ["1", "2", "3", "4"]', 'SHARD: ["1", "2", "3"]', "runs a job", True),
        (gh, "--backend", "--backends", "exited 2", False),
        (gl, "--backend", "--backends", "exited 2", False),
    ]
    # The files as they are pass the static checks, so each failure below is the mutation's.
    failures = [f"self-test: the unmodified files fail: {e}"
                for e in check(DEFAULT_FILES, argparse.Namespace(**{**vars(args), "static": True, "only": None}),
                               scratch / "base")]
    for i, (src, old, new, reason, static) in enumerate(cases):
        text = src.read_text()
        if old not in text:
            failures.append(f"self-test {i}: {src.name} no longer contains {old!r}: update the self-test")
            continue
        copy = scratch / f"case{i}" / src.name
        copy.parent.mkdir(parents=True)
        copy.write_text(text.replace(old, new))
        sub = argparse.Namespace(**{**vars(args), "static": static, "only": None})
        if not static:
            # Run only the first torture job of the mutated file: enough to see the flag refused.
            p = load(copy)
            first = p.jobs[0]
            p.jobs = [first]
            errs = Runner(ROOT, scratch / f"case{i}-run", {"DURATION": args.duration, "DBTORTURE_SEED": args.seed},
                          args.timeout, log=lambda *_: None).run(p, 1)
        else:
            errs = check([copy if f == src else f for f in DEFAULT_FILES], sub, scratch / f"case{i}-run")
        hit = [e for e in errs if reason in e]
        print(f"self-test {i}: {src.name} with {old!r} → {new!r}: "
              f"{'fails as it should' if hit else 'NOT DETECTED'}" + (f": {hit[0].splitlines()[0]}" if hit else ""))
        if not hit:
            failures.append(f"self-test {i}: {copy} ({old!r} → {new!r}) was not refused for {reason!r}: {errs}")
    # A red night (a planted bug the torture job finds) is a verdict, not a broken file: the torture job and
    # the merge exit 1, the check passes and the merged report counts the red cycles. A merge exiting 1 after
    # green jobs would be refused (run.py).
    p = load(gh)
    first = min(j.stage for j in p.jobs)
    p.jobs = [j for j in p.jobs if j.stage > first or j.name == "torture (smoke sqlite shard 1/4)"]
    red = Runner(ROOT, scratch / "red-night", {"DURATION": "4s", "DBTORTURE_SEED": args.seed}, args.timeout,
                 log=lambda *_: None, extra_env={"DBTORTURE_PLANT": "sqlite-commit-per-package"})
    errs = red.run(p, 1)
    statuses = [s for _, _, s, _ in red.ran]
    ok = not errs and len(statuses) == 2 and statuses == [1, 1]
    print(f"self-test red night: torture and merge exit {statuses}, check {'passes' if not errs else errs}: "
          f"{'as it should' if ok else 'WRONG'}")
    if not ok:
        failures.append(f"self-test red night: statuses {statuses}, errors {errs}")
    # A job that outlives --timeout is stopped and reported, not waited for.
    p = load(gh)
    p.jobs = p.jobs[:1]
    errs = Runner(ROOT, scratch / "timeout", {"DURATION": "60s", "DBTORTURE_SEED": args.seed}, 2,
                  log=lambda *_: None).run(p, 1)
    ok = any("timed out" in e for e in errs)
    print(f"self-test timeout: a 60 s job under a 2 s timeout: {'stopped as it should' if ok else 'NOT STOPPED'}")
    if not ok:
        failures.append(f"self-test timeout: {errs}")
    return failures


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("files", nargs="*", type=Path, help="CI files (default: both nightly files)")
    ap.add_argument("--static", action="store_true", help="lint and check names only, run nothing")
    ap.add_argument("--self-test", action="store_true", help="prove broken copies of the files are refused")
    ap.add_argument("--duration", default="3s", help="DURATION for the torture jobs (default 3s)")
    ap.add_argument("--qemu-duration", default="10s", help="QEMU_DURATION for the guest job (default 10s)")
    ap.add_argument("--seed", default="20260101", help="DBTORTURE_SEED (default 20260101)")
    ap.add_argument("--parallel", type=int, default=4, help="jobs of one stage run at once (default 4)")
    ap.add_argument("--timeout", type=float, default=300, help="seconds per command (default 300)")
    ap.add_argument("--only", help="run only the first-stage jobs whose name matches this regex (and the merge)")
    ap.add_argument("--keep", type=Path, help="keep the workspaces in this directory")
    args = ap.parse_args()
    for f in args.files:
        if not f.is_file():
            print(f"check-ci: no file {f}", file=sys.stderr)
            return 2
    if not re.fullmatch(r"\d+[smh]", args.duration) or not re.fullmatch(r"\d+[smh]", args.qemu_duration):
        print("check-ci: durations look like 3s, 2m or 1h", file=sys.stderr)
        return 2
    scratch = args.keep or Path(tempfile.mkdtemp(prefix="check-ci."))
    scratch.mkdir(parents=True, exist_ok=True)
    try:
        errors = self_test(args, scratch) if args.self_test else check(args.files or DEFAULT_FILES, args, scratch)
    except CheckError as e:
        errors = [str(e)]
    finally:
        if not args.keep:
            shutil.rmtree(scratch, ignore_errors=True)
    for e in errors:
        print(f"check-ci: {e}", file=sys.stderr)
    print(f"check-ci: {'FAILED' if errors else 'ok'}" + (f" ({len(errors)} finding(s))" if errors else ""))
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
