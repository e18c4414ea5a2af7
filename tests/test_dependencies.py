"""Every third-party package tokenguard imports is declared: in the base dependencies, or in the
extra that needs it, so that ``pip install "tokenguard[extra]"`` brings what that feature imports.
And every declared lower bound is the version the supported-versions check installs
(scripts/constraints-lowest.txt), so that the bounds are tested, not guessed."""

from __future__ import annotations

import ast
import sys
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

tomllib = pytest.importorskip("tomllib")

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "src" / "tokenguard"
LOWEST = ROOT / "scripts" / "constraints-lowest.txt"
#: Extras that gather tools for developing tokenguard, not a feature of it: scripts/compat.sh
#: installs every other extra.
META_EXTRAS = {"fuzz", "bench", "dev", "test", "docs", "examples"}

#: The optional packages, by the extra that must declare them.
EXTRA_OF = {
    "flask": "flask",
    "django": "django",
    "asgiref": "django",
    "djangorestframework": "drf",
    "fastapi": "fastapi",
    "httpx": "client",
    "authlib": "sso",
    "joserfc": "sso",
    "graphql-core": "graphql",
    "pysaml2": "saml",
    "ldap3": "ldap",
    "sqlalchemy": "sqlalchemy",
    "bcrypt": "bcrypt",
    "psycopg": "pg",
    "psycopg-pool": "pg",
}


def _name(requirement: str) -> str:
    for stop in "[<>=!~; ":
        requirement = requirement.split(stop, 1)[0]
    return requirement.strip().lower().replace("_", "-")


def _declared() -> tuple[set[str], dict[str, set[str]]]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    base = {_name(r) for r in project["dependencies"]}
    extras = {
        extra: {_name(r) for r in reqs} for extra, reqs in project["optional-dependencies"].items()
    }
    return base, extras


def _imported_modules() -> dict[str, set[str]]:
    """Top-level third-party module -> the files importing it (deferred imports included)."""
    found: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top != "tokenguard" and top not in sys.stdlib_module_names:
                    found.setdefault(top, set()).add(str(path.relative_to(ROOT)))
    return found


def _distribution(module: str) -> str:
    dists = packages_distributions().get(module)
    assert dists, f"{module} is imported but no installed distribution provides it"
    return _name(dists[0])


def test_the_reader_sees_third_party_imports() -> None:
    modules = _imported_modules()
    assert "jwt" in modules and "starlette" in modules and "pyotp" in modules


def test_every_imported_package_is_declared() -> None:
    base, extras = _declared()
    undeclared = []
    for module, files in sorted(_imported_modules().items()):
        dist = _distribution(module)
        if dist in base:
            continue
        extra = EXTRA_OF.get(dist)
        if extra is None or dist not in extras.get(extra, set()):
            undeclared.append(f"{dist} (imported by {', '.join(sorted(files))})")
    assert undeclared == []


def test_the_table_of_extras_matches_pyproject() -> None:
    base, extras = _declared()
    for dist, extra in EXTRA_OF.items():
        assert dist in extras[extra], f"the {extra} extra should declare {dist}"
        assert dist not in base, f"{dist} is optional: it belongs in an extra, not the base"


@pytest.mark.parametrize(
    ("code", "blocked", "message"),
    [
        ("import tokenguard.integrations.flask", "flask",
         "tokenguard.integrations.flask needs Flask: pip install 'tokenguard[flask]'"),
        ("import tokenguard.integrations.fastapi", "fastapi",
         "tokenguard.integrations.fastapi needs FastAPI: pip install 'tokenguard[fastapi]'"),
        ("import tokenguard.stores.sqlalchemy", "sqlalchemy",
         "tokenguard.stores.sqlalchemy needs SQLAlchemy: pip install 'tokenguard[sqlalchemy]'"),
        ("import tokenguard.http.graphql", "graphql",
         "tokenguard's GraphQL endpoints needs graphql-core: pip install 'tokenguard[graphql]'"),
        ("from tokenguard.stores.pg_driver import require_psycopg; require_psycopg()", "psycopg",
         "DB_CLIENT=pg needs psycopg 3: pip install 'tokenguard[pg]'"),
        ("from tokenguard.auth.legacy_hashes import verify_legacy;"
         " verify_legacy('$2b$12$' + 'a' * 53, b'pw')", "bcrypt",
         "verifying bcrypt password hashes needs bcrypt: pip install 'tokenguard[bcrypt]'"),
        ("from tokenguard import TokenGuard; TokenGuard(secret=" + repr("s" * 20 + "K9x-Q2w_E7r!T4y") + ", dev=True)",
         "pyotp", "two-factor authentication needs pyotp: pip install 'tokenguard[totp]'"),
    ],
)
def test_a_missing_optional_package_is_named_with_its_extra(code: str, blocked: str, message: str) -> None:
    import subprocess

    script = (
        f"import sys; sys.modules[{blocked!r}] = None\n"
        "from tokenguard.errors import ConfigError, MissingExtra\n"
        "try:\n"
        + "".join(f"    {line.strip()}\n" for line in code.split(";"))
        + "except MissingExtra as exc:\n"
        "    assert isinstance(exc, ImportError) and isinstance(exc, ConfigError)\n"
        "    print(exc)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=60
    )
    assert out.stdout.strip() == message, out.stderr


# --- the lowest versions ----------------------------------------------------------------------


def _requirements() -> dict[str, list[Requirement]]:
    """"base" and each extra -> its requirements, as pyproject.toml declares them."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    groups = {"base": project["dependencies"], **project["optional-dependencies"]}
    return {group: [Requirement(r) for r in reqs] for group, reqs in groups.items()}


def _lower_bound(requirement: Requirement) -> Version | None:
    bounds = [Version(s.version) for s in requirement.specifier if s.operator in (">=", "==", "~=")]
    return max(bounds) if bounds else None


def _pins() -> dict[str, Version]:
    pins: dict[str, Version] = {}
    for line in LOWEST.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, sep, version = line.partition("==")
            assert sep and version.strip(), f"{LOWEST.name}: {line!r} is not name==version"
            pins[canonicalize_name(name)] = Version(version.strip())
    return pins


def test_every_supported_dependency_is_pinned_at_its_lower_bound() -> None:
    pins = _pins()
    problems = []
    for group, requirements in _requirements().items():
        if group in META_EXTRAS:
            continue
        for requirement in requirements:
            name, bound = canonicalize_name(requirement.name), _lower_bound(requirement)
            if bound is None:
                problems.append(f"{group}: {requirement} declares no lower bound")
            elif name not in pins:
                problems.append(f"{group}: {requirement} is not pinned in {LOWEST.name}")
            elif pins[name] != bound:
                problems.append(f"{group}: {requirement}, but {LOWEST.name} pins {pins[name]}")
    assert problems == []


def test_every_lowest_pin_is_a_declared_lower_bound() -> None:
    # Test tools included: where pyproject.toml names a pinned package (the test extra too),
    # its lower bound is the pin.
    declared: dict[str, set[Version | None]] = {}
    for requirements in _requirements().values():
        for requirement in requirements:
            name = canonicalize_name(requirement.name)
            declared.setdefault(name, set()).add(_lower_bound(requirement))
    problems = []
    for name, version in _pins().items():
        if name not in declared:
            problems.append(f"{name}=={version} is pinned but pyproject.toml does not name it")
        elif declared[name] != {version}:
            problems.append(f"{name}=={version} is pinned; pyproject.toml's bounds: {declared[name]}")
    assert problems == []
