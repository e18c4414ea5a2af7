"""Mutation testing of the token path: every mutant killed, or listed as equivalent.

Runs mutmut (configured in pyproject.toml, ``[tool.mutmut]``: the modules of the verifier,
extraction, the decision and its cache, revocation, the pipeline's routing and CSRF steps, and
the fast tests that cover them) and then compares what was not killed with
``scripts/mutation-equivalent.txt``. Exit status 1 when a mutant survives (or has no test) that
the file does not list, or when the file lists a mutant that no longer survives (stale entries
would hide a future survivor of the same name).

A listed mutant is not run when its change is still the one listed (the fingerprint beside its
name): it survives by construction, and running every test that reaches it is what made the
run slow. ``--all`` runs them too, to find stale entries (do so after changing a listed
function, or before a release). The tests run with ``TG_MUTATION_RUN=1``: see tests/conftest.py.

Usage, from the repository root::

    python scripts/mutation.py [--keep] [--all] [--jobs N]

``--keep`` reuses ``mutants/`` from the last run and runs again only the mutants it did not
kill (after adding a test for one); by default the run starts clean. A timeout
counts as killed: the mutant hung the tests that reached it.
"""

from __future__ import annotations

import argparse
import fnmatch
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EQUIVALENT = ROOT / "scripts" / "mutation-equivalent.txt"
# The token path, function by function (mutmut's names: module, then x_function or
# xǁClassǁmethod). Left out: issuing tokens (tokens.issue_access_token), the WebSocket upgrade
# and app-wide throttling of the pipeline (their tests drive shells), TokenCache.discard_user
# (reached through invalidation, whose tests need Redis).
SCOPE = (
    "tokenguard.jose.compact.*",
    "tokenguard.jose.tokens.x_hash_token__mutmut_*",
    "tokenguard.jose.tokens.x__lenient_payload__mutmut_*",
    "tokenguard.jose.tokens.x__is_*",
    "tokenguard.jose.tokens.xǁTokenVerifierǁ*",
    "tokenguard.guard.extract.*",
    "tokenguard.guard.decide.*",
    "tokenguard.guard.cache.xǁTokenCacheǁget__mutmut_*",
    "tokenguard.guard.cache.xǁTokenCacheǁput__mutmut_*",
    "tokenguard.guard.cache.xǁTokenCacheǁdiscard__mutmut_*",
    "tokenguard.guard.csrf.*",
    # The registry and the entries' encoding on the channel (its Protocols have no body).
    "tokenguard.guard.revocation.*",
    "tokenguard.guard.pipeline.xǁRequestPipelineǁcached__mutmut_*",
    "tokenguard.guard.pipeline.xǁRequestPipelineǁdecide__mutmut_*",
    "tokenguard.guard.pipeline.xǁRequestPipelineǁ_authenticate__mutmut_*",
    "tokenguard.guard.pipeline.xǁRequestPipelineǁ_after_flow__mutmut_*",
    "tokenguard.guard.pipeline.xǁRequestPipelineǁ_decided__mutmut_*",
    "tokenguard.guard.pipeline.xǁRequestPipelineǁ_from_cookie__mutmut_*",
    "tokenguard.guard.pipeline.xǁRequestPipelineǁ_refuse__mutmut_*",
    "tokenguard.guard.pipeline.xǁRequestPipelineǁstrip_query__mutmut_*",
)
KILLED = {"killed", "timeout", "caught by type check"}
_LINE = re.compile(r"^\s*(\S+): (.+?)\s*$")
# The mutation run's switch for tests/conftest.py: fixed tests first, property tests last with
# a few derandomized examples (see there).
ENV = {"PYTHONPATH": "src", "TG_MUTATION_RUN": "1"}
# Run first, on their own: generates every mutant and collects which tests reach which function,
# with a handful of cheap mutants (the CSRF check's) so mutmut has something to run.
SEED = tuple(pattern for pattern in SCOPE if pattern.startswith("tokenguard.guard.csrf."))


@dataclass(frozen=True)
class Listed:
    """An entry of the list of equivalent mutants."""

    reason: str
    #: The fingerprint of the mutant's change when it was listed (see :func:`fingerprints`):
    #: a listed mutant is skipped only while its name still means the same change.
    fingerprint: str | None


def equivalent() -> dict[str, Listed]:
    """Mutant name -> its entry, from the listing (``name  fingerprint  # reason``)."""
    listed: dict[str, Listed] = {}
    for number, line in enumerate(EQUIVALENT.read_text("utf-8").splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        head, sep, reason = line.partition("#")
        if not sep or not reason.strip():
            sys.exit(f"{EQUIVALENT.name}:{number}: every listed mutant needs '# reason'")
        name, _, fingerprint = head.strip().partition(" ")
        listed[name] = Listed(reason.strip(), fingerprint.strip() or None)
    return listed


def mutmut(*args: str) -> subprocess.CompletedProcess[str]:
    # PYTHONPATH=src: this checkout's package, whatever an editable install elsewhere says;
    # mutmut puts its mutated copy (mutants/src) ahead of it.
    return subprocess.run(  # noqa: S603 (our own interpreter, fixed arguments)
        [sys.executable, "-m", "mutmut", *args],
        cwd=ROOT,
        env={**os.environ, **ENV},
        text=True,
        capture_output=True,
        check=False,
    )


def in_scope(name: str) -> bool:
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in SCOPE)


def results() -> dict[str, str]:
    """Mutant name -> mutmut's verdict, for the mutants in :data:`SCOPE`."""
    status: dict[str, str] = {}
    for line in mutmut("results", "--all", "true").stdout.splitlines():
        match = _LINE.match(line)
        if match and in_scope(match.group(1)):
            status[match.group(1)] = match.group(2)
    return status


_DIFFS = """
import json, sys
from mutmut.mutation.diff_apply import find_mutant, get_diff_for_mutant
diffs = {}
for name in json.load(sys.stdin):
    try:
        diffs[name] = get_diff_for_mutant(name, path=find_mutant(name).path)
    except FileNotFoundError:
        pass
json.dump(diffs, sys.stdout)
"""


def fingerprints(names: list[str]) -> dict[str, str]:
    """Mutant name -> 8 hex digits of its change (the removed and added lines, without the
    line numbers): editing a function renumbers its mutants, and a listed name may then
    name another change, which must be run again, not skipped."""
    done = subprocess.run(  # noqa: S603 (our own interpreter, fixed arguments)
        [sys.executable, "-c", _DIFFS],
        cwd=ROOT,
        env={**os.environ, **ENV},
        input=json.dumps(names),
        text=True,
        capture_output=True,
        check=True,
    )
    found: dict[str, str] = {}
    for name, diff in json.loads(done.stdout).items():
        changed = [
            line
            for line in diff.splitlines()
            if line[:1] in "+-" and not line.startswith(("+++", "---"))
        ]
        found[name] = hashlib.sha256("\n".join(changed).encode()).hexdigest()[:8]
    return found


def run(targets: list[str], jobs: int) -> bool:
    done = mutmut("run", "--max-children", str(jobs), *targets)
    if done.returncode != 0:
        print(done.stdout[-4000:], done.stderr[-4000:], sep="\n", file=sys.stderr)
        print(f"mutation: mutmut run failed (exit {done.returncode})", file=sys.stderr)
        return False
    return True


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", action="store_true", help="reuse mutants/ from the last run")
    parser.add_argument(
        "--all", action="store_true", help="run the listed (equivalent) mutants too"
    )
    parser.add_argument("--jobs", type=int, default=2, help="mutants run at once (2 cores)")
    options = parser.parse_args()

    listed = equivalent()
    started = time.monotonic()
    if not (options.keep and (ROOT / "mutants").is_dir()):
        shutil.rmtree(ROOT / "mutants", ignore_errors=True)
        if not run(list(SEED), options.jobs):
            return 1
    status = results()
    if not status:
        print("mutation: no mutant results", file=sys.stderr)
        return 1
    # Still to run: what has no verdict yet (or, with --keep, was not killed), but the listed
    # mutants whose change is the one listed, unless --all.
    current = fingerprints(sorted(name for name in listed if name in status))
    skipped = set()
    if not options.all:
        skipped = {
            name
            for name, entry in listed.items()
            if name in current and entry.fingerprint == current[name]
        }
    undecided = set(status.values()) - KILLED if options.keep else {"not checked"}
    targets = sorted(n for n, s in status.items() if s in undecided and n not in skipped)
    if targets and not run(targets, options.jobs):
        return 1
    # With --keep, mutmut regenerates the mutants of a function edited since (their verdicts
    # reset, their numbers may shift): run those too.
    fresh = sorted(n for n, s in results().items() if s == "not checked" and n not in skipped)
    if fresh and not run(fresh, options.jobs):
        return 1
    elapsed = time.monotonic() - started

    status = results()
    alive = {name: s for name, s in status.items() if s not in KILLED and name not in skipped}
    unlisted = sorted(name for name in alive if name not in listed)
    stale = sorted(name for name in listed if name not in alive and name not in skipped)
    changed = sorted(
        name for name in listed if name in alive and listed[name].fingerprint != current.get(name)
    )
    killed = sum(1 for s in status.values() if s in KILLED)
    load = os.getloadavg()
    print(
        f"mutation: {len(status)} mutants, {killed} killed, "
        f"{len(alive) - len(unlisted) + len(skipped)} listed as equivalent "
        f"({len(skipped)} of them not run: their change is the one listed), "
        f"{len(unlisted)} not killed and not listed; {elapsed:.0f} s with {options.jobs} jobs, "
        f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} cores"
    )
    for name in unlisted:
        print(f"  SURVIVED ({alive[name]}): {name}")
        shown = mutmut("show", name).stdout.strip().splitlines()
        print("\n".join(f"    {line}" for line in shown[1:]))
    for name in stale:
        print(f"  listed as equivalent but {status.get(name, 'not generated')}: {name}")
    for name in changed:
        # Still not killed, but the entry's fingerprint is not its change's: check the reason
        # still holds (mutmut show NAME) and write the fingerprint in the list.
        print(f"  listed, survives, fingerprint now {current.get(name)}: {name}")
    return 1 if unlisted or stale or changed else 0


if __name__ == "__main__":
    sys.exit(main())
