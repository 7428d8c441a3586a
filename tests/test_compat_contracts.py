"""Contracts with the private internals regctl relies on (kazoo's request plumbing, typer's click).

Each test pins one internal that a release could change without notice; pyproject.toml caps
those packages at the newest release these pass with. When one fails after raising a cap,
the named regctl module needs adapting first.
"""

from __future__ import annotations

import inspect
import struct

import pytest

pytestmark = pytest.mark.compat


# --------------------------------------------------------------------------- kazoo (regctl.zookeeper.multi, regctl.zookeeper.reader)

def test_kazoo_prefix_root_joins_a_chroot():
    """zk_multi.with_chroot calls kazoo.protocol.paths._prefix_root(root, path)."""
    from kazoo.protocol.paths import _prefix_root

    assert _prefix_root("/chroot", "/services/a") == "/chroot/services/a"
    assert _prefix_root("/chroot", "/") == "/chroot"
    assert _prefix_root("", "/services") == "/services"  # KazooClient.chroot is "" without one


def test_kazoo_client_call_takes_a_request_and_an_async_result():
    """zk_multi.multi_read_async sends its own request type through KazooClient._call(request, async_object)."""
    from kazoo.client import KazooClient

    params = list(inspect.signature(KazooClient._call).parameters)
    assert params[:3] == ["self", "request", "async_object"], params
    src = inspect.getsource(KazooClient._call)
    assert "_queue" in src  # queued for the connection thread, which serializes it


def test_kazoo_connection_serializes_any_request_with_type_serialize_deserialize():
    """The connection frames request.serialize() under request.type and replies via type(request).deserialize(buf, offset)."""
    from kazoo.protocol import connection

    src = inspect.getsource(connection.ConnectionHandler)
    assert "request.serialize()" in src and "request.type" in src
    assert ".deserialize(" in src
    from kazoo.protocol.serialization import Transaction

    assert list(inspect.signature(Transaction.deserialize).parameters) == ["bytes", "offset"]


def test_kazoo_multi_header_and_stat_layout():
    """zk_multi decodes MultiHeader (!iBi) and a 68-byte stat into ZnodeStat's 11 fields itself."""
    from kazoo.protocol.serialization import MultiHeader
    from kazoo.protocol.states import ZnodeStat

    assert MultiHeader(4, False, -1).serialize() == struct.pack("!iBi", 4, 0, -1)
    assert ZnodeStat._fields == ("czxid", "mzxid", "ctime", "mtime", "version", "cversion", "aversion",
                                 "ephemeralOwner", "dataLength", "numChildren", "pzxid")
    assert struct.calcsize("!qqqqiiiqiiq") == 68


def test_kazoo_error_codes_map_to_exception_classes():
    """zk_multi turns a per-operation error code into EXCEPTIONS[code]()."""
    from kazoo.exceptions import EXCEPTIONS, NoAuthError, NoNodeError

    assert EXCEPTIONS[-101] is NoNodeError
    assert EXCEPTIONS[-102] is NoAuthError
    assert isinstance(EXCEPTIONS[-101](), NoNodeError)


def test_kazoo_logs_dropped_connections_in_words_regctl_recognises():
    """regctl.zookeeper.reader._ConnectionErrors spots TLS failures in kazoo's connection log lines."""
    from kazoo.protocol import connection

    src = inspect.getsource(connection)
    assert "Connection dropped" in src or "socket connection error" in src


def test_kazoo_client_takes_the_keywords_regctl_passes():
    from kazoo.client import KazooClient

    params = inspect.signature(KazooClient.__init__).parameters
    for kw in ("hosts", "timeout", "connection_retry", "command_retry", "auth_data", "logger",
               "use_ssl", "verify_certs", "ca", "certfile", "keyfile"):
        assert kw in params, kw


def test_kazoo_connection_reads_frames_through_read_and_invoke():
    """zk.harden replaces ConnectionHandler._read(length, timeout) (every frame: header, connect answer, reply)
    and wraps _invoke(timeout, request, xid=None), whose Connect answer is (Connect namedtuple, zxid)."""
    from kazoo.protocol import connection
    from kazoo.protocol.serialization import Connect

    handler = connection.ConnectionHandler
    assert list(inspect.signature(handler._read).parameters) == ["self", "length", "timeout"]
    assert list(inspect.signature(handler._invoke).parameters) == ["self", "timeout", "request", "xid"]
    src = inspect.getsource(handler)
    assert "self._read(4, timeout)" in src and "self._read(length, timeout)" in src
    assert "self._socket_error_handling()" in src and "self._socket.recv(" in src
    connect_src = inspect.getsource(handler._connect)
    assert "self._invoke(" in connect_src and "connect_result.time_out" in connect_src
    assert "read_timeout = negotiated_session_timeout" in connect_src
    assert Connect._fields == ("protocol_version", "last_zxid_seen", "time_out", "session_id", "passwd",
                               "read_only")


def test_kazoo_client_keeps_its_connection_and_session_timeout_where_regctl_looks():
    """zk.harden reads client._connection and client._session_timeout (ms); zk.start uses start_async()."""
    from kazoo.client import KazooClient

    client = KazooClient(hosts="127.0.0.1:1", timeout=3.5)
    try:
        assert client._session_timeout == 3500
        assert hasattr(client._connection, "_read") and hasattr(client._connection, "_invoke")
        assert callable(client.handler.select) and issubclass(client.handler.timeout_exception, Exception)
    finally:
        client.close()
    assert "self._live" in inspect.getsource(KazooClient.start_async)


# --------------------------------------------------------------------------- typer / click (regctl.cli.clickcompat)

def test_clickcompat_exceptions_are_the_ones_typer_raises():
    """app.main catches clickcompat's ClickException: a usage error must be an instance of it."""
    import typer

    from regctl.cli.clickcompat import click_exceptions, get_current_context

    app = typer.Typer()
    seen = {}

    @app.command()
    def hello(n: int = 1) -> None:
        seen["ctx"] = get_current_context()

    with pytest.raises(click_exceptions.ClickException) as info:
        app(args=["--n", "x"], standalone_mode=False)
    assert isinstance(info.value, click_exceptions.UsageError)
    app(args=["--n", "2"], standalone_mode=False)
    assert seen["ctx"] is not None and seen["ctx"].params == {"n": 2}


def test_typer_completion_init_is_where_completion_expects_it():
    """regctl.cli.completion.script.serve calls typer._completion_classes.completion_init()."""
    from typer._completion_classes import completion_init

    try:
        from typer._click import shell_completion
    except ImportError:  # typer that depends on the click package
        from click import shell_completion
    completion_init()
    for shell in ("bash", "zsh", "fish"):
        cls = shell_completion.get_completion_class(shell)
        assert cls is not None and cls.__module__.startswith("typer"), (shell, cls)


def test_typer_builds_a_click_command_tree():
    """Tests and help rendering walk typer.main.get_command(app): groups with .commands and .params."""
    import typer.main

    from regctl.cli.app import get_app

    root = typer.main.get_command(get_app())
    assert "list" in root.commands and "config" in root.commands
    assert hasattr(root.commands["config"], "commands")
    assert any(p.name == "output" for p in root.commands["list"].params)
