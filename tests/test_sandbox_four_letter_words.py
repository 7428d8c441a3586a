"""The sandbox's ZooKeeper allows ``srvr`` alone, as a deployment's does, and regctl's checks hold there.

Real ZooKeeper servers with real whitelists (the sandbox's default, ``srvr``; one that lists only
``ruok``, which ZooKeeper still answers ``srvr`` on); and, since no ZooKeeper 3.5+ refuses ``srvr``,
a loopback stand-in that refuses every word (four-letter words switched off), where a check must say
the words are not allowed and judge the member by a session, never by the refusal.
"""

from __future__ import annotations

from regctl.zookeeper import admin as zk_admin
from regctl.sandbox import stack
from regctl.sandbox import zookeeper as zkmod
from tests.helpers import run_cli

NOT_IN_CONTAINER = {"REGCTL_DOCTOR_IN_CONTAINER": "0"}


def zk_rows(result) -> dict:
    return {c["name"]: c for c in result.json["checks"] if c["name"].startswith("zookeeper.")}


def test_doctor_zookeeper_rows_stay_true_on_a_srvr_only_sandbox(tmp_path):
    dir = tmp_path / "sb"
    info = stack.up(dir, api_port=0, zk_port=0)
    try:
        assert info.four_letter_words == "srvr"
        host, port = info.zk_hosts.split(":")
        assert "not in the whitelist" in zkmod.four_letter_word(host, int(port), "ruok")  # really srvr alone
        env = {**NOT_IN_CONTAINER, "CONFIG_SERVICE_URL": info.api_url, "ZOOKEEPER_HOSTS": info.zk_hosts}
        res = run_cli("doctor", "zookeeper", "--timeout", "3", "-o", "json", env=env)
        rows = zk_rows(res)
        assert set(rows) == {"zookeeper.members", "zookeeper.quorum", "zookeeper.session", "zookeeper.base"}
        assert {n: r["status"] for n, r in rows.items()} == dict.fromkeys(rows, "pass"), rows
        assert res.exit_code == 0, res
        member = rows["zookeeper.members"]
        assert member["finding"].startswith("standalone") and "latency" in member["finding"]
        details = member["details"]
        assert (details["four_letter_words"], details["refused"], details.get("ruok")) == (True, [], None)
        assert rows["zookeeper.quorum"]["finding"].startswith("1 of 1 serves")
    finally:
        stack.down(dir)


def test_check_member_asks_srvr_alone_where_srvr_answers(zk_srvr_only):
    rep = zk_admin.check_member("127.0.0.1", zk_srvr_only.port, 3.0)
    assert [a.word for a in rep.answers] == ["srvr"]  # nothing the whitelist would refuse
    assert rep.serving and rep.mode == "standalone" and rep.refused == ()
    assert rep.four_letter_words is True and rep.session_ok is None


def test_zookeeper_answers_srvr_whatever_its_whitelist(tmp_path):
    from regctl.sandbox import proc

    members = zkmod.start_zookeeper(tmp_path / "zk", proc.free_port(), config=zkmod.ZkConfig(words="ruok"))
    try:
        zkmod.wait_for(members, timeout=60)  # srvr tells it serves, though the list names only ruok
        rep = zk_admin.check_member("127.0.0.1", members[0].client_port, 3.0)
        assert [a.word for a in rep.answers] == ["srvr"] and rep.mode == "standalone" and rep.serving
    finally:
        zkmod.stop_zookeeper(members)


class RefusingEveryWord:
    """A loopback listener that answers every four-letter word with ZooKeeper's whitelist sentence."""

    def __init__(self) -> None:
        import socket
        import threading

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.words: list[str] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                word = conn.recv(4).decode("ascii", "replace")
                self.words.append(word)
                if len(word) == 4 and word.isalpha():
                    conn.sendall(f"{word} is not executed because it is not in the whitelist.\n".encode())
                # anything else (a ZooKeeper session's handshake) is closed unanswered

    def close(self) -> None:
        self.sock.close()


def test_a_member_that_refuses_every_word_is_judged_by_a_session_not_by_the_refusal():
    fake = RefusingEveryWord()
    try:
        rep = zk_admin.check_member("127.0.0.1", fake.port, 2.0)
        assert rep.error is None and rep.refused == ("srvr", "mntr", "ruok")
        assert rep.four_letter_words is False and rep.session_ok is False and not rep.serving
        assert rep.words_text() == "srvr, mntr and ruok not allowed by the server's four-letter-word whitelist"
        env = {**NOT_IN_CONTAINER, "ZOOKEEPER_HOSTS": f"127.0.0.1:{fake.port}"}
        res = run_cli("doctor", "zookeeper.members", "--timeout", "2", "-o", "json", env=env)
        member = zk_rows(res)["zookeeper.members"]
        assert member["status"] == "fail" and res.exit_code == 1, member
        assert member["finding"].startswith("srvr, mntr and ruok not allowed by the server's four-letter-word "
                                            "whitelist; no session to this member either")
        assert "add srvr to 4lw.commands.whitelist" in member["hint"]
    finally:
        fake.close()
