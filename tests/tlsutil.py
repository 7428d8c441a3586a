"""Test-time certificates: a throw-away CA and a server/client certificate for 127.0.0.1/localhost.

Made with the ``openssl`` command line (no runtime dependency); the tests that need
them fail with a clear message when ``openssl`` is missing.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Certs:
    dir: Path
    ca: Path          #: the CA certificate (PEM): what --ca-bundle / --zk-ca take
    cert: Path        #: server (and client) certificate signed by the CA
    key: Path         #: its private key
    keystore: Path    #: key + certificate in one PEM (ZooKeeper's PEM keystore)
    other_ca: Path    #: an unrelated CA: verification with it must fail


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def make_ca(dir: Path, name: str) -> tuple[Path, Path]:
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.pem",
             "-days", "2", "-subj", f"/CN=regctl test {name}", "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=dir)
    return dir / f"{name}.pem", dir / f"{name}.key"


def make_certs(dir: Path) -> Certs:
    if shutil.which("openssl") is None:
        raise RuntimeError("the openssl command is needed to make test certificates (apt-get install openssl)")
    dir.mkdir(parents=True, exist_ok=True)
    ca, ca_key = make_ca(dir, "ca")
    other_ca, _ = make_ca(dir, "other-ca")
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr",
             "-subj", "/CN=localhost", cwd=dir)
    (dir / "ext.cnf").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n"
                                 "keyUsage=digitalSignature,keyEncipherment\n"
                                 "extendedKeyUsage=serverAuth,clientAuth\n")
    _openssl("x509", "-req", "-in", "server.csr", "-CA", ca.name, "-CAkey", ca_key.name, "-CAcreateserial",
             "-out", "server.crt", "-days", "2", "-extfile", "ext.cnf", cwd=dir)
    keystore = dir / "server-keystore.pem"
    keystore.write_text((dir / "server.key").read_text() + (dir / "server.crt").read_text())
    return Certs(dir, ca, dir / "server.crt", dir / "server.key", keystore, other_ca)
