"""The docs' tables that mirror code are checked against the code, and their links resolve.

Each test reads a table from README.md or docs/ and compares it with what the code actually
does: the settings config.py reads, the close codes, the state machine, the event types
logged, the HTTP and WebSocket routes, run statuses, agent knobs, worker loops. None needs
the database.
"""

from __future__ import annotations

import ast
import re
from collections import Counter
from pathlib import Path

import pytest
from django.core.management import get_commands
from django.urls import resolve

from agents_app import errors as agent_errors
from agents_app.models import RunStatus
from linnet_site.api import api
from sessions_app import errors as session_errors
from sessions_app import sockets
from sessions_app.models import transitions_markdown
from sessions_app.routing import websocket_urlpatterns as session_sockets
from sessions_app.worker import all_loops
from voice_app import errors as voice_errors
from voice_app.frames import CONTROL_TYPES
from voice_app.routing import websocket_urlpatterns as voice_sockets
from voice_app.selectors import WINDOW_EVENT_TYPES

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
README = ROOT / "README.md"
MARKDOWN = [README, *sorted(DOCS.glob("*.md"))]
APPS = ("sessions_app", "voice_app", "agents_app")

# The event types the public contract names; the code may log more, never fewer.
CONTRACT_EVENT_TYPES = frozenset(
    {
        "session.state",
        "service",
        "tone",
        "speaker",
        "transcript",
        "queue",
        "environ",
        "input_required",
        "run.started",
        "run.delta",
        "run.status",
        "run.done",
        "tone.feedback",
        "session.ended",
    }
)
EVENT_TYPE = re.compile(r"[a-z_]+(\.[a-z_]+)?")


def read(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def tables(text: str, header: str) -> list[list[str]]:
    """The cells of every Markdown table whose first line is exactly `header`, in order."""
    lines = text.splitlines()
    rows = []
    for start in (i for i, line in enumerate(lines) if line == header):
        for line in lines[start + 2 :]:
            if not line.startswith("|"):
                break
            rows.append([cell.strip() for cell in re.split(r"(?<!\\)\|", line.strip())[1:-1]])
    assert rows, f"no rows under a table headed {header!r}"
    return rows


def table(text: str, header: str) -> list[list[str]]:
    """The cells of the one Markdown table under `header`."""
    assert text.splitlines().count(header) == 1, f"expected exactly one table headed {header!r}"
    return tables(text, header)


def code_names(cell: str) -> list[str]:
    return re.findall(r"`([^`]+)`", cell)


def first_number(cell: str) -> float:
    match = re.search(r"\d[\d,_]*(\.\d+)?", cell)
    assert match, f"no number in {cell!r}"
    return float(match.group(0).replace(",", "").replace("_", ""))


def parse(path: Path) -> ast.Module:
    return ast.parse(read(path), filename=str(path))


def string(node: ast.AST) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def number(node: ast.AST) -> float | None:
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        return float(node.value)
    return None


def known_error_codes() -> set[str]:
    return {
        value
        for module in (session_errors, voice_errors, agent_errors)
        for name, value in vars(module).items()
        if name.isupper() and isinstance(value, str) and re.fullmatch(r"[a-z_]+", value)
    }


# --- configuration.md: the settings linnet_site/config.py reads ---------------------------


def config_reads() -> tuple[set[str], dict[str, float]]:
    """Every variable config.py reads from `env`, and the numeric default of each that has one.

    A name counts when it is passed right after `env` (`_read(env, "NAME", cast, default)`,
    `_url_or_none(env, "NAME")`, or any other helper called that way) or to a method of
    `env`; its default is the first number among the arguments after it. Any `AGENT_*` name
    in the module counts too, however it comes to be read.
    """
    names: set[str] = set()
    defaults: dict[str, float] = {}
    for node in ast.walk(parse(ROOT / "linnet_site" / "config.py")):
        if isinstance(node, ast.Constant) and re.fullmatch(r"AGENT_[A-Z0-9_]+", str(node.value)):
            names.add(node.value)
        if not isinstance(node, ast.Call):
            continue
        args = node.args
        for i, arg in enumerate(args[:-1]):
            name = string(args[i + 1])
            if isinstance(arg, ast.Name) and arg.id == "env" and name:
                names.add(name)
                numbers = [number(later) for later in args[i + 2 :] if number(later) is not None]
                if numbers:
                    defaults[name] = numbers[0]
        func = node.func
        if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and func.value.id == "env":
            if args and string(args[0]):
                names.add(string(args[0]))
    return names, defaults


def configuration_table() -> dict[str, str]:
    rows = tables(read(DOCS / "configuration.md"), "| variable | default | meaning |")
    documented: dict[str, str] = {}
    for row in rows:
        names = code_names(row[0])
        assert len(names) == 1, f"one variable per row: {row[0]!r}"
        assert names[0] not in documented, f"{names[0]} is listed twice"
        documented[names[0]] = row[1]
    return documented


def test_configuration_table_lists_exactly_the_variables_config_reads():
    read_by_config, _ = config_reads()
    assert {"DATABASE_URL", "REDIS_URL", "CF_VOICE_URL", "SESSION_IDLE_TTL_S"} <= read_by_config

    assert set(configuration_table()) == read_by_config


def test_configuration_table_gives_the_numeric_defaults_config_uses():
    _, defaults = config_reads()
    documented = configuration_table()
    assert defaults, "no numeric default found in config.py"

    for name, default in defaults.items():
        assert first_number(documented[name]) == default, f"{name}: the code's default is {default:g}"


# --- protocol.md ----------------------------------------------------------------------------


def test_protocol_embeds_the_state_machine_exactly_as_the_code_renders_it():
    text = read(DOCS / "protocol.md")
    begin, end = "<!-- transitions:begin -->\n", "<!-- transitions:end -->"

    assert text[text.index(begin) + len(begin) : text.index(end)] == transitions_markdown()


def test_close_codes_table_lists_exactly_the_socket_close_codes():
    constants = {value for name, value in vars(sockets).items() if name.startswith("CLOSE_")}
    rows = table(read(DOCS / "protocol.md"), "| code | meaning |")
    documented = [int(row[0]) for row in rows]

    assert len(documented) == len(set(documented)), "a close code is listed twice"
    assert set(documented) == constants


def test_audio_close_codes_are_socket_close_codes_with_known_error_codes():
    constants = {value for name, value in vars(sockets).items() if name.startswith("CLOSE_")}
    rows = table(read(DOCS / "protocol.md"), "| code | `error.code` | cause |")

    assert {int(row[0]) for row in rows} <= constants
    assert {name for row in rows for name in code_names(row[1])} <= known_error_codes()


def logged_event_types() -> dict[str, str]:
    """Event types the apps append to the log, with where each was found.

    Found as the `type=` of `events_append_one(...)` (a literal or a module constant), as
    `(type, data)` items of `events_append`, and the window types voice classifiers emit.
    """
    found = {name: "voice_app.selectors.WINDOW_EVENT_TYPES" for name in WINDOW_EVENT_TYPES}
    for app in APPS:
        for path in sorted((ROOT / app).rglob("*.py")):
            if "migrations" in path.parts:
                continue
            tree = parse(path)
            constants = {
                target.id: string(node.value)
                for node in tree.body
                if isinstance(node, ast.Assign) and string(node.value)
                for target in node.targets
                if isinstance(target, ast.Name)
            }
            where = str(path.relative_to(ROOT))
            for node in ast.walk(tree):
                if isinstance(node, ast.Call):
                    func = node.func
                    name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
                    if name != "events_append_one":
                        continue
                    for keyword in node.keywords:
                        if keyword.arg == "type":
                            value = keyword.value
                            type_ = string(value) or (constants.get(value.id) if isinstance(value, ast.Name) else None)
                            assert type_, f"{where}: events_append_one with a type this test cannot read"
                            found.setdefault(type_, where)
                elif isinstance(node, ast.Tuple) and len(node.elts) == 2:
                    type_, data = string(node.elts[0]), node.elts[1]
                    if type_ and EVENT_TYPE.fullmatch(type_) and isinstance(data, ast.Dict | ast.Name):
                        found.setdefault(type_, where)
    return found


def test_event_types_table_lists_every_type_the_code_logs_and_no_other():
    logged = logged_event_types()
    assert {"session.state", "session.ended", "run.done", "tone.feedback", "service"} <= set(logged)
    documented = [name for row in table(read(DOCS / "protocol.md"), "| type | data |") for name in code_names(row[0])]

    assert len(documented) == len(set(documented)), "an event type is listed twice"
    missing = set(logged) - set(documented)
    assert not missing, f"logged but not documented: {sorted((t, logged[t]) for t in missing)}"
    assert set(documented) == set(logged) | CONTRACT_EVENT_TYPES


def route_key(method: str, path: str) -> tuple[str, str]:
    return method.upper(), re.sub(r"\{[^}]*\}|<[^>]*>", "{}", path.split("?")[0])


def test_http_api_table_lists_exactly_the_api_routes():
    schema = api.get_openapi_schema(path_prefix="/api/")
    routes = {route_key(method, path) for path, operations in schema["paths"].items() for method in operations}
    documented = set()
    for row in table(read(DOCS / "protocol.md"), "| method, path | body → response |"):
        for name in code_names(row[0]):
            method, path = name.split(" ", 1)
            documented.add(route_key(method, path))

    assert {key for key in documented if key[1].startswith("/api/")} == routes
    for _method, path in documented - routes:
        resolve(path)


def test_websocket_table_lists_exactly_the_socket_routes():
    routes = {route_key("WS", "/" + str(pattern.pattern)) for pattern in [*session_sockets, *voice_sockets]}
    rows = table(read(DOCS / "protocol.md"), "| path | what |")

    assert {route_key("WS", code_names(row[0])[0]) for row in rows} == routes


def test_audio_text_frames_table_lists_the_frame_types_the_socket_takes():
    rows = table(read(DOCS / "protocol.md"), "| message | meaning |")
    documented = {re.search(r'"type": "(\w+)"', row[0]).group(1) for row in rows}

    assert documented == {*CONTROL_TYPES, "audio"}


# --- agents.md ------------------------------------------------------------------------------


def test_run_status_table_gives_exactly_the_run_state_machine():
    from agents_app.models import RUN_TRANSITIONS

    rows = table(read(DOCS / "agents.md"), "| status | may go to | meaning |")
    documented = {code_names(row[0])[0]: set(code_names(row[1])) for row in rows}

    assert [code_names(row[0])[0] for row in rows] == list(RunStatus.values)
    assert documented == {status: set(targets) for status, targets in RUN_TRANSITIONS.items()}


def test_run_error_tables_name_known_error_codes():
    text = read(DOCS / "agents.md")
    codes = {name for row in table(text, "| status | code | when |") for name in code_names(row[1])}
    codes |= {code_names(row[0])[0] for row in table(text, "| code | when |")}

    assert codes <= known_error_codes()


# --- operations.md and development.md -------------------------------------------------------


def test_worker_loops_table_lists_exactly_the_loops_a_worker_runs():
    rows = table(read(DOCS / "operations.md"), "| loop | every | one pass |")

    assert [code_names(row[0])[0] for row in rows] == [loop.name for loop in all_loops()]


def test_environment_of_the_tests_table_lists_the_variables_tests_and_bench_read():
    config_names, _ = config_reads()
    sources = [
        path
        for path in [*(ROOT / "tests").rglob("*.py"), *(ROOT / "bench").rglob("*.py")]
        if path.resolve() != Path(__file__).resolve()
    ]
    sources += [ROOT / "Makefile", ROOT / ".ci" / "run"]
    text = "\n".join(read(path) for path in sources if path.is_file())
    read_by_tests = set(re.findall(r"\bLINNET_[A-Z0-9_]+", text)) - config_names
    literal_defaults = dict(re.findall(r'environ\.get\(\s*"(LINNET_[A-Z0-9_]+)",\s*"([^"]*)"', text))
    rows = table(read(DOCS / "development.md"), "| variable | default | meaning |")
    documented = {code_names(row[0])[0]: row[1] for row in rows}

    assert set(documented) == read_by_tests
    for name, default in literal_defaults.items():
        assert f"`{default}`" in documented[name], f"{name}: the default in the code is {default!r}"


# --- every page: paths, commands, links -----------------------------------------------------


def test_make_run_and_make_test_open_the_readme():
    top = "\n".join(read(README).splitlines()[:20])

    assert "make run" in top
    assert "make test" in top


def test_files_named_in_the_readme_map_exist():
    folder = None
    checked = 0
    for line in read(README).splitlines():
        heading = re.match(r"\*\*(`([^`]+)`|[^*]+)\*\*", line)
        if heading:
            folder = heading.group(2) or ""
            continue
        if folder is None or not line.startswith("| `"):
            continue
        for name in code_names(line.split("|")[1]):
            assert (ROOT / folder / name).exists(), f"{folder}{name} is named in the README's map"
            checked += 1
    assert checked > 20


def test_repository_paths_named_in_the_docs_exist():
    top_level = ("linnet_site/", "sessions_app/", "voice_app/", "agents_app/", "templates/", "static/")
    top_level += ("tests/", "bench/", "docs/", ".ci/")
    for path in MARKDOWN:
        for name in code_names(read(path)):
            if name.startswith(top_level) and re.fullmatch(r"[\w./-]+", name) and "*" not in name:
                assert (ROOT / name).exists(), f"{path.name} names {name}, which does not exist"


def test_management_commands_named_in_the_docs_exist():
    commands = get_commands()
    for path in MARKDOWN:
        for command in re.findall(r"manage\.py (\w+)", read(path)):
            assert command in commands, f"{path.name} names `manage.py {command}`"


def heading_anchors(path: Path) -> set[str]:
    """GitHub's anchors for a page's headings (duplicates get -1, -2, ...)."""
    seen: Counter[str] = Counter()
    anchors = set()
    in_code = False
    for line in read(path).splitlines():
        if line.startswith("```"):
            in_code = not in_code
        match = None if in_code else re.match(r"#{1,6} (.+)", line)
        if match:
            slug = re.sub(r"[^\w\- ]", "", match.group(1).strip().lower()).replace(" ", "-")
            anchors.add(f"{slug}-{seen[slug]}" if seen[slug] else slug)
            seen[slug] += 1
    return anchors


@pytest.mark.parametrize("page", MARKDOWN, ids=lambda path: path.name)
def test_links_resolve_to_files_and_headings(page):
    for target in re.findall(r"\]\(([^)\s]+)\)", read(page)):
        if re.match(r"[a-z]+:", target):
            continue
        file_part, _, anchor = target.partition("#")
        linked = (page.parent / file_part).resolve() if file_part else page
        assert linked.exists(), f"{page.name} links to {target}, which does not exist"
        if anchor:
            assert anchor in heading_anchors(linked), f"{page.name} links to {target}: no such heading"
