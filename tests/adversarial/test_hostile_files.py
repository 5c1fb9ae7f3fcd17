"""Hostile files through ``fiumatch ingest`` and ``fiumatch node load``, as real processes.

Every file is generated on the fly (nothing large is committed): XML bombs, external entities
and parameter entities in goAML; invalid UTF-8 in CSV, JSON Lines and XML; 10 MB fields; a
CSV line of a million columns; NUL bytes; JSON nested 100 000 deep; FtM property values of
the wrong type; and path tricks (``../``, absolute paths, names with newlines and control
characters, symlinks out of the directory, to a device, a FIFO).

For each, a child process with a time limit (60 s) and an address-space limit (2 GiB) must:

* ``fiumatch ingest``: exit 1 with a reject report naming file, line or record, field and
  reason (never the rejected value), or exit 2 with an error naming the file; no traceback;
* ``fiumatch node load`` into a node made by ``fiumatch node init``: no traceback, and the
  store exactly as before (a digest of ``subjects`` and ``match_keys``, and
  ``PRAGMA integrity_check``). External entities must not be fetched: a listener on loopback
  counts connections.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

TIME_LIMIT = 60
BATCH_TIME_LIMIT = 180  # every hostile file in one process
MEMORY_LIMIT = 2 << 30  # address space of the child; RSS is checked separately
MAX_RSS_KB = 512 * 1024
TEN_MB = 10 * 1024 * 1024
CSV_HEADER = b"local_ref,type,name,birth_date\n"


# --- running the CLI -----------------------------------------------------------------------


@dataclass
class Run:
    code: int | None
    stdout: str
    stderr: str
    max_rss_kb: int
    timed_out: bool

    @property
    def traceback(self) -> bool:
        return "Traceback (most recent call last)" in self.stderr


# The child sets its own address-space limit, then runs the CLI (no preexec_fn: this process
# has threads, the loopback listener's among them).
_LIMITED_CLI = (
    "import resource, runpy, sys; "
    f"resource.setrlimit(resource.RLIMIT_AS, ({MEMORY_LIMIT}, {MEMORY_LIMIT})); "
    "sys.argv = ['fiumatch', *sys.argv[1:]]; "
    "runpy.run_module('fiumatch.cli.main', run_name='__main__')"
)


def fiumatch(*args: str, cwd: Path, time_limit: int = TIME_LIMIT) -> Run:
    """Run ``fiumatch ARGS`` in a child with time and memory limits; collect its max RSS."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FIUMATCH_")}
    env["COLUMNS"] = "200"
    out_path, err_path = cwd / ".stdout", cwd / ".stderr"
    with out_path.open("wb") as out, err_path.open("wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-c", _LIMITED_CLI, *args],
            cwd=cwd,
            stdout=out,
            stderr=err,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
        )
        timed_out = threading.Event()

        def kill() -> None:
            timed_out.set()
            os.killpg(proc.pid, signal.SIGKILL)

        timer = threading.Timer(time_limit, kill)
        timer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            timer.cancel()
        proc.returncode = os.waitstatus_to_exitcode(status)
    return Run(
        code=None if timed_out.is_set() else proc.returncode,
        stdout=out_path.read_text(encoding="utf-8", errors="replace"),
        stderr=err_path.read_text(encoding="utf-8", errors="replace"),
        max_rss_kb=usage.ru_maxrss,
        timed_out=timed_out.is_set(),
    )


def assert_clean(run: Run, what: str) -> None:
    assert not run.timed_out, f"{what}: still running at its time limit"
    assert not run.traceback, f"{what}: traceback\n{run.stderr[-2000:]}"
    assert run.max_rss_kb < MAX_RSS_KB, f"{what}: max RSS {run.max_rss_kb} KiB"
    assert "\x1b" not in run.stdout + run.stderr, f"{what}: terminal escape in the output"


class Listener:
    """A loopback TCP listener that counts connections (an entity fetch would be one)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.connections += 1
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()


@pytest.fixture(scope="module")
def listener() -> Iterator[Listener]:
    lst = Listener()
    try:
        yield lst
    finally:
        lst.close()


# --- hostile files -------------------------------------------------------------------------


@dataclass(frozen=True)
class Expect:
    """One reject the report must hold (``line`` None: not checked)."""

    field: str
    code: str
    reason: str
    line: int | None = None


@dataclass(frozen=True)
class Case:
    name: str
    filename: str
    make: Callable[[Listener], bytes]
    expect: tuple[Expect, ...]
    secret_marker: bytes | None = None


def _bomb(_: Listener) -> bytes:
    lines = [b'<?xml version="1.0"?>', b"<!DOCTYPE report [", b'<!ENTITY lol "lol">']
    prev = b"lol"
    for i in range(1, 10):
        lines.append(b'<!ENTITY lol%d "%s">' % (i, (b"&" + prev + b";") * 10))
        prev = b"lol%d" % i
    lines += [
        b"]>",
        b"<report><t_person><first_name>&lol9;</first_name>"
        b"<last_name>X</last_name><birthdate>1980-01-01</birthdate></t_person></report>",
    ]
    return b"\n".join(lines) + b"\n"


def _xxe(url: str) -> Callable[[Listener], bytes]:
    def make(lst: Listener) -> bytes:
        target = url.format(port=lst.port).encode()
        return (
            b'<?xml version="1.0"?>\n<!DOCTYPE report [<!ENTITY x SYSTEM "'
            + target
            + b'">]>\n<report><t_person><first_name>&x;</first_name><last_name>X'
            b"</last_name><birthdate>1980-01-01</birthdate></t_person></report>\n"
        )

    return make


def _parameter_entities(lst: Listener) -> bytes:
    return (
        b'<?xml version="1.0"?>\n<!DOCTYPE report [\n'
        b'  <!ENTITY % remote SYSTEM "http://127.0.0.1:'
        + str(lst.port).encode()
        + b'/evil.dtd">\n  %remote;\n  <!ENTITY % local "<!ENTITY x \'y\'>">\n  %local;\n'
        b"]>\n<report/>\n"
    )


def _const(data: bytes) -> Callable[[Listener], bytes]:
    return lambda _: data


_XML_BROKEN = Expect("<xml>", "broken_xml", "XML is not well-formed")
_XML_FORBIDDEN = Expect("<xml>", "forbidden_xml", "DTDs and entities are not allowed")
_TOO_LONG = "value longer than 1024 characters"

CASES: tuple[Case, ...] = (
    Case("goaml-billion-laughs", "bomb.xml", _bomb, (_XML_FORBIDDEN,)),
    Case(
        "goaml-xxe-file",
        "xxe-file.xml",
        _xxe("file:///etc/passwd"),
        (_XML_FORBIDDEN,),
        secret_marker=b"root:",
    ),
    Case(
        "goaml-xxe-http", "xxe-http.xml", _xxe("http://127.0.0.1:{port}/secret"), (_XML_FORBIDDEN,)
    ),
    Case("goaml-parameter-entities", "param.xml", _parameter_entities, (_XML_FORBIDDEN,)),
    Case(
        "goaml-invalid-utf8",
        "bad-utf8.xml",
        _const(
            b'<?xml version="1.0" encoding="UTF-8"?>\n<report>\n<t_person><first_name>Jos\xe9'
            b"</first_name></t_person></report>\n"
        ),
        (Expect("<xml>", "broken_xml", "XML is not well-formed", 3),),
    ),
    Case(
        "goaml-huge-field",
        "huge.xml",
        _const(
            b"<report><t_person><first_name>" + b"A" * TEN_MB + b"</first_name><last_name>X"
            b"</last_name><birthdate>1980-01-01</birthdate></t_person></report>\n"
        ),
        (Expect("given_name", "invalid_format", _TOO_LONG),),
    ),
    Case(
        "csv-invalid-utf8",
        "bad-utf8.csv",
        _const(CSV_HEADER + b"r1,person,Jos\xe9 Garc\xeda,1980-01-01\n"),
        (Expect("<row>", "broken_row", "row is not UTF-8", 2),),
    ),
    Case(
        "csv-invalid-utf8-header",
        "bad-header.csv",
        _const(b"local_ref,t\xffpe,name\nr1,person,x\n"),
        (Expect("<row>", "broken_row", "header is not UTF-8", 1),),
    ),
    Case(
        "csv-huge-field",
        "huge.csv",
        _const(CSV_HEADER + b"r1,person," + b"A" * TEN_MB + b",1980-01-01\n"),
        (Expect("<row>", "broken_row", "row cannot be parsed as CSV", 2),),
    ),
    Case(
        "csv-huge-field-under-csv-limit",
        "long.csv",
        _const(CSV_HEADER + b"r1,person," + b"A" * 100_000 + b",1980-01-01\n"),
        (Expect("name", "invalid_format", _TOO_LONG, 2),),
    ),
    Case(
        "csv-million-columns-row",
        "wide-row.csv",
        _const(CSV_HEADER + b"," * 999_999 + b"\n"),
        (Expect("<row>", "broken_row", "row has 1000000 fields, header has 4", 2),),
    ),
    Case(
        "csv-nul-byte",
        "nul.csv",
        _const(CSV_HEADER + b"r1,person,Jo\x00hn Smith,1980-01-01\n"),
        (Expect("name", "invalid_format", "value holds a NUL character", 2),),
    ),
    Case(
        "csv-key-over-store-limit",
        "ligatures.csv",
        _const(CSV_HEADER + b"r1,person," + "\ufdfa".encode() * 300 + b",1980-01-01\n"),
        (Expect("name", "key_encoding", "a match key would exceed 4096 bytes", 2),),
    ),
    Case(
        "jsonl-invalid-utf8",
        "bad-utf8.jsonl",
        _const(b'{"local_ref": "r1", "type": "person", "name": "Jos\xe9"}\n'),
        (Expect("<row>", "broken_row", "not valid JSON", 1),),
    ),
    Case(
        "jsonl-huge-field",
        "huge.jsonl",
        _const(
            b'{"local_ref": "r1", "type": "person", "birth_date": "1980-01-01", "name": "'
            + b"A" * TEN_MB
            + b'"}\n'
        ),
        (Expect("name", "invalid_format", _TOO_LONG, 1),),
    ),
    Case(
        "jsonl-nul-escape",
        "nul.jsonl",
        _const(
            b'{"local_ref": "r1", "type": "person", "name": "Jo\\u0000hn", '
            b'"birth_date": "1980-01-01"}\n'
        ),
        (Expect("name", "invalid_format", "value holds a NUL character", 1),),
    ),
    Case(
        "jsonl-deep-nesting",
        "deep.jsonl",
        _const(b"[" * 100_000 + b"]" * 100_000 + b"\n"),
        (Expect("<row>", "broken_row", "JSON nested too deeply", 1),),
    ),
    Case(
        "ftm-deep-nesting",
        "deep.ftm.json",
        _const(b'{"schema": "Person", "properties": ' + b"[" * 100_000 + b"]" * 100_000 + b"}\n"),
        (Expect("<row>", "broken_row", "JSON nested too deeply", 1),),
    ),
    Case(
        "ftm-property-not-a-list",
        "int.ftm.json",
        _const(b'{"id": "p1", "schema": "Person", "properties": {"name": 5}}\n'),
        (
            Expect(
                "properties",
                "invalid_format",
                "a property value is not a string or a list of strings",
                1,
            ),
        ),
    ),
    Case(
        "ftm-huge-field",
        "huge.ftm.json",
        _const(
            b'{"id": "p1", "schema": "Person", "properties": {"name": ["'
            + b"A" * TEN_MB
            + b'"], "birthDate": ["1980-01-01"]}}\n'
        ),
        (Expect("name", "invalid_format", _TOO_LONG),),
    ),
)


def _write(directory: Path, case: Case, lst: Listener) -> Path:
    path = directory / case.filename
    path.write_bytes(case.make(lst))
    return path


def _rejects(path: Path) -> list[dict[str, object]]:
    text = path.read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines()]


def check_report(rejects: list[dict[str, object]], file_arg: str, case: Case) -> None:
    assert rejects, f"{case.name}: empty reject report"
    for r in rejects:
        assert set(r) == {"file", "line", "record", "field", "code", "reason"}
        assert r["file"] == file_arg
        assert r["record"] and r["field"] and r["reason"]
    for want in case.expect:
        matching = [
            r
            for r in rejects
            if r["field"] == want.field
            and r["code"] == want.code
            and want.reason in str(r["reason"])
        ]
        assert matching, f"{case.name}: no reject {want} in {rejects}"
        if want.line is not None:
            assert matching[0]["line"] == want.line, f"{case.name}: {matching[0]}"
    # The report never copies the rejected value.
    blob = json.dumps(rejects)
    assert "A" * 64 not in blob and "\\u0000" not in blob
    if case.secret_marker:
        assert case.secret_marker.decode() not in blob


# --- fiumatch ingest -------------------------------------------------------------------------


@dataclass
class Batch:
    """One run of the CLI over every hostile file (one interpreter start, not twenty)."""

    run: Run
    directory: Path
    connections: int


@pytest.fixture(scope="module")
def hostile_dir(tmp_path_factory: pytest.TempPathFactory, listener: Listener) -> Path:
    directory = tmp_path_factory.mktemp("hostile")
    for case in CASES:
        _write(directory, case, listener)
    return directory


@pytest.fixture(scope="module")
def ingest_batch(hostile_dir: Path, listener: Listener) -> Batch:
    before = listener.connections
    run = fiumatch(
        "ingest",
        "--no-progress",
        "--rejects",
        "rejects.jsonl",
        "--out",
        "subjects.jsonl",
        *[c.filename for c in CASES],
        cwd=hostile_dir,
        time_limit=BATCH_TIME_LIMIT,
    )
    return Batch(run, hostile_dir, listener.connections - before)


def test_case_files_are_distinct() -> None:
    assert len({c.filename for c in CASES}) == len(CASES)


def test_ingest_of_hostile_files_is_clean(ingest_batch: Batch) -> None:
    """No traceback, bounded time and memory, exit 1 (rejects), nothing loaded, no entity
    fetched."""
    run = ingest_batch.run
    assert_clean(run, "fiumatch ingest")
    assert run.code == 1, f"exit {run.code}\n{run.stderr[-1000:]}"
    assert (ingest_batch.directory / "subjects.jsonl").read_text(encoding="utf-8") == ""
    assert ingest_batch.connections == 0, "an external entity was fetched"


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_ingest_rejects_cleanly(case: Case, ingest_batch: Batch) -> None:
    assert not ingest_batch.run.traceback, ingest_batch.run.stderr[-2000:]
    rejects = [
        r for r in _rejects(ingest_batch.directory / "rejects.jsonl") if r["file"] == case.filename
    ]
    check_report(rejects, case.filename, case)


def test_million_column_header_line_loads_nothing(tmp_path: Path) -> None:
    """One line of a million columns (2 MB) is a header with no data rows: nothing to load,
    nothing to reject; the summary lists the one ignored column name, not a million."""
    (tmp_path / "wide.csv").write_bytes(b"x," * 1_000_000 + b"\n")
    run = fiumatch(
        "ingest",
        "--no-progress",
        "--rejects",
        "r.jsonl",
        "--out",
        "o.jsonl",
        "wide.csv",
        cwd=tmp_path,
    )
    assert_clean(run, "million-column header")
    assert run.code == 0
    assert (tmp_path / "o.jsonl").read_text() == "" and (tmp_path / "r.jsonl").read_text() == ""
    assert len(run.stdout) < 10_000


_ROWS = CSV_HEADER + b"r1,person,,\n"  # one record with an invalid (empty) name


def test_path_tricks_dot_dot_and_absolute(tmp_path: Path) -> None:
    """``../`` and absolute paths read the file they name; the report names it as given."""
    (tmp_path / "data").mkdir()
    (tmp_path / "work").mkdir()
    (tmp_path / "data" / "x.csv").write_bytes(_ROWS)
    for arg in ("../data/x.csv", str(tmp_path / "data" / "x.csv"), "../work/../data/./x.csv"):
        run = fiumatch(
            "ingest", "--no-progress", "--rejects", "r.jsonl", arg, cwd=tmp_path / "work"
        )
        assert_clean(run, arg)
        assert run.code == 1
        rejects = _rejects(tmp_path / "work" / "r.jsonl")
        # As given, in pathlib's spelling ('./' segments dropped, '..' kept).
        assert [(r["file"], r["line"], r["field"]) for r in rejects] == [
            (str(Path(arg)), 2, "name")
        ]


@pytest.mark.parametrize(
    "name",
    [
        "new\nline.csv",
        "tab\tcr\r.csv",
        "esc\x1b[31mred\x1b]0;title\x07.csv",
        "-dash.csv",
        "quote\"'.csv",
        "[bold]rich[/].csv".replace("/", "_"),
    ],
)
def test_path_tricks_control_characters_in_names(name: str, tmp_path: Path) -> None:
    """A file name with newlines, escape sequences or markup is reported exactly (JSON
    escapes it) and never reaches the terminal raw."""
    (tmp_path / name).write_bytes(_ROWS)
    arg = f"./{name}"
    run = fiumatch("ingest", "--no-progress", "--rejects", "r.jsonl", arg, cwd=tmp_path)
    assert_clean(run, repr(name))
    assert run.code == 1
    rejects = _rejects(tmp_path / "r.jsonl")
    assert [(r["file"], r["line"]) for r in rejects] == [(str(Path(arg)), 2)]


def test_path_tricks_symlinks(tmp_path: Path) -> None:
    """A symlink out of the directory to a regular file reads that file (the operator named
    it) and loads nothing of it; links to a device, a FIFO, a directory or nothing are
    refused with an error naming the file (exit 2) before anything is read."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.csv").write_bytes(b"password,hunter2\nroot,toor\n")
    work = tmp_path / "work"
    work.mkdir()
    (work / "escape.csv").symlink_to(outside / "secret.csv")
    run = fiumatch(
        "ingest",
        "--no-progress",
        "--rejects",
        "r.jsonl",
        "--out",
        "o.jsonl",
        "escape.csv",
        cwd=work,
    )
    assert_clean(run, "symlink out")
    assert run.code == 1 and (work / "o.jsonl").read_text() == ""
    assert "toor" not in (work / "r.jsonl").read_text()

    os.mkfifo(work / "fifo.csv")
    (work / "zero.csv").symlink_to("/dev/zero")
    (work / "dangling.csv").symlink_to(outside / "nothing.csv")
    (work / "dir.csv").mkdir()
    for name in ("fifo.csv", "zero.csv", "dangling.csv", "dir.csv", "missing.csv"):
        run = fiumatch("ingest", "--no-progress", "--rejects", "r.jsonl", name, cwd=work)
        assert_clean(run, name)
        assert run.code == 2 and name in run.stderr, (name, run.stderr)


@pytest.mark.parametrize("missing", [False, True], ids=["report-path", "missing-file"])
def test_path_tricks_rich_markup_in_paths(missing: bool, tmp_path: Path) -> None:
    """A path holding '[/b]' (here under a directory named 'x[') is printed as text: rich
    markup in it raised MarkupError, a traceback."""
    (tmp_path / "x[" / "b]").mkdir(parents=True)
    (tmp_path / "x[/b]" / "t.csv").write_bytes(_ROWS)
    name = "x[/b]/absent.csv" if missing else "x[/b]/t.csv"
    run = fiumatch("ingest", "--no-progress", "--rejects", "x[/b]/r.jsonl", name, cwd=tmp_path)
    assert_clean(run, name)
    assert run.code == (2 if missing else 1)
    assert (name in run.stderr) if missing else ("x[/b]/r.jsonl" in run.stdout)


# --- fiumatch node load ----------------------------------------------------------------------


@dataclass
class NodeDir:
    path: Path

    @property
    def database(self) -> Path:
        found = sorted(self.path.rglob("*.db"))
        assert len(found) == 1, found
        return found[0]

    def digest(self) -> tuple[str, str, int]:
        """SHA-256 over every row of subjects and match_keys, integrity_check, subject count."""
        con = sqlite3.connect(f"file:{self.database}?mode=ro", uri=True)
        try:
            h = hashlib.sha256()
            for table in ("subjects", "match_keys"):
                for row in con.execute(f"SELECT * FROM {table} ORDER BY 1, 2, 3"):
                    h.update(repr(row).encode())
            integrity = con.execute("PRAGMA integrity_check").fetchone()[0]
            count = con.execute("SELECT count(*) FROM subjects").fetchone()[0]
        finally:
            con.close()
        return h.hexdigest(), integrity, count


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> NodeDir:
    """A node made by ``fiumatch node init``, holding two subjects loaded beforehand."""
    root = tmp_path_factory.mktemp("hostile-node")
    run = fiumatch(
        "node", "init", "--dir", "node", "--node-id", "FIU-T", "--scrypt-log2n", "10", cwd=root
    )
    assert run.code == 0, run.stderr
    (root / "good.csv").write_bytes(
        CSV_HEADER + b"g1,person,John Smith,1980-01-01\ng2,person,Jane Doe,1975-05-06\n"
    )
    run = fiumatch("node", "load", "--dir", "node", "--no-progress", "good.csv", cwd=root)
    assert run.code == 0, run.stderr
    nd = NodeDir(root / "node")
    assert nd.digest()[1:] == ("ok", 2)
    return nd


def test_node_load_of_hostile_files_leaves_the_store_unchanged(
    node: NodeDir, hostile_dir: Path, listener: Listener
) -> None:
    """Each file is loaded in its own transaction; every record of every file is rejected,
    so the store must be byte for byte what it was, and intact."""
    before = node.digest()
    connections = listener.connections
    run = fiumatch(
        "node",
        "load",
        "--dir",
        str(node.path),
        "--no-progress",
        "--rejects",
        "load-rejects.jsonl",
        *[c.filename for c in CASES],
        cwd=hostile_dir,
        time_limit=BATCH_TIME_LIMIT,
    )
    assert_clean(run, "fiumatch node load")
    assert run.code == 1, f"exit {run.code}\n{run.stdout}{run.stderr[-1000:]}"
    assert "loaded 0 subjects" in run.stdout
    assert {r["file"] for r in _rejects(hostile_dir / "load-rejects.jsonl")} == {
        c.filename for c in CASES
    }
    assert node.digest() == before
    assert listener.connections == connections, "an external entity was fetched"


def test_node_load_reports_what_it_rejected(node: NodeDir, tmp_path: Path) -> None:
    (tmp_path / "nul.csv").write_bytes(CSV_HEADER + b"r1,person,Jo\x00hn,1980-01-01\n")
    run = fiumatch(
        "node", "load", "--dir", str(node.path), "--no-progress", "nul.csv", cwd=tmp_path
    )
    assert_clean(run, "nul.csv")
    assert run.code == 1
    assert "nul.csv" in run.stdout + run.stderr and "name" in run.stdout + run.stderr
    # By default the report goes inside the node directory, under a name the output gives.
    (report,) = [p for p in (node.path / "rejects").glob("load-*.jsonl") if p.name in run.stdout]
    assert [(r["file"], r["line"], r["field"]) for r in _rejects(report)] == [
        ("nul.csv", 2, "name")
    ]


@pytest.mark.parametrize("name", ["missing.csv", "dir.csv", "fifo.csv", "zero.csv"])
def test_node_load_refuses_what_is_not_a_regular_file(
    name: str, node: NodeDir, tmp_path: Path
) -> None:
    """Refused before anything is read (a FIFO would block, /dev/zero never end), even
    after a good file on the same command line: the store is unchanged."""
    (tmp_path / "dir.csv").mkdir()
    os.mkfifo(tmp_path / "fifo.csv")
    (tmp_path / "zero.csv").symlink_to("/dev/zero")
    (tmp_path / "new.csv").write_bytes(CSV_HEADER + b"n1,person,Nora New,1990-02-03\n")
    before = node.digest()
    run = fiumatch(
        "node", "load", "--dir", str(node.path), "--no-progress", "new.csv", name, cwd=tmp_path
    )
    assert node.digest() == before
    assert_clean(run, name)
    assert run.code == 2 and name in run.stderr
    assert not (tmp_path / "rejects.jsonl").exists()
