"""Find, configure and start a real ZooKeeper; speak its four-letter words.

Where ZooKeeper comes from (:func:`find_zookeeper`):

1. ``$ZOOKEEPER_HOME`` (an Apache tarball): ``$ZOOKEEPER_HOME/lib/*.jar``,
   ``$ZOOKEEPER_HOME/*.jar`` and ``$ZOOKEEPER_HOME/conf`` (for its logback.xml).
2. Debian's package ``zookeeper``: ``/usr/share/java/zookeeper.jar`` (its manifest
   Class-Path brings the dependencies), plus ``slf4j-simple`` when present so the
   server log says something.

Java is ``$JAVA_HOME/bin/java``, else ``java`` on ``PATH``.

:func:`start_zookeeper` starts ``members`` servers on loopback: one is a standalone
server; three (or any n > 1) form an ensemble with quorum and election ports of
their own. Each member's files live in one directory: ``zoo.cfg``, ``data/``
(with ``myid``), ``zookeeper.log`` and ``zookeeper.pid``.
"""

from __future__ import annotations

import os
import shutil
import time
import zipfile
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Callable, Mapping, Sequence

from regctl.errors import SandboxError
from regctl.sandbox import proc, statedir
from regctl.zookeeper.admin import send_word

DEBIAN_JAR = Path("/usr/share/java/zookeeper.jar")
DEBIAN_SLF4J_BINDING = Path("/usr/share/java/slf4j-simple.jar")
MAIN_CLASS = "org.apache.zookeeper.server.quorum.QuorumPeerMain"
#: what a deployment's ZooKeeper allows (cp-zookeeper, and ZooKeeper's own default): ``srvr`` alone
#: (ZooKeeper 3.5+ answers ``srvr`` whatever its whitelist says: its own scripts use it)
FOUR_LETTER_WORDS = "srvr"
#: the words the sandbox allows with ``--four-letter-words all`` (regctl asks srvr, and mntr or ruok
#: only where srvr is refused)
ALL_FOUR_LETTER_WORDS = "ruok,srvr,mntr,stat,cons,conf,isro,dump"
#: every word ZooKeeper 3.5+ knows (what a whitelist may name)
KNOWN_FOUR_LETTER_WORDS = ("conf", "cons", "crst", "dump", "envi", "ruok", "srst", "srvr", "stat", "wchs",
                           "wchc", "wchp", "mntr", "isro", "hash", "gtmk", "stmk", "dirs")


def parse_four_letter_words(value: str | None) -> str:
    """A ``4lw.commands.whitelist`` from ``--four-letter-words``: ``srvr`` (None), ``all``, or a list.

    A list is comma-separated known words; ``srvr`` is put first when missing, as
    ZooKeeper itself allows it whatever the whitelist says (its own scripts use it).
    Raises ValueError naming a word that is not a four-letter word.
    """
    if value is None or not value.strip():
        return FOUR_LETTER_WORDS
    if value.strip().lower() == "all":
        return ALL_FOUR_LETTER_WORDS
    words: list[str] = ["srvr"]
    for word in (w.strip().lower() for w in value.split(",")):
        if not word:
            continue
        if word not in KNOWN_FOUR_LETTER_WORDS:
            raise ValueError(f"{word!r} is not a ZooKeeper four-letter word (known: "
                             f"{', '.join(KNOWN_FOUR_LETTER_WORDS)})")
        if word not in words:
            words.append(word)
    return ",".join(words)
INSTALL_HINT = "apt-get install zookeeper, or set ZOOKEEPER_HOME to an unpacked Apache ZooKeeper"
JAVA_HINT = "apt-get install default-jre-headless, or set JAVA_HOME"
JVM_OPTIONS = ("-Xms16m", "-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
               "-Djava.net.preferIPv4Stack=true", "-Dzookeeper.admin.enableServer=false",
               "-Dorg.slf4j.simpleLogger.defaultLogLevel=info",
               "-Dorg.slf4j.simpleLogger.showDateTime=true")


@dataclass(frozen=True)
class ZkInstall:
    """A ZooKeeper installation that can be started."""

    classpath: tuple[str, ...]
    java: str
    version: str | None = None
    #: "ZOOKEEPER_HOME" or "debian"
    source: str = "debian"

    @property
    def classpath_string(self) -> str:
        return os.pathsep.join(self.classpath)

    def command(self, config: Path) -> list[str]:
        """The java command line that runs one server with ``config``."""
        return [self.java, *JVM_OPTIONS, "-cp", self.classpath_string, MAIN_CLASS, str(config)]


@dataclass(frozen=True)
class ZkMember:
    """One started ZooKeeper server process."""

    myid: int
    pid: int
    host: str
    client_port: int
    dir: str
    config: str
    log: str
    quorum_port: int | None = None
    election_port: int | None = None
    #: the TLS client port (``secureClientPort``), when started with ``secure_port``
    secure_port: int | None = None
    #: the ownership token in its environment and its start time (see :func:`regctl.sandbox.proc.why_not_ours`)
    token: str | None = None
    started: int | None = None

    @property
    def hosts(self) -> str:
        return f"{self.host}:{self.client_port}"

    def running(self) -> bool:
        return proc.why_not_ours(self.pid, self.token, self.started) is None

    def to_dict(self) -> dict:
        return asdict(self)


def connection_string(members: Sequence[ZkMember]) -> str:
    """``127.0.0.1:2181,127.0.0.1:2182`` for kazoo and ZOOKEEPER_HOSTS."""
    return ",".join(m.hosts for m in members)


# --------------------------------------------------------------------------- finding

def find_java(env: Mapping[str, str] = os.environ) -> str:
    """``$JAVA_HOME/bin/java`` if it exists, else ``java`` on PATH, else :class:`SandboxError`."""
    java_home = env.get("JAVA_HOME")
    if java_home:
        candidate = Path(java_home) / "bin" / "java"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    found = shutil.which("java", path=env.get("PATH", os.defpath))
    if found:
        return os.path.abspath(found)
    where = f"JAVA_HOME={java_home}, PATH" if java_home else "PATH"
    raise SandboxError("Java not found, ZooKeeper needs it", where=where, hint=JAVA_HINT)


def find_zookeeper(env: Mapping[str, str] = os.environ, *, debian_jar: Path = DEBIAN_JAR) -> ZkInstall:
    """Locate ZooKeeper's jars and Java (see the module docstring), or raise :class:`SandboxError`.

    A ``ZOOKEEPER_HOME`` that is set but holds no ZooKeeper jar is an error, not a
    reason to fall back silently.
    """
    home = env.get("ZOOKEEPER_HOME")
    if home:
        root = Path(home)
        jars = sorted(root.glob("lib/*.jar")) + sorted(root.glob("*.jar"))
        if not any(j.name.startswith("zookeeper") and "jute" not in j.name for j in jars):
            raise SandboxError("ZooKeeper not found: no zookeeper*.jar in $ZOOKEEPER_HOME or its lib/",
                               where=f"ZOOKEEPER_HOME={home}", hint=INSTALL_HINT)
        classpath = [str(j) for j in jars]
        if (root / "conf").is_dir():
            classpath.insert(0, str(root / "conf"))
        java = find_java(env)
        version = next((_jar_version(j) for j in jars if j.name.startswith("zookeeper-3")), None)
        return ZkInstall(tuple(classpath), java, version, "ZOOKEEPER_HOME")
    if debian_jar.is_file():
        classpath = [str(debian_jar)]
        binding = debian_jar.parent / DEBIAN_SLF4J_BINDING.name
        if binding.is_file():
            classpath.append(str(binding))
        java = find_java(env)
        return ZkInstall(tuple(classpath), java, _jar_version(debian_jar), "debian")
    raise SandboxError("ZooKeeper not found", where=f"ZOOKEEPER_HOME unset, no {debian_jar}", hint=INSTALL_HINT)


def _jar_version(jar: Path) -> str | None:
    """The Maven version inside a ZooKeeper jar (cheap: one zip entry), or None."""
    try:
        with zipfile.ZipFile(jar) as zf:
            text = zf.read("META-INF/maven/org.apache.zookeeper/zookeeper/pom.properties").decode()
    except (OSError, KeyError, zipfile.BadZipFile):
        name = jar.name
        if name.startswith("zookeeper-3") and name.endswith(".jar"):
            return name[len("zookeeper-"):-len(".jar")]
        return None
    for line in text.splitlines():
        if line.startswith("version="):
            return line.split("=", 1)[1].strip()
    return None


#: netty jars a TLS (Netty) server needs that Debian's zookeeper.jar Class-Path leaves out
NETTY_TLS_JARS = ("netty-codec.jar", "netty-resolver.jar", "netty-transport-native-unix-common.jar")


def with_tls_jars(install: ZkInstall) -> ZkInstall:
    """``install`` with the netty jars TLS needs added to its classpath.

    Debian's ``zookeeper.jar`` manifest lists netty-handler/transport/buffer/common
    but not netty-codec (``SslHandler``'s base class), netty-resolver and
    netty-transport-native-unix-common; an Apache tarball's ``lib/`` has them all.
    """
    if install.source != "debian":
        return install
    java_dir = Path(install.classpath[0]).parent
    extra = [java_dir / j for j in NETTY_TLS_JARS]
    missing = [j.name for j in extra if not j.is_file()]
    if missing:
        raise SandboxError(f"ZooKeeper TLS needs {', '.join(missing)}", where=str(java_dir),
                           hint="apt-get install libnetty-java")
    return ZkInstall(install.classpath + tuple(str(j) for j in extra), install.java, install.version, install.source)


def tls_settings(keystore: str | Path, truststore: str | Path, client_auth: str = "want") -> dict[str, str]:
    """zoo.cfg lines for a Netty TLS client port with PEM files.

    ``keystore``: the server's private key and certificate chain in one PEM file;
    ``truststore``: CA certificates (PEM) client certificates are checked against;
    ``client_auth``: ``none``, ``want`` or ``need`` (a client certificate).
    """
    return {
        "serverCnxnFactory": "org.apache.zookeeper.server.NettyServerCnxnFactory",
        "ssl.keyStore.location": str(Path(keystore).resolve()),
        "ssl.keyStore.type": "PEM",
        "ssl.trustStore.location": str(Path(truststore).resolve()),
        "ssl.trustStore.type": "PEM",
        "ssl.clientAuth": client_auth,
    }


# --------------------------------------------------------------------------- config

@dataclass(frozen=True)
class ZkConfig:
    """What every member's ``zoo.cfg`` says besides its client port and its place in an ensemble."""

    #: the address the client ports listen on
    host: str = "127.0.0.1"
    #: the four-letter-word whitelist: ``srvr`` alone by default, as deployments run
    words: str = FOUR_LETTER_WORDS
    tick_time: int = 2000
    #: a TLS client port (``secureClientPort``; 0: a free one) configured by ``tls`` (see :func:`tls_settings`)
    secure_port: int | None = None
    tls: Mapping[str, str] | None = None
    #: more ``zoo.cfg`` lines (they win over the ones written from the fields above)
    extra: Mapping[str, str] | None = None


def write_config(dir: Path, port: int, config: ZkConfig = ZkConfig(), *, myid: int | None = None,
                 servers: Sequence[tuple[int, str, int, int]] = ()) -> Path:
    """Write ``dir/zoo.cfg`` (and ``dir/data/myid`` for an ensemble member); return the config path.

    ``servers`` lists ``(myid, host, quorum_port, election_port)`` for every
    ensemble member; leave it empty for a standalone server. ``config.secure_port`` adds a
    TLS client port configured by ``config.tls`` (see :func:`tls_settings`).
    """
    dir = Path(dir).resolve()
    data = statedir.make_dir(dir / "data")
    lines = {
        "tickTime": str(config.tick_time),
        "initLimit": "10",
        "syncLimit": "5",
        "dataDir": str(data),
        "clientPort": str(port),
        "clientPortAddress": config.host,
        "maxClientCnxns": "0",
        "admin.enableServer": "false",
        "4lw.commands.whitelist": config.words,
        "autopurge.purgeInterval": "1",
    }
    if servers:
        lines["standaloneEnabled"] = "false"
        lines["reconfigEnabled"] = "false"
        for sid, shost, quorum, election in servers:
            lines[f"server.{sid}"] = f"{shost}:{quorum}:{election}"
        statedir.write_atomic(data / "myid", f"{myid}\n")
    if config.secure_port:
        if not config.tls:
            raise ValueError("secure_port needs tls=tls_settings(keystore, truststore)")
        lines["secureClientPort"] = str(config.secure_port)
        lines["secureClientPortAddress"] = config.host
        lines.update(config.tls)
    if config.extra:
        lines.update(config.extra)
    config = dir / "zoo.cfg"
    statedir.write_atomic(config, "".join(f"{k}={v}\n" for k, v in lines.items()))
    return config


# --------------------------------------------------------------------------- starting

def member_dir(dir: Path, myid: int, members: int) -> Path:
    """Standalone: ``dir`` itself; ensemble member n: ``dir/member-n``."""
    return Path(dir) if members == 1 else Path(dir) / f"member-{myid}"


def start_zookeeper(dir: Path, port: int = 0, members: int = 1, *, config: ZkConfig = ZkConfig(),
                    install: ZkInstall | None = None, client_ports: Sequence[int] | None = None,
                    env: Mapping[str, str] | None = None, token: str | None = None) -> list[ZkMember]:
    """Start ``members`` ZooKeeper servers detached; return them (no waiting, see :func:`wait_for`).

    ``config`` is what every member's ``zoo.cfg`` says (:class:`ZkConfig`: its four-letter-word
    whitelist is ``srvr`` alone by default, as deployments run; a TLS client port only for a
    standalone server). ``token`` (a new random one when not given) goes into every member's
    environment (see :func:`regctl.sandbox.proc.spawn`); the members record it and their start
    time, and stopping them requires both to match.

    ``port`` is the first member's client port (0: a free one). An ensemble's other
    members get ``client_ports`` if given, else free ports; quorum and election
    ports are always free ones. Raises :class:`SandboxError` if a client port is
    already taken or ZooKeeper/Java cannot be found.
    """
    if members < 1:
        raise ValueError("members must be >= 1")
    token = token or proc.new_token()
    install = install or find_zookeeper(os.environ if env is None else env)
    host = config.host
    if config.secure_port is not None:  # a standalone server with a TLS client port too
        if members != 1:
            raise ValueError("secure_port is only supported for a standalone server")
        install = with_tls_jars(install)
        config = replace(config, secure_port=config.secure_port or proc.free_port(host))
    ports = list(client_ports or [])
    if not ports:
        ports = [port or proc.free_port(host)]
        ports += [proc.free_port(host) for _ in range(members - 1)]
    if len(ports) != members:
        raise ValueError("client_ports must have one port per member")
    ports = [p or proc.free_port(host) for p in ports]
    for p in ports:
        if proc.port_in_use(p, host):
            raise SandboxError(f"port {p} is already in use", where=f"ZooKeeper client port {host}:{p}",
                               hint="stop what listens there or choose another port")
    servers: list[tuple[int, str, int, int]] = []
    if members > 1:
        servers = [(i, host, proc.free_port(host), proc.free_port(host)) for i in range(1, members + 1)]
    started: list[ZkMember] = []
    child_env = dict(os.environ if env is None else env)
    child_env.setdefault("ZOO_LOG_DIR", str(Path(dir).resolve()))
    try:
        for i in range(1, members + 1):
            mdir = statedir.make_dir(member_dir(dir, i, members)).resolve()
            cfg = write_config(mdir, ports[i - 1], config, myid=i if servers else None, servers=servers)
            log = mdir / "zookeeper.log"
            pid = proc.spawn(install.command(cfg), log, cwd=mdir, env=child_env, token=token)
            started_at = proc.start_time(pid)
            statedir.write_atomic(mdir / "zookeeper.pid", f"{pid}\n")
            quorum = election = None
            if servers:
                quorum, election = servers[i - 1][2], servers[i - 1][3]
            started.append(ZkMember(i, pid, host, ports[i - 1], str(mdir), str(cfg), str(log),
                                    quorum, election, config.secure_port, token, started_at))
    except (OSError, SandboxError) as exc:
        stop_zookeeper(started)
        if isinstance(exc, SandboxError):
            raise
        raise SandboxError(f"could not start ZooKeeper: {exc}", where=str(dir),
                           hint="check the directory is writable") from exc
    return started


def wait_for(members: Sequence[ZkMember], timeout: float = 30.0) -> dict[int, str]:
    """Wait until every member serves (``srvr`` says ``Mode:``); return myid -> srvr text.

    Raises :class:`SandboxError` pointing at a member's log if it exits or the time runs out.
    """
    deadline = time.monotonic() + timeout
    result: dict[int, str] = {}
    for m in members:
        left = max(0.1, deadline - time.monotonic())
        result[m.myid] = wait_until_serving(m.host, m.client_port, left,
                                            alive=lambda m=m: proc.pid_alive(m.pid), log=Path(m.log))
    return result


def stop_zookeeper(members: Sequence[ZkMember], timeout: float = 5.0) -> list[int]:
    """Stop every member (SIGTERM, then SIGKILL); return the myids that were running."""
    stopped = []
    for m in members:
        if proc.stop_owned(m.pid, m.token, m.started, timeout=timeout) is None:
            stopped.append(m.myid)
        try:
            (Path(m.dir) / "zookeeper.pid").unlink()
        except OSError:
            pass
    return stopped


# --------------------------------------------------------------------------- 4lw

def four_letter_word(host: str, port: int, word: str, timeout: float = 2.0) -> str:
    """Send a four-letter word (``ruok``, ``srvr``, ``mntr`` ...) and return the whole answer.

    Refused, reset, timed out or closed without answering: ``""``. A word the
    server does not whitelist comes back as ZooKeeper's own sentence. (A thin
    wrapper over :func:`regctl.zookeeper.admin.send_word`.)
    """
    return send_word(host, port, word, timeout).text


def server_mode(srvr: str) -> str | None:
    """``standalone`` / ``leader`` / ``follower`` / ``observer`` from ``srvr`` output, or None."""
    for line in srvr.splitlines():
        if line.startswith("Mode:"):
            return line.split(":", 1)[1].strip()
    return None


def wait_until_serving(host: str, port: int, timeout: float = 30.0, *,
                       alive: Callable[[], bool] | None = None, log: Path | None = None) -> str:
    """Poll until ``srvr`` reports a ``Mode:`` (the one word every whitelist allows); return the srvr text.

    ``ruok`` would not do: a starting server says ``imok`` before it serves, and
    deployments do not allow it. ``alive`` (optional) is asked between attempts;
    when it returns False the server died and :class:`SandboxError` is raised at
    once, pointing at ``log``.
    """
    deadline = time.monotonic() + timeout
    last = ""
    while True:
        srvr = four_letter_word(host, port, "srvr", timeout=1.0)
        if server_mode(srvr):
            return srvr
        last = srvr.strip().splitlines()[0] if srvr.strip() else "connection refused or closed"
        if alive is not None and not alive():
            raise SandboxError(f"ZooKeeper on {host}:{port} exited while starting",
                               where=str(log) if log else None,
                               hint=f"read {log}" if log else "read its log",
                               detail=proc.tail(log, 30) if log else None)
        if time.monotonic() >= deadline:
            raise SandboxError(f"ZooKeeper on {host}:{port} did not start serving within {timeout:.0f}s "
                               f"(last answer: {last})", where=str(log) if log else None,
                               hint=f"read {log}" if log else "read its log",
                               detail=proc.tail(log, 30) if log else None)
        time.sleep(0.1)
