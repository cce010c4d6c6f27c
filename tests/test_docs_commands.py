"""Every command line the README and docs/ show still works.

The command lines are read from the ```bash blocks of README.md and docs/*.md, and from
inline code spans that start like a command of this project (`scan cluster ...`,
`dvc exp run ...`, `python -m flows ...`). The cheap ones run (`scan --help`,
`python -m flows.dvc_file --check`); the rest are parsed by the real parser of their tool
(this package's argparse parsers, DVC's own), and every `-S key=value` must be a params
key whose value the params schema accepts. A command whose tool the test does not know
fails, so a new kind of command in the docs needs a check here.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SEPARATORS = {"&&", "||", ";", "|", "&"}
# Tools outside this project whose lines are shown for completeness, not checked.
EXTERNAL = {"cd", "export", "git", "gto", "apt-get", "npm", "sudo"}
# Inline code that starts like one of these is a command line too.
INLINE_STARTS = ("scan ", "scan-predict ", "dvc exp run ", "python -m flows", "bash bench/", "python bench/", "make ")


def _bash_blocks(text: str) -> list[str]:
    return re.findall(r"^```(?:bash|sh|shell)\n(.*?)^```", text, flags=re.S | re.M)


def _inline_commands(text: str) -> list[str]:
    without_blocks = re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)
    spans = [" ".join(span.split()) for span in re.findall(r"`([^`]+)`", without_blocks)]  # may wrap lines
    # Synopses (`scan cluster IMAGES [--project DIR]...`) and placeholders (`<stage>`) are no command.
    return [span for span in spans if span.startswith(INLINE_STARTS)
            and not re.search(r"\[-|\.\.\.|<|\b[A-Z]{3,}\b(?!=)", span)
            and not re.fullmatch(r"scan (cluster|predict|layout)", span)]  # the name of a command, in prose


def _commands(tokens: list[str]) -> list[list[str]]:
    """One token list per simple command: split at ``&&``, ``;``, pipes; leading
    ``NAME=value`` environment assignments dropped."""
    commands, current = [], []
    for token in [*tokens, ";"]:
        if token in SEPARATORS:
            while current and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", current[0]):
                current.pop(0)
            if current:
                commands.append(current)
            current = []
        else:
            current.append(token)
    return commands


def _split(line: str) -> list[str]:
    lexer = shlex.shlex(line, posix=True, punctuation_chars=";&|")
    lexer.whitespace_split = True
    lexer.commenters = "#"
    return list(lexer)


def documented_commands() -> list[tuple[str, list[str]]]:
    found = []
    for path in DOCS:
        text = path.read_text()
        lines = [line for block in _bash_blocks(text) for line in block.splitlines()] + _inline_commands(text)
        for line in lines:
            for command in _commands(_split(line)):
                found.append((f"{path.relative_to(ROOT)}: {shlex.join(command)}", command))
    return found


COMMANDS = documented_commands()


def test_the_docs_show_commands_of_every_kind() -> None:
    """The extraction works: the README's two commands and the main kinds are found."""
    shown = {" ".join(command[:2]) for _, command in COMMANDS}
    assert {"make run", "make test", "scan cluster", "scan predict", "dvc exp", "python -m"} <= shown
    assert len(COMMANDS) > 40


# --- checks per tool -------------------------------------------------------------------------

def _params() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "params.yaml").read_text())


def check_overrides(pairs: list[str]) -> None:
    """``key=value`` pairs: known keys (``parse_overrides``), and params.yaml with them set
    passes the params schema."""
    from flows.experiment import parse_overrides
    from scan_core.config import validate_params

    raw = _params()
    for key, value in parse_overrides(pairs).items():
        if isinstance(value, str) and re.fullmatch(r"[A-Z]", value):
            continue  # a placeholder (`-S scan.entropy_weight=W`): the key is known, the value is the reader's
        group, name = key.split(".", 1)
        raw[group][name] = value
    validate_params(raw, "the docs' -S options")


def _parse(parser, argv: list[str]):
    try:
        return parser.parse_args(argv)
    except SystemExit as exit_:  # --help exits 0; a parse error exits 2
        assert exit_.code == 0, f"{parser.prog} {shlex.join(argv)}: exit {exit_.code}"
        return None


def check_scan(argv: list[str]) -> None:
    from flows import cli, layout, predict

    if argv and argv[0] in ("predict", "layout"):
        _parse((predict if argv[0] == "predict" else layout).build_parser(), argv[1:])
        return
    args = _parse(cli.build_parser(), argv)
    if args is not None and args.command == "cluster":
        options = cli.cluster_options(args)
        check_overrides([f"{key}={yaml.safe_dump(value).strip().removesuffix('...').strip()}"
                         for key, value in options.items() if key != "pretext.weights"])


def check_dvc(argv: list[str]) -> None:
    from dvc.cli import parse_args

    args = parse_args(argv)
    if argv[:2] == ["exp", "run"]:
        check_overrides(args.set_param or [])


def check_python_module(module: str, argv: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    if module == "flows.server":
        if argv:  # it runs the command that follows (alone: the name of the wrapper, in prose)
            check_command(argv, monkeypatch)
    elif module == "flows.dvc_file":
        # Without --check it rewrites dvc.yaml: check instead, which fails where a rewrite would change it.
        check = argv if "--check" in argv else [*argv, "--check"]
        result = subprocess.run([sys.executable, "-m", "flows.dvc_file", *check], cwd=ROOT, capture_output=True,
                                text=True, timeout=60)
        assert result.returncode == 0, result.stdout + result.stderr
    elif module in ("flows.predict", "flows.layout"):
        check_scan([module.split(".")[1], *argv])
    elif module == "flows":
        from tasks.stages import STAGES

        assert argv and argv[0] in (*STAGES, "pipeline"), argv
    elif module == "flows.experiment":
        import flows.experiment as experiment

        calls = []
        monkeypatch.setattr(experiment, "scan_experiment", lambda **kwargs: calls.append(kwargs))
        assert experiment.main(argv) == 0 and len(calls) == 1
        check_overrides([f"{key}={value}" for key, value in calls[0]["overrides"].items()])
    else:
        raise AssertionError(f"python -m {module}: no check for this module")


def check_make(argv: list[str]) -> None:
    targets = set(re.findall(r"^([A-Za-z_-]+):", (ROOT / "Makefile").read_text(), flags=re.M))
    assert argv and set(argv) <= targets, (argv, targets)


def check_bench(program: str, script: str) -> None:
    path = ROOT / script
    assert path.is_file(), script
    if program == "bash":
        subprocess.run(["bash", "-n", str(path)], check=True)
    else:
        compile(path.read_text(), str(path), "exec")


def check_pip(argv: list[str]) -> None:
    """``pip install ".[cpu]"``: the extras named exist."""
    import tomllib

    extras = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"])
    named = {extra for argument in argv for group in re.findall(r"\[([^\]]+)\]", argument)
             for extra in group.split(",")}
    assert argv[0] == "install" and named <= extras, (argv, extras)


def check_prefect(argv: list[str]) -> None:
    """The Prefect CLI's own parser is slow to import; the commands shown and the names they
    use (deployment, work pool) are checked against prefect.yaml."""
    deployment = yaml.safe_load((ROOT / "prefect.yaml").read_text())["deployments"][0]
    words = [word for word in argv if not word.startswith("-")]
    assert words[:2] in (["server", "start"], ["work-pool", "create"], ["deploy"], ["worker", "start"],
                         ["deployment", "run"]), argv
    if words[0] in ("work-pool", "worker"):
        assert deployment["work_pool"]["name"] in argv, argv
    if words[0] == "deployment":
        flow, name = words[2].split("/")
        assert name == deployment["name"] and flow == "scan-experiment", words[2]


def check_command(command: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    program, *argv = command
    if program in EXTERNAL:
        return
    if program == "scan":
        check_scan(argv)
    elif program == "scan-predict":
        check_scan(["predict", *argv])
    elif program == "python" and argv[:1] == ["-m"]:
        check_python_module(argv[1], argv[2:], monkeypatch)
    elif program in ("python", "bash") and argv and argv[0].startswith("bench/"):
        check_bench(program, argv[0])
    elif program == "dvc":
        check_dvc(argv)
    elif program == "make":
        check_make(argv)
    elif program == "pip":
        check_pip(argv)
    elif program == "prefect":
        check_prefect(argv)
    else:
        raise AssertionError(f"no check for {program!r}: add one to tests/test_docs_commands.py")


@pytest.mark.parametrize("command", [command for _, command in COMMANDS], ids=[name for name, _ in COMMANDS])
def test_documented_command_works(command: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    check_command(command, monkeypatch)


def test_scan_help_runs() -> None:
    result = subprocess.run([sys.executable, "-m", "flows.cli", "--help"], cwd=ROOT, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0 and "cluster" in result.stdout, result.stderr


def test_yaml_blocks_are_valid_params() -> None:
    """A ```yaml block of params (the pretrained-backbone recipe) names real keys with valid values."""
    from scan_core.config import validate_params

    blocks = [block for path in DOCS
              for block in re.findall(r"^```yaml\n(.*?)^```", path.read_text(), flags=re.S | re.M)]
    assert blocks
    for block in blocks:
        raw = _params()
        for group, values in yaml.safe_load(block).items():
            assert set(values) <= set(raw[group]), (group, values)
            raw[group].update(values)
        validate_params(raw, "a yaml block of the docs")


def test_check_rejects_an_unknown_key_and_a_bad_value() -> None:
    """The checks above can fail."""
    from scan_core.config import ParamsError

    with pytest.raises(ParamsError):
        check_dvc(["exp", "run", "-S", "scan.entropy_weigth=3"])
    with pytest.raises(ParamsError):
        check_dvc(["exp", "run", "-S", "scan.init=sideways"])
    with pytest.raises(AssertionError):
        check_scan(["cluster", "photos", "--no-such-option"])
