"""What both CI dialects expand to: jobs with a workspace recipe the runner can execute here.

Why one model: GitHub Actions and GitLab CI spell matrices, artifacts and variables differently, but checking a
nightly file means the same thing for both — expand every job, check the paths its commands name, run the
commands in a scratch workspace with the file's own variables (durations overridden), pass artifacts on the
way the CI would, then check the merge. The dialect modules (github.py, gitlab.py) produce these objects; the
runner (run.py) only knows these.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path


class CheckError(Exception):
    """A finding about a CI file: the check fails with this message."""


@dataclasses.dataclass
class Upload:
    """Files a job hands on: `path` (relative to its workspace) stored as artifact `name`."""

    name: str
    path: str
    keep_path: bool = False  # GitLab: stored at its path in the workspace; GitHub: its contents at the root


@dataclasses.dataclass
class Download:
    """Artifacts a job receives: GitHub's pattern + path, or GitLab's "everything from earlier stages"."""

    pattern: str  # fnmatch pattern over artifact names
    into: str  # "" = at their original relative paths (GitLab); else DIR/<artifact name>/ (GitHub)


@dataclasses.dataclass
class Job:
    """One expanded job (one matrix cell)."""

    name: str
    stage: int  # jobs of a stage run after every job of the stages before it
    image: str
    env: dict[str, str]
    steps: list[object]  # str (a shell script, run with bash -eo pipefail) | Upload | Download | JunitGlob
    matrix: dict[str, str] = dataclasses.field(default_factory=dict)

    def commands(self) -> list[str]:
        return [s for s in self.steps if isinstance(s, str)]


@dataclasses.dataclass
class JunitGlob:
    """A publish-JUnit step: the glob must match at least one file once the job's commands ran."""

    glob: str


@dataclasses.dataclass
class Pipeline:
    """A whole CI file, expanded."""

    path: Path
    dialect: str  # "github" | "gitlab"
    jobs: list[Job]
    # The file's top-level variables the check overrides for a short run (name → the file's value).
    variables: dict[str, str]
