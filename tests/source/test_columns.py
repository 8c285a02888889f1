"""An input's columns against the names a destination reads: a typo stops before anything is sent.

Unit tests of :mod:`sink.source.columns` (reading columns cheaply, what a destination needs, the
check), then each typo through the commands a user runs: ``validate``, ``preview``, ``test``
and ``run`` against the simulator, which must see no request at all.
"""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from sink.cli.main import ExitCode, main
from sink.config import parse_config
from sink.destination import Destination, bind
from sink.errors import ConfigError
from sink.hubsim import Simulator
from sink.model import Record
from sink.pipeline import records
from sink.source import columns
from sink.source.columns import Columns, check, checked, input_columns, needs
from tests.seed import OAT

CONNECTION = {"identifier": "acme", "secret_env": "SINK_TEST_SECRET"}


def destination(tmp_path: Path, **config: Any) -> Destination:
    data = {"connection": CONNECTION, **config}
    if "template" not in data and "manual" not in data:
        data = {"template": "create-repository", "settings": {"namespace": "acme"}, **data}
    return bind(parse_config(data), tmp_path)


def csv_columns(*names: str) -> Columns:
    return Columns(names, "the header of records.csv")


def problems(dest: Destination, cols: Columns) -> list[str]:
    return check(dest, cols).problems


# Reading columns ------------------------------------------------------------------------------


def test_csv_header_is_read_without_the_rows(tmp_path: Path) -> None:
    path = tmp_path / "repos.csv"
    # BOM, leading blank lines, a quoted header cell with a comma, padding stripped.
    path.write_bytes(b'\xef\xbb\xbf\r\n\n name ,"full, description",is_private\n' + b"x,y,z\n" * 3)
    found = input_columns(path)
    assert found == Columns(("name", "full, description", "is_private"), "the header of repos.csv")
    tsv = tmp_path / "repos.tsv.gz"
    tsv.write_bytes(gzip.compress(b"name\tdescription\napp\tan app\n"))
    assert input_columns(tsv) == Columns(("name", "description"), "the header of repos.tsv.gz")
    # The format given wins over the extension.
    odd = tmp_path / "repos.txt"
    odd.write_text("name\tregistry\n")
    assert input_columns(odd, "tsv") is not None
    assert input_columns(odd, "tsv").names == ("name", "registry")  # type: ignore[union-attr]


def test_parquet_columns_come_from_the_schema(tmp_path: Path) -> None:
    path = tmp_path / "repos.parquet"
    table = pa.table({"name": ["a", "b"], "is_private": [True, False]})
    pq.write_table(table, path)
    assert input_columns(path) == Columns(
        ("name", "is_private"), "the Parquet schema of repos.parquet"
    )


def test_json_lines_columns_are_the_keys_of_the_first_records(tmp_path: Path) -> None:
    path = tmp_path / "repos.jsonl"
    lines = [b'{"name": "a"}', b"not json", b"[1]", b'{"name": "b", "description": "d"}']
    lines += [b'{"name": "c"}'] * columns.SAMPLE
    lines.append(b'{"late": 1}')  # beyond the sample: not seen
    path.write_bytes(b"\n".join(lines) + b"\n")
    found = input_columns(path)
    assert found is not None and not found.exact
    assert found.names == ("name", "description")
    assert found.where == f"the first {columns.SAMPLE} records of repos.jsonl"


def test_columns_that_cannot_be_known_surely_are_none(tmp_path: Path) -> None:
    assert input_columns("-") is None
    assert input_columns(None) is None
    assert input_columns(tmp_path / "missing.csv") is None
    cases = {
        "empty.csv": b"",
        "blank.csv": b"\n\r\n",
        "lines.csv": b'{"name": "a"}\n',  # JSON Lines named .csv: the reader says so
        "nul.csv": b"\0" * 4096,
        "tabs.csv": b"name\tdescription\na\tb\n",  # TSV named .csv
        "broken.parquet": b"PAR1 not really",
        "nothing.jsonl": b"[1]\n\n",
        "records.xyz": b"name\n",
    }
    for name, content in cases.items():
        (tmp_path / name).write_bytes(content)
        assert input_columns(tmp_path / name) is None, name


# What a destination reads ---------------------------------------------------------------------


def test_required_and_optional_record_fields_of_templates(tmp_path: Path) -> None:
    def needed(**config: Any) -> dict[str, bool]:
        found: dict[str, bool] = {}
        for need in needs(destination(tmp_path, **config)):
            found[need.name] = found.get(need.name, False) or need.required
        return found

    assert needed() == {
        "name": True,  # the spec requires the body's name
        "description": False,
        "full_description": False,
        "registry": False,
        "is_private": False,
    }
    invite = {"template": "bulk-invite", "settings": {"org": "acme"}}
    assert needed(**invite) == {"team": False, "role": False, "invitee": True}
    remove = {"template": "remove-team-member", "settings": {"org": "acme"}}
    assert needed(**remove) == {"team": True, "username": True}  # path values
    grant = {"template": "grant-team-repository", "settings": {"namespace": "acme"}}
    group = [n for n in needs(destination(tmp_path, **grant)) if n.name == "group_id"]
    assert [(n.required, n.alternatives) for n in group] == [(True, ("team",))]


def test_manual_fields_are_required_in_the_url_and_where_the_spec_says(tmp_path: Path) -> None:
    manual = {
        "method": "POST",
        "url": "/v2/namespaces/acme/repositories",
        "body": {"name": "{{ record.repo }}", "description": "{{ record.about }}"},
        "headers": {"X-Note": "{{ record.note }}"},
    }
    found = {n.name: n.required for n in needs(destination(tmp_path, manual=manual))}
    assert found == {"repo": True, "about": False, "note": False}
    patch = {
        "method": "PATCH",
        "url": "/v2/orgs/acme/groups/{{ record.team }}",
        "body_is_record": True,
    }
    assert [(n.name, n.required) for n in needs(destination(tmp_path, manual=patch))] == [
        ("team", True)
    ]


# The check ------------------------------------------------------------------------------------


def test_a_file_without_optional_columns_passes(tmp_path: Path) -> None:
    dest = destination(tmp_path, key_field="name")
    assert check(dest, csv_columns("name")) == columns.Report()
    assert problems(dest, csv_columns("name", "description", "notes")) == []


def test_exclude_typo_is_a_problem_with_did_you_mean(tmp_path: Path) -> None:
    dest = destination(tmp_path, exclude=["descriptoin"])
    found = problems(dest, csv_columns("name", "description"))
    assert found == [
        "exclude: the header of records.csv has no column 'descriptoin'; did you mean "
        "'description'? (columns: name, description)"
    ]
    # A header has every column: an exclude that matches none is wrong even without a match.
    assert problems(destination(tmp_path, exclude=["ssn"]), csv_columns("name")) != []


def test_key_field_typo_and_key_field_excluded(tmp_path: Path) -> None:
    found = problems(destination(tmp_path, key_field="nmae"), csv_columns("name"))
    assert len(found) == 1 and found[0].startswith("key_field: ")
    assert "has no column 'nmae'; did you mean 'name'?" in found[0]
    both = destination(tmp_path, key_field="name", exclude=["name"])
    found = problems(both, csv_columns("name", "description"))
    assert any("key_field: 'name' is also in exclude" in p for p in found)
    assert any("record.name (the body's name, required): it is in exclude" in p for p in found)


def test_a_missing_required_column_is_a_problem(tmp_path: Path) -> None:
    team = destination(tmp_path, template="create-team", settings={"org": "acme"})
    found = problems(team, csv_columns("name", "description"))
    assert found == [
        "record.team (the body's name, required): the header of records.csv has no column "
        "'team' (columns: name, description)"
    ]
    invite = destination(tmp_path, template="bulk-invite", settings={"org": "acme"})
    assert "record.invitee" in problems(invite, csv_columns("invitees", "team"))[0]
    assert "did you mean 'invitees'?" in problems(invite, csv_columns("invitees", "team"))[0]


def test_a_team_id_target_is_satisfied_by_its_source(tmp_path: Path) -> None:
    grant = destination(tmp_path, template="grant-team-repository", settings={"namespace": "acme"})
    assert problems(grant, csv_columns("repository", "team", "permission")) == []
    assert problems(grant, csv_columns("repository", "group_id", "permission")) == []
    found = problems(grant, csv_columns("repository", "teem", "permission"))
    assert found and "record.group_id (or team)" in found[0]


def test_manual_references_are_checked(tmp_path: Path) -> None:
    body = {"description": "{{ record.descriptoin }}"}
    manual = {"method": "PATCH", "url": "/v2/orgs/acme/groups/{{ record.team }}", "body": body}
    dest = destination(tmp_path, manual=manual)
    found = problems(dest, csv_columns("team", "description"))
    assert len(found) == 1
    assert found[0].startswith("record.descriptoin (the body's description): ")
    assert "did you mean 'description'?" in found[0]
    # No close column: an optional field the file does not have, left out of each request.
    assert problems(dest, csv_columns("team")) == []
    # A typo in the url is always a problem: no path can be built without it.
    typo = {**manual, "url": "/v2/orgs/acme/groups/{{ record.tema }}"}
    found = problems(destination(tmp_path, manual=typo), csv_columns("team", "descriptoin"))
    assert len(found) == 1 and "record.tema (the url, required)" in found[0]
    required = {
        "method": "POST",
        "url": "/v2/namespaces/acme/repositories",
        "body": '{"name": "{{ record.nmae }}", "namespace": "acme"}',
    }
    found = problems(destination(tmp_path, manual=required), csv_columns("name"))
    assert len(found) == 1 and "record.nmae (the body's name, required)" in found[0]


def test_a_template_optional_field_close_to_an_unread_column_is_only_a_warning(
    tmp_path: Path,
) -> None:
    report = check(destination(tmp_path), csv_columns("name", "descriptoin"))
    assert report.problems == []
    assert len(report.warnings) == 1
    assert "column 'descriptoin' is not read by create-repository" in report.warnings[0]


def test_a_sample_only_refuses_what_it_proves(tmp_path: Path) -> None:
    sample = Columns(("name", "description"), "the first 100 records of r.jsonl", exact=False)
    # A key absent from the sample may come later: excluding it is fine...
    assert problems(destination(tmp_path, exclude=["secret"]), sample) == []
    # ...but one close to a sampled key is a typo.
    found = problems(destination(tmp_path, exclude=["descriptoin"]), sample)
    assert found == [
        "exclude: no key 'descriptoin' in the first 100 records of r.jsonl; did you mean "
        "'description'? (keys: name, description)"
    ]
    # A key field or required field no sampled record has rejects every one of them.
    assert problems(destination(tmp_path, key_field="id"), sample) != []


# The stream check (stdin) ---------------------------------------------------------------------


def test_stdin_is_checked_on_its_first_records_before_any_goes_on(tmp_path: Path) -> None:
    dest = destination(tmp_path, key_field="nmae")
    stream = iter([Record(0, {"name": "a"}), Record(1, {"name": "b"})])
    with pytest.raises(ConfigError, match="no key 'nmae' in the first 2 records of stdin"):
        next(checked(dest, "-", None, stream))


def test_stdin_passes_as_soon_as_every_needed_name_was_seen(tmp_path: Path) -> None:
    dest = destination(tmp_path, key_field="name")

    def slow() -> Iterator[Record]:
        yield Record(0, {"name": "a"})
        raise AssertionError("the check read past the record it needed")

    assert next(checked(dest, "-", None, slow())) == Record(0, {"name": "a"})


def test_records_raises_before_the_first_record(tmp_path: Path) -> None:
    (tmp_path / "in.csv").write_text("name,description\napp-one,x\n")
    bad = destination(tmp_path, exclude=["descriptoin"])
    with pytest.raises(ConfigError, match="nothing was sent"):
        records(bad, tmp_path / "in.csv")
    good = destination(tmp_path, exclude=["description"])
    assert [r.data for r in records(good, tmp_path / "in.csv")] == [{"name": "app-one"}]  # type: ignore[union-attr]


# Every command ---------------------------------------------------------------------------------

TYPOS: dict[str, tuple[dict[str, Any], str, str]] = {
    # name: (config, input CSV, what the message names)
    "setting": (
        {"template": "bulk-invite", "settings": {"org": "acme", "dryrun": True}},
        "invitee\ngrace@example.com\n",
        "did you mean 'dry_run'?",
    ),
    "exclude": (
        {"exclude": ["descriptoin"]},
        "name,description\napp-one,secret plans\n",
        "did you mean 'description'?",
    ),
    "key_field": ({"key_field": "nmae"}, "name\napp-one\n", "did you mean 'name'?"),
    "manual body": (
        {
            "template": None,
            "settings": {},
            "manual": {
                "method": "POST",
                "url": "/v2/namespaces/acme/repositories",
                "body": {"name": "{{ record.nmae }}", "namespace": "acme"},
            },
        },
        "name\napp-one\n",
        "did you mean 'name'?",
    ),
    "required column": (
        {"template": "create-team", "settings": {"org": "acme"}},
        "name,description\nplatform,x\n",
        "no column 'team'",
    ),
}


def write_config(tmp_path: Path, extra: dict[str, Any], rows: str) -> Path:
    (tmp_path / "records.csv").write_text(rows)
    data: dict[str, Any] = {
        "connection": CONNECTION,
        "template": "create-repository",
        "settings": {"namespace": "acme"},
        "input": "records.csv",
        **extra,
    }
    data = {k: v for k, v in data.items() if v is not None}
    path = tmp_path / "dest.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize("typo", list(TYPOS))
def test_each_typo_stops_every_command_before_anything_is_sent(
    typo: str,
    tmp_path: Path,
    hub: Simulator,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    extra, rows, named = TYPOS[typo]
    path = write_config(tmp_path, extra, rows)
    monkeypatch.setenv("SINK_TEST_SECRET", OAT)
    hub.reset()
    url = ["--base-url", hub.url]
    for command in (["validate"], ["preview"], ["test", "--yes"], ["run", "--yes"]):
        assert main([*command, str(path), *url]) == ExitCode.STOPPED, command
        out, err = capsys.readouterr()
        assert named in err, (command, err)
        assert "Traceback" not in err
        if command[0] == "preview":
            assert out == ""  # not one request printed
    assert hub.requests() == []  # not a write, not even a sign-in
    assert (
        not (tmp_path / "out" / "dest-responses.jsonl").exists()
        or not (tmp_path / "out" / "dest-responses.jsonl").read_text()
    )


def test_a_valid_file_without_optional_columns_runs(
    tmp_path: Path,
    hub: Simulator,
    capsysbinary: pytest.CaptureFixture[bytes],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    path = write_config(tmp_path, {"key_field": "name"}, "name\ncolumns-ok\n")
    monkeypatch.setenv("SINK_TEST_SECRET", OAT)
    hub.reset()
    url = ["--base-url", hub.url]
    assert main(["validate", str(path), *url]) == ExitCode.OK
    capsysbinary.readouterr()
    assert main(["preview", str(path), *url]) == ExitCode.OK
    line = orjson.loads(capsysbinary.readouterr().out)
    assert line["body"] == {"name": "columns-ok", "namespace": "acme"}
    assert main(["run", str(path), *url]) == ExitCode.OK
    names = {repo["name"] for repo in hub.state()["repositories"]}
    assert "columns-ok" in names


def test_stdin_typo_stops_the_run_before_anything_is_sent(
    tmp_path: Path,
    hub: Simulator,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import io
    import sys

    path = write_config(tmp_path, {"key_field": "nmae"}, "name\nunused\n")
    monkeypatch.setenv("SINK_TEST_SECRET", OAT)
    hub.reset()
    stdin = io.TextIOWrapper(io.BytesIO(b'{"name": "from-stdin"}\n'))
    monkeypatch.setattr(sys, "stdin", stdin)
    code = main(["run", str(path), "--input", "-", "--base-url", hub.url])
    assert code == ExitCode.STOPPED
    assert "no key 'nmae' in the first record of stdin" in capsys.readouterr().err
    assert [r for r in hub.requests() if r["method"] not in ("GET", "HEAD")] == []


@pytest.mark.parametrize("fmt", ["csv", "tsv", "jsonl", "parquet"])
def test_a_key_field_typo_stops_every_format(fmt: str, tmp_path: Path) -> None:
    path = tmp_path / f"in.{fmt}"
    rows = [{"name": "app-one", "description": "x"}]
    if fmt == "parquet":
        pq.write_table(pa.Table.from_pylist(rows), path)
    elif fmt == "jsonl":
        path.write_bytes(b"".join(orjson.dumps(row) + b"\n" for row in rows))
    else:
        sep = "\t" if fmt == "tsv" else ","
        path.write_text(f"name{sep}description\napp-one{sep}x\n")
    with pytest.raises(ConfigError, match="did you mean 'name'"):
        records(destination(tmp_path, key_field="nmae"), path)
    assert len(list(records(destination(tmp_path, key_field="name"), path))) == 1


@pytest.mark.parametrize("name", ["repos.pq", "repos.PARQUET", "repos.parquet"])
def test_columns_know_every_extension_the_reader_knows(tmp_path: Path, name: str) -> None:
    # The column check and the reader decide an input's format in one place: a file the
    # reader reads is checked for typos too, whatever extension it goes by.
    path = tmp_path / name
    pq.write_table(pa.table({"name": ["a"]}), path)
    assert input_columns(path) == Columns(("name",), f"the Parquet schema of {name}")
    odd = tmp_path / "repos.json"  # not an extension the reader takes: no columns, no guess
    odd.write_text('{"name": "a"}\n')
    assert input_columns(odd) is None
    given = input_columns(odd, "json")  # the format given: read as JSON Lines
    assert given is not None and given.names == ("name",)
