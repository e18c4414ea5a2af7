"""Mutation testing of the token path: every mutant killed, or listed as equivalent.

Runs mutmut (configured in pyproject.toml, ``[tool.mutmut]``: the modules of the verifier,
extraction, the decision and its cache, the pipeline's routing and CSRF steps, and the fast tests
that cover them) and then compares what was not killed with
``scripts/mutation-equivalent.txt``. Exit status 1 when a mutant survives (or has no test) that
the file does not list, or when the file lists a mutant that no longer survives (stale entries
would hide a future survivor of the same name).

Usage, from the repository root::

    python scripts/mutation.py [--keep] [--jobs N]

``--keep`` reuses ``mutants/`` from the last run and runs again only the mutants it did not
kill (after adding a test for one); by default the run starts clean. A timeout
counts as killed: the mutant hung the tests that reached it.
"""

from __future__ import annotations

import argparse
import fnmatch
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EQUIVALENT = ROOT / "scripts" / "mutation-equivalent.txt"
# The token path, function by function (mutmut's names: module, then x_function or
# xǁClassǁmethod). Left out: issuing tokens (tokens.issue_access_token), the WebSocket upgrade
# and app-wide throttling of the pipeline (their tests drive shells), TokenCache.discard_user
# (reached through invalidation, whose tests need Redis). Revocation
# (guard/revocation.py) joins with one line here and one in pyproject.toml's only_mutate.
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


def equivalent() -> dict[str, str]:
    """Mutant name -> the reason it is equivalent, from the listing (``name  # reason``)."""
    listed: dict[str, str] = {}
    for number, line in enumerate(EQUIVALENT.read_text("utf-8").splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, reason = line.partition("#")
        if not sep or not reason.strip():
            sys.exit(f"{EQUIVALENT.name}:{number}: every listed mutant needs '# reason'")
        listed[name.strip()] = reason.strip()
    return listed


def mutmut(*args: str) -> subprocess.CompletedProcess[str]:
    # PYTHONPATH=src: this checkout's package, whatever an editable install elsewhere says;
    # mutmut puts its mutated copy (mutants/src) ahead of it.
    env = {**os.environ, "PYTHONPATH": "src"}
    return subprocess.run(  # noqa: S603 (our own interpreter, fixed arguments)
        [sys.executable, "-m", "mutmut", *args],
        cwd=ROOT,
        env=env,
        text=True,
        capture_output=True,
        check=False,
    )


def results() -> dict[str, str]:
    """Mutant name -> mutmut's verdict, for the mutants in :data:`SCOPE`."""
    status: dict[str, str] = {}
    for line in mutmut("results", "--all", "true").stdout.splitlines():
        match = _LINE.match(line)
        if match:
            name = match.group(1)
            if any(fnmatch.fnmatchcase(name, pattern) for pattern in SCOPE):
                status[name] = match.group(2)
    return status


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", action="store_true", help="reuse mutants/ from the last run")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    options = parser.parse_args()

    targets = list(SCOPE)
    if options.keep and (ROOT / "mutants").is_dir():
        # Only what the last run did not kill (a test was added for it, say).
        targets = [name for name, s in results().items() if s not in KILLED]
    else:
        shutil.rmtree(ROOT / "mutants", ignore_errors=True)
    started = time.monotonic()
    if targets:
        run = mutmut("run", "--max-children", str(options.jobs), *targets)
        if run.returncode != 0:
            print(run.stdout[-4000:], run.stderr[-4000:], sep="\n", file=sys.stderr)
            print(f"mutation: mutmut run failed (exit {run.returncode})", file=sys.stderr)
            return 1
    elapsed = time.monotonic() - started

    status = results()
    if not status:
        print("mutation: no mutant results", file=sys.stderr)
        return 1

    listed = equivalent()
    alive = {name: s for name, s in status.items() if s not in KILLED}
    unlisted = sorted(name for name in alive if name not in listed)
    stale = sorted(name for name in listed if name not in alive)
    killed = len(status) - len(alive)
    load = os.getloadavg()
    print(
        f"mutation: {len(status)} mutants, {killed} killed, {len(alive)} not killed "
        f"({len(alive) - len(unlisted)} listed as equivalent); {elapsed:.0f} s, "
        f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} cores"
    )
    for name in unlisted:
        print(f"  SURVIVED ({alive[name]}): {name}")
        shown = mutmut("show", name).stdout.strip().splitlines()
        print("\n".join(f"    {line}" for line in shown[1:]))
    for name in stale:
        print(f"  listed as equivalent but {status.get(name, 'not generated')}: {name}")
    return 1 if unlisted or stale else 0


if __name__ == "__main__":
    sys.exit(main())
