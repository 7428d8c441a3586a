import io
import json

import yaml

from regctl.cli.render import Column, Output, Result, Table
from regctl.errors import Unreachable


def render(result, output="table", color=None):
    out, err = io.StringIO(), io.StringIO()
    code = Output(output=output, color=color, stdout=out, stderr=err).render(result)
    return code, out.getvalue(), err.getvalue()


def sample():
    cols = [Column("name", "name"), Column("n", "live", justify="right"), Column("url", "url", wide=True)]
    return Result(data={"services": [{"name": "a", "n": 2}]}, tables=[Table(cols, [{"name": "a", "n": 2, "url": "u"}])],
                  notes=["read: API"], warnings=["careful"])


def test_plain_table_is_aligned_without_decoration_off_a_terminal():
    code, out, err = render(sample())
    assert code == 0
    assert out.splitlines() == ["NAME  LIVE", "a        2"]
    assert "regctl: read: API" in err and "regctl: warning: careful" in err
    assert "\x1b[" not in out + err


def test_wide_adds_columns():
    _, out, _ = render(sample(), "wide")
    assert out.splitlines()[0].split() == ["NAME", "LIVE", "URL"]


def test_json_and_yaml_only_data_on_stdout():
    _, out, err = render(sample(), "json")
    assert json.loads(out) == {"services": [{"name": "a", "n": 2}]}
    assert "careful" in err and "read: API" not in err
    _, out, _ = render(sample(), "yaml")
    assert yaml.safe_load(out) == {"services": [{"name": "a", "n": 2}]}


def test_error_document_in_json_mode():
    out, err = io.StringIO(), io.StringIO()
    Output(output="json", stdout=out, stderr=err).error(Unreachable("down", where="http://x", hint="start it"))
    doc = json.loads(out.getvalue())
    assert doc["error"]["code"] == 3 and doc["error"]["hint"] == "start it"
    assert err.getvalue() == "regctl: error: down (http://x); try: start it\n"



class Tty(io.StringIO):
    def isatty(self):
        return True


def long_table():
    cols = [Column("name", "name"), Column("n", "live", justify="right"), Column("registered", "registered"),
            Column("flags", "flags"), Column("detail", "discovery detail", wide=True)]
    rows = [{"name": f"bulk-service-{i}", "n": i, "registered": "2020-01-02 03:04:05",
             "flags": ["no-live-instance", "api-differs"], "detail": "x" * 90} for i in range(3)]
    return Result(data={"services": [dict(r) for r in rows]}, tables=[Table(cols, rows, data_key="services")])


def test_on_a_terminal_the_table_fits_with_two_space_gaps_and_no_rule(monkeypatch):
    import re

    monkeypatch.setenv("COLUMNS", "50")
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("TERM", "xterm")
    out, err = Tty(), io.StringIO()
    Output(output="table", stdout=out, stderr=err).render(long_table())
    text = re.sub(r"\x1b\[[0-9;]*m", "", out.getvalue())
    lines = text.splitlines()
    assert "\x1b[" in out.getvalue()  # it is the rich path
    assert all(len(line) <= 50 for line in lines), lines
    assert not any(set(line.strip()) <= set("─━- ") for line in lines)  # no full-width rule
    assert lines[0].split() == ["NAME", "LIVE", "AGE", "FLAGS"]
    assert re.match(r"bulk-service-0 +0  \d+d\d\dh  ", lines[1]), lines[1]  # an age, two-space gaps
    assert "…" in lines[1]


def test_the_same_table_at_200_columns_is_whole(monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    code, out, _ = render(long_table())
    assert "2020-01-02 03:04:05" in out and "no-live-instance,api-differs" in out and "REGISTERED" in out


def test_wide_folds_its_columns_under_rows_when_narrow(monkeypatch):
    monkeypatch.setenv("COLUMNS", "50")
    code, out, _ = render(long_table(), output="wide")
    lines = out.splitlines()
    assert all(len(line) <= 50 for line in lines)
    assert lines[2].startswith("  discovery detail: xxx") and lines[2].endswith("...")


def test_natural_sort_filter_and_data_follow(monkeypatch):
    cols = [Column("name", "name"), Column("flags", "flags")]
    rows = [{"name": n, "flags": f} for n, f in (("b-10", ["x"]), ("b-2", []), ("b-1", ["x", "y"]))]
    result = Result(data={"services": [dict(r) for r in rows]}, tables=[Table(cols, rows, data_key="services")])
    out, err = io.StringIO(), io.StringIO()
    Output(output="json", stdout=out, stderr=err, sort_by="name", filters=["flags=x"]).render(result)
    assert [s["name"] for s in json.loads(out.getvalue())["services"]] == ["b-1", "b-10"]


def test_natural_sort_key_takes_unicode_digits_as_text():
    from regctl.views import natural_key

    names = ["svc-²", "svc-10", "svc-٣", "svc-2"]
    assert sorted(names, key=natural_key) == ["svc-2", "svc-10", "svc-²", "svc-٣"]


def test_digits_that_int_refuses_are_not_numbers(monkeypatch):
    """"²".isdigit() is true but int("²") fails: COLUMNS and --field indexes read decimal digits only."""
    from regctl.cli.tables import _lookup

    monkeypatch.setenv("COLUMNS", "²")
    assert Output(stdout=io.StringIO()).width() is None  # not a number: as if unset, in a pipe
    monkeypatch.setenv("COLUMNS", "٣٠٠")  # Arabic-Indic 300: a number int() reads
    assert Output(stdout=io.StringIO()).width() == 300
    row = {"tags": ["a", "b"]}
    assert _lookup(row, "tags.²") is None and _lookup(row, "tags.1") == "b"
