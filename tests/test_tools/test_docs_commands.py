"""The commands quoted in README.md and docs/*.md still parse (issue #33).

Every quoted config builds (``Config.fromfile``, and every ``type`` in it resolves in a
registry, without building the model), every quoted tool accepts its quoted arguments
(its own argparse parser, run on them without running the tool), every quoted shell
script and ``python -m`` module exists, every quoted ``make`` target is in the Makefile
and every quoted ``pip install .[extra]`` names an extra of setup.py. A renamed flag, a
moved tool or a missing config then fails here instead of in a reader's shell.

Fenced ``bash``/``sh`` blocks are whole commands: the tool's parser must accept the
whole argument list (placeholders such as ``CKPT`` are just strings to it). Inline
`...` spans are often fragments (``tools/test.py --bf16``): there every quoted
``--flag`` must be one of the tool's options.
"""
from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import re
import runpy
import shlex
import sys
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import pytest

REPO = Path(__file__).resolve().parents[2]
DOCS = [REPO / 'README.md', *sorted((REPO / 'docs').glob('*.md'))]
SHELL_LANGS = {'bash', 'sh', 'shell', 'console'}
SCRIPT_RE = re.compile(r'^(?:\./)?((?:tools|demo)/[\w./-]+\.(?:py|sh))$')
CONFIG_RE = re.compile(r'(?<![\w/])(configs/[\w./-]+\.py)')
# config names quoted without their folder, e.g. `img2pose_r50.py` in README's list
BARE_CONFIG_RE = re.compile(r'^((?:img2pose|retina_img2pose|cascade_img2pose)_[\w.-]+\.py)$')
FENCE_RE = re.compile(r'^```(\w*)[^\n]*\n(.*?)^```', re.M | re.S)
INLINE_RE = re.compile(r'`([^`]+)`')
ENV_RE = re.compile(r'^[A-Z_][A-Z0-9_]*=')
# scripts quoted by their file name alone (`image_demo.py --onnx`), where that name is unique
_BY_NAME: Dict[str, List[Path]] = {}
for _path in [*(REPO / 'tools').rglob('*.py'), *(REPO / 'demo').rglob('*.py')]:
    _BY_NAME.setdefault(_path.name, []).append(_path)
BARE_SCRIPTS = {name: str(paths[0].relative_to(REPO)) for name, paths in _BY_NAME.items()
                if len(paths) == 1 and not name.startswith('_')}


class Command:
    def __init__(self, doc: Path, line: int, text: str, whole: bool):
        self.doc, self.line, self.text, self.whole = doc, line, text, whole
        self.tokens = shlex.split(text, comments=True)

    def where(self) -> str:
        kind = 'block' if self.whole else 'inline'
        return f'{self.doc.relative_to(REPO)}:{self.line} ({kind}) `{self.text}`'


def _line_of(text: str, pos: int) -> int:
    return text.count('\n', 0, pos) + 1


def extract_commands(doc: Path) -> Tuple[List[Command], List[Tuple[int, str]]]:
    """(commands, inline spans) of one markdown file."""
    text = doc.read_text()
    commands: List[Command] = []
    for m in FENCE_RE.finditer(text):
        if m.group(1) not in SHELL_LANGS:
            continue
        start = _line_of(text, m.start(2))
        lines = m.group(2).split('\n')
        i = 0
        while i < len(lines):
            line_no, cmd = start + i, lines[i]
            while cmd.rstrip().endswith('\\') and i + 1 < len(lines):
                i += 1
                cmd = cmd.rstrip()[:-1] + ' ' + lines[i].strip()
            i += 1
            if cmd.strip() and not cmd.lstrip().startswith('#'):
                commands.append(Command(doc, line_no, cmd.strip(), whole=True))
    # inline spans outside the fenced blocks (a span may wrap a line)
    blanked = FENCE_RE.sub(lambda m: '\n' * m.group(0).count('\n'), text)
    spans = []
    for m in INLINE_RE.finditer(blanked):
        span = ' '.join(m.group(1).split())
        spans.append((_line_of(blanked, m.start()), span))
        first = span.split(' ', 1)[0]
        if first in BARE_SCRIPTS and ' ' in span:
            span = BARE_SCRIPTS[first] + span[len(first):]
            first = BARE_SCRIPTS[first]
        if (first in ('python', 'make', 'bash', 'time') or SCRIPT_RE.match(first)
                or (first == 'pip' and 'install' in span)):
            try:
                commands.append(Command(doc, _line_of(blanked, m.start()), span, whole=False))
            except ValueError:      # not shell syntax: prose in backticks
                pass
    return commands, spans


def all_quotes():
    commands, spans = [], []
    for doc in DOCS:
        c, s = extract_commands(doc)
        commands += c
        spans += [(doc, line, span) for line, span in s]
    return commands, spans


COMMANDS, SPANS = all_quotes()


def strip_prefix(tokens: List[str]) -> List[str]:
    """Drop `VAR=value`, `time`, `python` and the like in front of the program."""
    tokens = list(tokens)
    while tokens and (ENV_RE.match(tokens[0]) or tokens[0] in ('time', 'env', 'bash', 'sh')
                      or re.match(r'^(?:\S*/)?python(?:3(?:\.\d+)?)?$', tokens[0])):
        if re.match(r'^(?:\S*/)?python', tokens[0]) and len(tokens) > 2 and tokens[1] == '-m':
            return tokens[1:]
        tokens.pop(0)
    return tokens


# --------------------------------------------------------------------------- parsers

class _ParserCaught(BaseException):
    def __init__(self, parser):
        super().__init__()
        self.parser = parser


_PARSERS: Dict[str, argparse.ArgumentParser] = {}
_ORIGINAL_PARSE_ARGS = argparse.ArgumentParser.parse_args


def tool_parser(script: str) -> argparse.ArgumentParser:
    """The first parser the script parses with, caught at its ``parse_args``: the script
    runs as ``__main__`` up to there (imports, parser set-up), no further."""
    if script in _PARSERS:
        return _PARSERS[script]
    path = REPO / script

    def catch(self, args=None, namespace=None):
        raise _ParserCaught(self)

    saved_argv, saved_path = sys.argv, list(sys.path)
    sys.argv = [str(path)]
    sys.path[:0] = [str(path.parent), str(REPO)]
    argparse.ArgumentParser.parse_args = catch
    try:
        runpy.run_path(str(path), run_name='__main__')
    except _ParserCaught as caught:
        _PARSERS[script] = caught.parser
    finally:
        argparse.ArgumentParser.parse_args = _ORIGINAL_PARSE_ARGS
        sys.argv, sys.path[:] = saved_argv, saved_path
    if script not in _PARSERS:
        raise AssertionError(f'{script} never called ArgumentParser.parse_args')
    return _PARSERS[script]


def parse_error(parser: argparse.ArgumentParser, argv: List[str]) -> Optional[str]:
    err = io.StringIO()
    abbrev, parser.allow_abbrev = parser.allow_abbrev, False   # a renamed --flag-x is not --flag
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            _ORIGINAL_PARSE_ARGS(parser, argv)
    except SystemExit as exc:
        if exc.code:
            return err.getvalue().strip().splitlines()[-1] if err.getvalue() else str(exc)
    finally:
        parser.allow_abbrev = abbrev
    return None


TOOL_COMMANDS = [c for c in COMMANDS
                 if strip_prefix(c.tokens) and SCRIPT_RE.match(strip_prefix(c.tokens)[0])]


def test_the_docs_quote_commands():
    """The extraction itself works (guards against a regex that silently finds nothing)."""
    scripts = {SCRIPT_RE.match(strip_prefix(c.tokens)[0]).group(1) for c in TOOL_COMMANDS}
    assert {'tools/test.py', 'tools/deployment/export_onnx.py', 'demo/image_demo.py',
            'tools/analysis_tools/benchmark.py'} <= scripts
    assert sum(c.whole for c in TOOL_COMMANDS) >= 20
    assert any(not c.whole for c in TOOL_COMMANDS)


def test_quoted_scripts_exist():
    missing = [c.where() for c in TOOL_COMMANDS
               if not (REPO / SCRIPT_RE.match(strip_prefix(c.tokens)[0]).group(1)).is_file()]
    # scripts named anywhere in the docs, e.g. `tools/analysis_tools/bench_render.py`
    for doc, line, span in SPANS:
        for token in span.split():
            m = SCRIPT_RE.match(token.rstrip(',.;:)'))
            if m and not (REPO / m.group(1)).is_file():
                missing.append(f'{doc.relative_to(REPO)}:{line} `{span}`')
    assert not missing, 'quoted scripts that do not exist:\n' + '\n'.join(missing)


def test_quoted_tools_accept_their_arguments():
    failures = []
    for cmd in TOOL_COMMANDS:
        tokens = strip_prefix(cmd.tokens)
        script = SCRIPT_RE.match(tokens[0]).group(1)
        if script.endswith('.sh') or not (REPO / script).is_file():
            continue        # shell scripts: existence and configs are checked elsewhere
        argv = tokens[1:]
        if not cmd.whole and not argv:
            continue        # a script named in prose (it may be a module, not a CLI)
        parser = tool_parser(script)
        if cmd.whole:
            error = parse_error(parser, argv)
            if error:
                failures.append(f'{cmd.where()}: {error}')
        else:
            known = parser._option_string_actions
            bad = [t.split('=')[0] for t in argv
                   if t.startswith('-') and t.split('=')[0] not in known
                   and not re.match(r'^-\d', t)]
            if bad:
                failures.append(f'{cmd.where()}: unknown option(s) {bad}')
    assert not failures, 'quoted tool commands the tools reject:\n' + '\n'.join(failures)


# --------------------------------------------------------------------------- make, -m, pip

def make_targets() -> set:
    return set(re.findall(r'^([\w.-]+)\s*:(?!=)', (REPO / 'Makefile').read_text(), re.M))


def test_quoted_make_targets_exist():
    targets = make_targets()
    assert {'setup', 'test', 'demo'} <= targets
    bad = []
    for cmd in COMMANDS:
        tokens = strip_prefix(cmd.tokens)
        if tokens and tokens[0] == 'make':
            bad += [f'{cmd.where()}: no target {t!r}' for t in tokens[1:]
                    if not t.startswith('-') and '=' not in t and t not in targets]
    assert not bad, '\n'.join(bad)


def test_quoted_python_modules_exist():
    bad = []
    for cmd in COMMANDS:
        tokens = strip_prefix(cmd.tokens)
        if len(tokens) > 1 and tokens[0] == '-m':
            if importlib.util.find_spec(tokens[1]) is None:
                bad.append(f'{cmd.where()}: no module {tokens[1]!r}')
    assert not bad, '\n'.join(bad)


def test_quoted_pip_extras_are_declared():
    setup_py = (REPO / 'setup.py').read_text()
    extras = set(re.findall(r"^\s*'([\w-]+)':", setup_py.split('extras_require', 1)[1], re.M))
    bad = []
    for doc, line, span in SPANS + [(c.doc, c.line, c.text) for c in COMMANDS if c.whole]:
        for m in re.finditer(r'(?:^|\s)(?:-e\s+)?[\w.]*\[([\w,-]+)\]', span):
            if 'pip' not in span:
                continue
            for extra in m.group(1).split(','):
                if extra not in extras:
                    bad.append(f'{doc.relative_to(REPO)}:{line} `{span}`: extra {extra!r}')
    assert not bad, 'pip extras not in setup.py:\n' + '\n'.join(bad)


# --------------------------------------------------------------------------- configs

def quoted_configs() -> Dict[str, str]:
    """config path -> where it is first quoted."""
    found: Dict[str, str] = {}
    for cmd in COMMANDS:
        for m in CONFIG_RE.finditer(cmd.text):
            found.setdefault(m.group(1), cmd.where())
    for doc, line, span in SPANS:
        for m in CONFIG_RE.finditer(span):
            found.setdefault(m.group(1), f'{doc.relative_to(REPO)}:{line}')
        m = BARE_CONFIG_RE.match(span)
        if m and not list((REPO / 'tools').rglob(m.group(1))):
            found.setdefault(f'configs/{m.group(1)}', f'{doc.relative_to(REPO)}:{line}')
    return found


# types that are not registry names: mmcv op names read by getattr(mmcv.ops, type)
NON_REGISTRY_TYPES = {'nms', 'soft_nms', 'RoIAlign'}


def unresolved_types(cfg) -> List[str]:
    from mmdet import registry as mmdet_registry
    from mmengine.registry import Registry
    registries = [r for r in vars(mmdet_registry).values() if isinstance(r, Registry)]
    missing = []

    def walk(node, path):
        if isinstance(node, dict):
            kind = node.get('type')
            if isinstance(kind, str) and kind not in NON_REGISTRY_TYPES:
                if not any(r.get(kind) is not None for r in registries):
                    missing.append(f'{path}.type={kind}')
            for key, value in node.items():
                walk(value, f'{path}.{key}')
        elif isinstance(node, (list, tuple)):
            for i, value in enumerate(node):
                walk(value, f'{path}[{i}]')

    walk(cfg.to_dict() if hasattr(cfg, 'to_dict') else dict(cfg), 'cfg')
    return missing


def test_quoted_configs_build():
    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    import img2pose_mm  # noqa: F401  (registers the components)

    init_default_scope('mmdet')
    configs = quoted_configs()
    assert 'configs/img2pose_r18.py' in configs and len(configs) >= 10
    failures = []
    for path, where in sorted(configs.items()):
        if not (REPO / path).is_file():
            failures.append(f'{where}: {path} does not exist')
            continue
        try:
            cfg = Config.fromfile(str(REPO / path))
        except Exception as exc:    # noqa: BLE001  (report every config, not the first)
            failures.append(f'{where}: {path} does not load: {exc!r}')
            continue
        missing = unresolved_types(cfg)
        if missing:
            failures.append(f'{where}: {path}: types no registry knows: {missing}')
    assert not failures, '\n'.join(failures)


@pytest.mark.parametrize('path', ['configs/img2pose_r18.py'])
def test_config_check_sees_a_wrong_type(path):
    """The registry walk is not vacuous: a misspelt type is reported."""
    from mmengine.config import Config

    import img2pose_mm  # noqa: F401

    cfg = Config.fromfile(str(REPO / path))
    assert unresolved_types(cfg) == []
    cfg.model.neck.type = 'FoldedFPNX'
    assert unresolved_types(cfg) == ['cfg.model.neck.type=FoldedFPNX']
