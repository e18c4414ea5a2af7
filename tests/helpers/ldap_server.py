"""A private OpenLDAP ``slapd`` for the LDAP login tests.

Each instance writes a ``slapd.conf`` (mdb backend, the core/cosine/inetorgperson schemas)
into its own temporary directory, seeds the directory with :data:`SEED` through ``slapadd``,
listens on ``ldap://127.0.0.1:<free port>`` and is stopped by the PID it started. It can be
stopped and started again on the same port (the tests of an LDAP server that is down).

The access rules are a real directory's: nobody reads anything anonymously, a bound user
reads the tree, and a password is only ever compared (``auth``), never read.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import socket
import subprocess
import time
from base64 import b64encode
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "BASE_DN",
    "BIND_DN",
    "BIND_PASSWORD",
    "GROUP_DN",
    "GROUPS",
    "POSIX_GROUPS",
    "ROOT_DN",
    "ROOT_PASSWORD",
    "USER_DN",
    "LdapServer",
    "LdapUser",
    "USERS",
    "slapd_binary",
]

BASE_DN = "dc=example,dc=org"
USER_DN = f"ou=people,{BASE_DN}"
GROUP_DN = f"ou=groups,{BASE_DN}"
BIND_DN = f"cn=reader,ou=services,{BASE_DN}"
BIND_PASSWORD = "reader-secret"
ROOT_DN = f"cn=admin,{BASE_DN}"
ROOT_PASSWORD = "admin-secret"

_SCHEMA_DIRS = ("/etc/ldap/schema", "/etc/openldap/schema", "/usr/local/etc/openldap/schema")
_MODULE_DIRS = ("/usr/lib/ldap", "/usr/lib64/openldap", "/usr/lib/openldap", "/usr/libexec/openldap")


def slapd_binary() -> str | None:
    """The ``slapd`` executable (often outside ``PATH``, in ``/usr/sbin``)."""
    return shutil.which("slapd") or next(
        (p for p in ("/usr/sbin/slapd", "/usr/local/libexec/slapd") if os.access(p, os.X_OK)),
        None,
    )


def _slapadd_binary() -> str | None:
    return shutil.which("slapadd") or next(
        (p for p in ("/usr/sbin/slapadd",) if os.access(p, os.X_OK)), None
    )


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def ssha(password: str) -> str:
    """An ``{SSHA}`` userPassword value, as ``slappasswd`` makes them."""
    salt = os.urandom(8)
    digest = hashlib.sha1(password.encode() + salt).digest()
    return "{SSHA}" + b64encode(digest + salt).decode()


@dataclass(frozen=True)
class LdapUser:
    """A seeded person: ``uid`` is their login name, ``cn`` their common name."""

    uid: str
    cn: str
    given_name: str
    sn: str
    mail: str | None
    password: str
    #: Active Directory's userAccountControl (0x202: a disabled normal account), if set.
    account_control: int | None = None

    @property
    def dn(self) -> str:
        return f"uid={self.uid},{USER_DN}"


#: The seeded people. ``ada`` is in the ``admins`` group, ``bob`` and ``eve`` in ``editors``;
#: ``dora``'s account is disabled (userAccountControl), ``nomail`` has no e-mail.
USERS = {
    "ada": LdapUser("ada", "Ada Lovelace", "Ada", "Lovelace", "ada@example.org", "ada-pass-1"),
    "bob": LdapUser("bob", "Bob Builder", "Bob", "Builder", "bob@example.org", "bob-pass-2"),
    "cyd": LdapUser("cyd", "Cyd Charisse", "Cyd", "Charisse", "cyd@example.org", "cyd-pass-3"),
    "eve": LdapUser("eve", "Eve Moneypenny", "Eve", "Moneypenny", "eve@example.org", "eve-pass-4"),
    "nomail": LdapUser("nomail", "No Mail", "No", "Mail", None, "nomail-pass-5"),
    "dora": LdapUser(
        "dora", "Dora Disabled", "Dora", "Disabled", "dora@example.org", "dora-pass-6", 0x202
    ),
}
GROUPS = {"admins": ["ada"], "editors": ["bob", "eve"]}
#: posixGroups, whose members are named by uid (``memberUid``).
POSIX_GROUPS = {"ops": ["cyd"]}


def _seed() -> str:
    entries = [
        f"dn: {BASE_DN}\nobjectClass: dcObject\nobjectClass: organization\ndc: example\n"
        "o: Example\n",
        f"dn: {USER_DN}\nobjectClass: organizationalUnit\nou: people\n",
        f"dn: {GROUP_DN}\nobjectClass: organizationalUnit\nou: groups\n",
        f"dn: ou=services,{BASE_DN}\nobjectClass: organizationalUnit\nou: services\n",
        f"dn: {BIND_DN}\nobjectClass: organizationalRole\nobjectClass: simpleSecurityObject\n"
        f"cn: reader\nuserPassword: {ssha(BIND_PASSWORD)}\n",
    ]
    for user in USERS.values():
        lines = [
            f"dn: {user.dn}",
            "objectClass: inetOrgPerson",
            f"uid: {user.uid}",
            f"cn: {user.cn}",
            f"givenName: {user.given_name}",
            f"sn: {user.sn}",
            f"userPassword: {ssha(user.password)}",
        ]
        if user.account_control is not None:
            lines += ["objectClass: adAccount", f"userAccountControl: {user.account_control}"]
        if user.mail:
            lines.append(f"mail: {user.mail}")
        entries.append("\n".join(lines) + "\n")
    for group, members in GROUPS.items():
        lines = [f"dn: cn={group},{GROUP_DN}", "objectClass: groupOfNames", f"cn: {group}"]
        lines += [f"member: {USERS[m].dn}" for m in members]
        entries.append("\n".join(lines) + "\n")
    for gid, (group, members) in enumerate(POSIX_GROUPS.items(), start=5000):
        lines = [f"dn: cn={group},{GROUP_DN}", "objectClass: posixGroup", f"cn: {group}",
                 f"gidNumber: {gid}"]
        lines += [f"memberUid: {m}" for m in members]
        entries.append("\n".join(lines) + "\n")
    return "\n".join(entries)


def write_certificates(directory: Path) -> tuple[Path, Path, Path]:
    """A throw-away CA and a server certificate for 127.0.0.1 signed by it: (CA, cert, key)."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "tokenguard test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        # Python 3.13 verifies strictly (VERIFY_X509_STRICT): a CA says what its key signs and
        # names it, and a certificate it signs names the key that signed it.
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True,
                crl_sign=True, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    paths = directory / "ca.pem", directory / "server.pem", directory / "server.key"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    return paths


def _first_dir(candidates: tuple[str, ...], probe: str) -> str | None:
    return next((d for d in candidates if Path(d, probe).exists()), None)


class LdapServer:
    """One ``slapd`` on 127.0.0.1, seeded with :data:`USERS` and :data:`GROUPS`.

    ``tls``: a certificate for 127.0.0.1 from a throw-away CA (``ca_file``), for StartTLS on
    :attr:`url` and for ``ldaps://`` on :attr:`ldaps_url`."""

    def __init__(self, directory: Path, *, tls: bool = False) -> None:
        binary, slapadd = slapd_binary(), _slapadd_binary()
        if binary is None or slapadd is None:
            raise RuntimeError("slapd is not installed (scripts/setup.sh installs it)")
        schema = _first_dir(_SCHEMA_DIRS, "inetorgperson.schema")
        if schema is None:
            raise RuntimeError("the OpenLDAP schemas (inetorgperson.schema) are not installed")
        self.binary = binary
        self.directory = directory
        self.port = free_port()
        self.tls_port = free_port() if tls else None
        self.ca_file: Path | None = None
        tls_lines = ""
        if tls:
            self.ca_file, cert, key = write_certificates(directory)
            tls_lines = f"TLSCertificateFile {cert}\nTLSCertificateKeyFile {key}\n"
        self.process: subprocess.Popen[bytes] | None = None
        data = directory / "data"
        data.mkdir(parents=True, exist_ok=True)
        modules = _first_dir(_MODULE_DIRS, "back_mdb.so")
        module_lines = f"modulepath {modules}\nmoduleload back_mdb\n" if modules else ""
        self.config = directory / "slapd.conf"
        self.config.write_text(
            f"include {schema}/core.schema\n"
            f"include {schema}/cosine.schema\n"
            f"include {schema}/inetorgperson.schema\n"
            f"include {schema}/nis.schema\n"
            # Active Directory's account flags, on an auxiliary class of our own.
            "attributetype ( 1.2.840.113556.1.4.8 NAME 'userAccountControl' "
            "EQUALITY integerMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.27 SINGLE-VALUE )\n"
            "objectclass ( 1.3.6.1.4.1.4203.666.11.1 NAME 'adAccount' AUXILIARY "
            "MAY userAccountControl )\n"
            f"pidfile {directory}/slapd.pid\n"
            f"{tls_lines}"
            f"{module_lines}"
            "database mdb\n"
            "maxsize 16777216\n"
            f'suffix "{BASE_DN}"\n'
            f'rootdn "{ROOT_DN}"\n'
            f"rootpw {ROOT_PASSWORD}\n"
            f"directory {data}\n"
            "access to attrs=userPassword by self write by anonymous auth by * none\n"
            "access to * by users read by * none\n"
        )
        seed = directory / "seed.ldif"
        seed.write_text(_seed())
        done = subprocess.run(
            [slapadd, "-f", str(self.config), "-l", str(seed)],
            capture_output=True,
            timeout=30,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"slapadd failed: {done.stderr.decode(errors='replace')[-500:]}")

    @property
    def url(self) -> str:
        return f"ldap://127.0.0.1:{self.port}"

    @property
    def ldaps_url(self) -> str:
        if self.tls_port is None:
            raise RuntimeError("started without tls")
        return f"ldaps://127.0.0.1:{self.tls_port}"

    def start(self, timeout: float = 10.0) -> None:
        """Start (or restart on the same port) and wait until it accepts connections."""
        if self.process is not None:
            raise RuntimeError("already running")
        # -d 0: stay in the foreground (so the PID is slapd's own), logging nothing.
        urls = f"{self.url}/" + (f" {self.ldaps_url}/" if self.tls_port else "")
        self.process = subprocess.Popen(
            [self.binary, "-f", str(self.config), "-h", urls, "-d", "0"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                code = self.process.returncode
                self.process = None
                raise RuntimeError(f"slapd exited with {code}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError("slapd did not start in time")

    def stop(self) -> None:
        """Stop the process this object started (by its PID) and wait for it."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait(timeout=5)

    def __enter__(self) -> LdapServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
