"""What README.md and docs/*.md name exists in the code.

A doc that names a constant, a command, an option, a script or a file a user
would type or look up is wrong the day that thing is renamed; these tests find
it. They read the docs' backticked spans and code blocks (fenced or indented),
and their links:

- constants: an UPPER_CASE name written alone (`NAME`, `NAME = 4`, `PREFIX_*`)
  or dotted (`engine.NAME`, zoomreel.x.NAME) is defined at module level in the
  named zoomreel module or, if it moved, in any zoomreel module; a value the doc
  gives with it (`NAME` = 4, = 90%) is the code's value;
- dotted names (`engine.arith.sum_last`, `fused.check`) resolve the same way;
- `ZOOMREEL_*` environment variables are read by the package, its tests or scripts;
- `zoomreel <command> --option`: the command exists and its --help shows the
  option;
- `python benchmarks/x.py --option`, `bash benchmarks/x.sh`: the script exists
  and its source names the option;
- repository paths (docs/x.md, tests/test_x.py::test_y, relative links and
  their #anchors) exist.

No training: only the CLI's command tree and module sources are read.
"""

from __future__ import annotations

import ast
import importlib
import re
import shlex
from functools import lru_cache
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from zoomreel.cli import app


ROOT = Path(__file__).resolve().parent.parent
PKG = ROOT / "zoomreel"
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

# Names the docs write that are deliberately not ours; each with why.
NOT_OURS = {
    "JAX_COMPILATION_CACHE_DIR": "JAX's own cache setting, which zoomreel leaves to the user",
    "XLA_FLAGS": "XLA's environment variable (a benchmark sets host devices with it)",
    "XDG_CACHE_HOME": "the XDG base directory that locates ~/.cache",
    "RAY_AUTH_TOKEN": "Ray's token authentication",
    "RAY_AUTH_MODE": "Ray's token authentication",
    "OMP_NUM_THREADS": "OpenMP's thread count, which Ray sets for its tasks",
    "CUDA_VISIBLE_DEVICES": "CUDA's device selection, which Ray sets for its tasks",
    "HYPERS": "what a user's Python module defines (zoomreel.pymodule reads it)",
    "OPTIMIZER": "what a user's Python module defines (zoomreel.pymodule reads it)",
    "CRITERION": "what a user's Python module defines (zoomreel.pymodule reads it)",
}

# Top-level folders whose paths the docs name as files of this repository.
REPO_DIRS = ("zoomreel", "docs", "tests", "benchmarks", "scripts", "keyframes", ".ci")
FILE_EXT = (".py", ".md", ".toml", ".json", ".png", ".npy", ".mp4", ".sh", ".html", ".js", ".css", ".txt")


# --- reading the docs --------------------------------------------------------


def _split(text: str) -> tuple[list[str], list[str], str]:
    """(code block lines, inline code spans, prose with code blocks blanked)."""
    lines = text.split("\n")
    code, prose = [], []
    fence = None
    prev_blank, in_indented, list_context = True, False, False
    for line in lines:
        s = line.strip()
        if fence is not None:
            if s.startswith(fence):
                fence = None
            else:
                code.append(line)
            prose.append("")
            continue
        m = re.match(r"\s*(```+|~~~+)", line)
        if m:
            fence = m.group(1)
            prose.append("")
            in_indented = False
            continue
        indented = line.startswith("    ") or line.startswith("\t")
        if indented and s and (in_indented or (prev_blank and not list_context)):
            code.append(line)
            prose.append("")
            in_indented = True
            continue
        in_indented = in_indented and not s
        if s:
            list_context = bool(re.match(r"\s*([-*+]|\d+\.)\s", line)) or (list_context and line.startswith(" "))
        prose.append(line)
        prev_blank = not s
    body = "\n".join(prose)
    spans = [re.sub(r"\s+", " ", m.group(2)).strip() for m in re.finditer(r"(`+)(.+?)\1", body, re.S)]
    return code, spans, body


@lru_cache(maxsize=None)
def doc(path: Path):
    return _split(path.read_text())


def _commands(code: list[str], spans: list[str]) -> list[str]:
    """Shell lines: each code line and each span, comments dropped."""
    joined = re.sub(r"\\\n\s*", " ", "\n".join(code)).split("\n")  # continuation lines
    out = []
    for piece in [*joined, *spans]:
        piece = re.split(r"(?:^|\s)#", piece, maxsplit=1)[0]
        for part in re.split(r"&&|;|\|", piece):
            if part.strip():
                out.append(part.strip())
    return out


def _tokens(cmd: str) -> list[str]:
    try:
        return shlex.split(cmd)
    except ValueError:
        return cmd.split()


def _flags(args: list[str]) -> list[str]:
    """The long options among a command's arguments, `[--json]` and `--size=N` included."""
    return [m.group(1) for m in (re.match(r"\[?(--[a-z][\w-]*)", a) for a in args) if m]


def _label(path: Path) -> str:
    return str(path.relative_to(ROOT))


# --- the code ----------------------------------------------------------------


@lru_cache(maxsize=None)
def modules() -> dict[str, Path]:
    """Every zoomreel module's dotted name and its file."""
    out = {}
    for f in sorted(PKG.rglob("*.py")):
        parts = list(f.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = f
    return out


def _top_level(body):
    for node in body:
        if isinstance(node, (ast.If, ast.Try, ast.With)):
            yield from _top_level(node.body)
            yield from _top_level(getattr(node, "orelse", []))
            for h in getattr(node, "handlers", []):
                yield from _top_level(h.body)
            yield from _top_level(getattr(node, "finalbody", []))
        else:
            yield node


@lru_cache(maxsize=None)
def defined(module: str) -> frozenset[str]:
    """Names a module defines or imports at its top level (read, not imported)."""
    names = set()
    tree = ast.parse(modules()[module].read_text())
    for node in _top_level(tree.body):
        targets = []
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, (ast.AnnAssign, ast.AugAssign)):
            targets = [node.target]
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
        for t in targets:
            for n in ast.walk(t):
                if isinstance(n, ast.Name):
                    names.add(n.id)
    return frozenset(names)


def module_short_names() -> set[str]:
    """What a doc may start a dotted name with: `zoomreel`, `engine`, `fused`, ..."""
    return {part for m in modules() for part in m.split(".")}


def _named_modules(prefix: list[str]) -> list[str]:
    """zoomreel modules whose dotted name ends with ``prefix``."""
    want = ".".join(prefix)
    return [m for m in modules() if m == want or m.endswith("." + want)]


def resolve(dotted: str) -> tuple[bool, str | None]:
    """Whether a doc's `a.b.NAME` exists; and the module that holds NAME."""
    parts = dotted.split(".")
    name = parts[-1]
    for cut in range(len(parts) - 1, 0, -1):
        for m in _named_modules(parts[:cut]):
            rest = parts[cut:]
            if rest[0] not in defined(m):
                continue
            if len(rest) == 1:
                return True, m
            obj = importlib.import_module(m)
            try:
                for a in rest:
                    obj = getattr(obj, a)
                return True, None
            except AttributeError:
                continue
    holders = [m for m in modules() if name in defined(m)]
    return bool(holders), (holders[0] if holders else None)


def value_of(module: str, name: str):
    return getattr(importlib.import_module(module), name)


@lru_cache(maxsize=None)
def cli_help(*args: str) -> str | None:
    """`zoomreel ARGS --help` as a user reads it (wide, no colour); None if it fails."""
    r = CliRunner().invoke(app, [*args, "--help"], env={"COLUMNS": "200", "NO_COLOR": "1", "TERM": "dumb"},
                           terminal_width=200)
    return r.output if r.exit_code == 0 else None


def cli_commands() -> list[str]:
    return sorted(typer.main.get_command(app).commands)


def options(command: str) -> set[str]:
    """The long options `zoomreel COMMAND --help` shows."""
    return set(re.findall(r"--[a-z][\w-]*", cli_help(command) or ""))


@lru_cache(maxsize=None)
def python_source() -> str:
    """The repository's Python: the package, its tests, benchmarks and scripts."""
    return "\n".join(f.read_text() for d in ("zoomreel", "tests", "benchmarks", "scripts") for f in (ROOT / d).rglob("*.py"))


# --- what the docs name ------------------------------------------------------

CONST = r"[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)*(?:_\*)?"
WHOLE_CONST = re.compile(rf"^((?:[a-z_][a-z0-9_]*\.)*)({CONST})(?:\s*=\s*(\S+))?$")


def named_constants(path: Path) -> list[tuple[str, str, str | None]]:
    """(dotted prefix, NAME, value the doc gives or None) for each constant the doc names."""
    code, spans, prose = doc(path)
    out = []
    for s in spans:
        m = WHOLE_CONST.match(s)
        if m and (len(m.group(2)) >= 3 or m.group(1)):
            out.append((m.group(1).rstrip("."), m.group(2), m.group(3)))
    # `NAME` = 4 ulps, `NAME` = 90%: the value after the span
    for m in re.finditer(rf"`((?:[a-z_][a-z0-9_]*\.)*)({CONST})`\s*=\s*([0-9][0-9.e+-]*%?)", prose):
        out.append((m.group(1).rstrip("."), m.group(2), m.group(3)))
    # zoomreel.x.NAME anywhere, in prose or code
    for text in [prose, *code]:
        for m in re.finditer(rf"(?<![\w.])(zoomreel(?:\.[a-z_][a-z0-9_]*)*)\.({CONST})\b", text):
            out.append((m.group(1), m.group(2), None))
    return out


def test_docs_are_read():
    """The parser finds what the docs name (else every other test passes vacuously)."""
    found = [c for p in DOCS for c in named_constants(p)]
    assert len(found) >= 10, found
    assert any(c.startswith("zoomreel") for p in DOCS for c in _commands(*doc(p)[:2]))


@pytest.mark.parametrize("path", DOCS, ids=_label)
def test_named_constants_exist(path):
    wrong = []
    for prefix, name, value in named_constants(path):
        if name in NOT_OURS:
            continue
        shown = f"{prefix}.{name}" if prefix else name
        if name.startswith("ZOOMREEL_"):
            if not re.search(rf"[\"']{name}[\"']", python_source()):
                wrong.append(f"{shown}: nothing in the repository reads this environment variable")
            continue
        if name.endswith("_*"):
            stem = name[:-1]
            if not any(n.startswith(stem) for m in modules() for n in defined(m)):
                wrong.append(f"{shown}: no zoomreel module defines a name starting with {stem}")
            continue
        found, holder = resolve(f"{prefix}.{name}" if prefix else name)
        if not found:
            wrong.append(f"{shown}: defined in no zoomreel module")
            continue
        if value is not None and holder is not None and re.fullmatch(r"[0-9][0-9.e+-]*%?", value):
            want = float(value.rstrip("%")) / (100 if value.endswith("%") else 1)
            got = value_of(holder, name)
            if not isinstance(got, (int, float)) or abs(got - want) > 1e-12 * max(1.0, abs(want)):
                wrong.append(f"{shown}: the doc says {value}, the code ({holder}) has {got!r}")
    assert not wrong, f"{_label(path)} names constants the code does not have:\n" + "\n".join(wrong)


def named_dotted(path: Path) -> list[str]:
    """Dotted names of zoomreel objects in backticked spans: `engine.arith.sum_last`, `fused.check()`."""
    code, spans, prose = doc(path)
    short = module_short_names()
    out = []
    for s in spans:
        m = re.fullmatch(r"((?:[a-z_][a-z0-9_]*\.)+[A-Za-z_][A-Za-z0-9_]*)(?:\(.*\))?", s)
        if m:
            dotted = m.group(1)
            first = dotted.split(".")[0]
            if first in short and not dotted.endswith(FILE_EXT) and not re.search(r"\.[A-Z][A-Z0-9_]*$", dotted):
                out.append(dotted)
    return out


@pytest.mark.parametrize("path", DOCS, ids=_label)
def test_named_code_exists(path):
    wrong = [d for d in named_dotted(path) if not resolve(d)[0]]
    assert not wrong, f"{_label(path)} names code that does not exist: {wrong}"


def zoomreel_calls(path: Path) -> list[list[str]]:
    """Each `zoomreel ...` command line's tokens after `zoomreel`."""
    out = []
    for line in _commands(*doc(path)[:2]):
        toks = _tokens(line)
        for i, t in enumerate(toks):
            if re.fullmatch(r"(?:[\w./-]*/)?zoomreel", t) or (t == "zoomreel" and i >= 2 and toks[i - 1] == "-m"):
                rest = toks[i + 1 :]
                if rest and not rest[0].startswith("<"):
                    out.append(rest)
                break
    return out


@pytest.mark.parametrize("path", DOCS, ids=_label)
def test_named_commands_and_options_exist(path):
    wrong = []
    for rest in zoomreel_calls(path):
        name = rest[0]
        if name.startswith("-"):
            if name not in re.findall(r"--[a-z][\w-]*", cli_help()):
                wrong.append(f"zoomreel {name}: not an option of zoomreel")
            continue
        if cli_help(name) is None:
            wrong.append(f"zoomreel {name}: no such command (commands: {', '.join(cli_commands())})")
            continue
        have = options(name)
        for flag in _flags(rest[1:]):
            if flag not in have:
                wrong.append(f"zoomreel {name} {flag}: no such option")
    assert not wrong, f"{_label(path)}:\n" + "\n".join(wrong)


def script_calls(path: Path) -> list[tuple[str, list[str]]]:
    """(script path, its arguments) for `python x.py ...` and `bash x.sh ...`."""
    out = []
    for line in _commands(*doc(path)[:2]):
        toks = _tokens(line)
        for i, t in enumerate(toks[:-1]):
            runner = t.rsplit("/", 1)[-1]
            nxt = toks[i + 1]
            if re.fullmatch(r"python[0-9.]*|\$PYTHON|bash|sh", runner) and re.search(r"\.(py|sh)$", nxt):
                out.append((nxt, toks[i + 2 :]))
                break
    return out


@pytest.mark.parametrize("path", DOCS, ids=_label)
def test_named_scripts_and_options_exist(path):
    wrong = []
    for script, args in script_calls(path):
        f = ROOT / script
        if not f.is_file():
            wrong.append(f"{script}: no such file")
            continue
        src = f.read_text()
        for flag in _flags(args):
            forms = [flag] + ([flag.replace("--no-", "--", 1)] if flag.startswith("--no-") else [])
            if not any(re.search(rf"[\"']{re.escape(x)}[\"'=]", src) for x in forms):
                wrong.append(f"{script} {flag}: the script has no such option")
    assert not wrong, f"{_label(path)}:\n" + "\n".join(wrong)


def bare_options(path: Path) -> list[str]:
    """Spans that are only an option, as `--mode` or `--ray [ADDRESS]`."""
    return [s.split()[0].split("=")[0] for s in doc(path)[1] if re.match(r"--[a-z][\w-]*(?:[ =]|$)", s)]


@pytest.mark.parametrize("path", DOCS, ids=_label)
def test_named_options_exist_somewhere(path):
    """An option named alone is an option of some command or script."""
    known = set().union(*(options(c) for c in cli_commands()))
    sources = "\n".join(f.read_text() for d in ("benchmarks", "scripts") for f in (ROOT / d).glob("*.*"))
    wrong = [
        o
        for o in bare_options(path)
        if o not in known and not re.search(rf"[\"']{re.escape(o)}[\"'=]", sources) and not (
            o.startswith("--no-") and re.search(rf"[\"']--{re.escape(o[5:])}[\"'=]", sources)
        )
    ]
    assert not wrong, f"{_label(path)} names options no command or script has: {wrong}"


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    s = re.sub(r"[`*_]", "", heading.strip().lower())
    s = re.sub(r"[^\w\- ]", "", s)
    return s.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    code, spans, prose = doc(path)
    return {_slug(m.group(1)) for m in re.finditer(r"^#+\s+(.*)$", prose, re.M)}


PATH = re.compile(
    rf"(?<![\w./~$<-])((?:{'|'.join(re.escape(d) for d in REPO_DIRS)})/(?:[\w.-]+/)*[\w.-]*[\w])(::\w+)?(?![\w<*{{-])"
)


def named_paths(path: Path) -> list[tuple[str, str | None]]:
    """Repository paths the doc names, in prose or code, with a test name after ::."""
    code, spans, prose = doc(path)
    out = []
    for text in [prose, *code]:
        for m in PATH.finditer(text):
            out.append((m.group(1), m.group(2)[2:] if m.group(2) else None))
    return out


@pytest.mark.parametrize("path", DOCS, ids=_label)
def test_named_paths_exist(path):
    wrong = []
    for p, test in named_paths(path):
        f = ROOT / p
        if not f.exists():
            wrong.append(f"{p}: no such file or folder")
        elif test and not re.search(rf"^\s*def {re.escape(test)}\(", f.read_text(), re.M):
            wrong.append(f"{p}::{test}: no such test")
    assert not wrong, f"{_label(path)}:\n" + "\n".join(wrong)


@pytest.mark.parametrize("path", DOCS, ids=_label)
def test_links_resolve(path):
    """Relative links and images point at files that exist, and at headings they have."""
    code, spans, prose = doc(path)
    wrong = []
    for m in re.finditer(r"\]\(([^)\s]+)\)", prose):
        target = m.group(1)
        if re.match(r"[a-z]+:", target):
            continue
        file, _, anchor = target.partition("#")
        f = (path.parent / file).resolve() if file else path
        if not f.exists():
            wrong.append(f"{target}: no such file")
        elif anchor and f.suffix == ".md" and anchor not in anchors(f):
            wrong.append(f"{target}: {f.name} has no heading #{anchor}")
    assert not wrong, f"{_label(path)}:\n" + "\n".join(wrong)
