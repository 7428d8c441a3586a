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

