"""The constitutional level and the process checks beyond parsing: each principle of the
default principles file on code that breaks it and code that keeps it, the score's arithmetic,
the principles file's validation, one ruff process per batch, and code never run."""

from __future__ import annotations

import subprocess
import textwrap
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from flywheel.errors import ConfigError
from tests.factories import generation
from tests.helpers.lake import land, query
from transforms import checks, lint
from transforms.policy import DEFAULT_POLICY
from transforms.principles import DEFAULT_PRINCIPLES, Principles, load_principles
from transforms.runner import run_transforms
from warehouse.lake import Lake

RULES = load_principles()

CASES = {
    # principle: (code that breaks it, code that keeps it)
    "hardcoded_secret": (
        'password = "hunter2"\n',
        'import os\n\npassword = os.environ["PASSWORD"]\n',
    ),
    "eval_exec": (
        "def run(text):\n    return eval(text)\n",
        "import ast\n\n\ndef run(text):\n    return ast.literal_eval(text)\n",
    ),
    "shell_injection": (
        "import subprocess\n\n\ndef ls(path):\n"
        '    return subprocess.run("ls " + path, shell=True)\n',
        'import subprocess\n\n\ndef ls(path):\n    return subprocess.run(["ls", path])\n',
    ),
    "sql_string_formatting": (
        "def find(cursor, uid):\n"
        '    return cursor.execute(f"SELECT * FROM users WHERE id = {uid}")\n',
        "def find(cursor, uid):\n"
        '    return cursor.execute("SELECT * FROM users WHERE id = ?", (uid,))\n',
    ),
    "swallowed_errors": (
        "def load(read):\n    try:\n        return read()\n    except:\n        pass\n",
        "def load(read):\n    try:\n        return read()\n    except OSError:\n"
        "        return None\n",
    ),
    "complexity": (
        "def grade(x):\n"
        + "".join(f"    if x == {i}:\n        return {i}\n" for i in range(12))
        + "    return -1\n",
        "def grade(x):\n    return x if 0 <= x < 12 else -1\n",
    ),
    "naming": (
        "class point:\n    pass\n",
        "class Point:\n    pass\n",
    ),
    "long_lines": (
        "values = [" + ", ".join(str(i) for i in range(40)) + "]\n",
        "values = list(range(40))\n",
    ),
}
"""A case per principle of the default file (a test checks that none is missing)."""

MORE_BREACHES = [
    # Other rules of the same principles.
    ("hardcoded_secret", 'def connect(db):\n    return db.login(user="a", password="s3cret")\n'),
    ("hardcoded_secret", 'def connect(token="abc123"):\n    return token\n'),
    ("eval_exec", "def run(code):\n    exec(code)\n"),
    ("shell_injection", "import os\n\n\ndef ls(path):\n    os.system('ls ' + path)\n"),
    ("sql_string_formatting", 'def q(t):\n    return "SELECT * FROM %s WHERE a = 1" % t\n'),
    (
        "swallowed_errors",
        "def load(read):\n    try:\n        return read()\n    except Exception:\n"
        "        return None\n",
    ),
    (
        "swallowed_errors",
        "def load(items, read):\n    for item in items:\n        try:\n            read(item)\n"
        "        except Exception:\n            continue\n",
    ),
    ("naming", "def Compute(x):\n    return x\n"),
    ("naming", "l = 1\n"),
]


def _check(code: str) -> checks.BlockCheck:
    [found] = checks.check_blocks([("python", code)], RULES)
    return found


def test_every_principle_of_the_default_file_has_a_case() -> None:
    assert sorted(CASES) == sorted(p.name for p in RULES.principle)


@pytest.mark.parametrize("principle", sorted(CASES))
def test_each_principle_is_broken_by_its_breach_and_kept_by_its_fix(principle: str) -> None:
    broken, kept = CASES[principle]
    breach, fix = checks.check_blocks([("python", broken), ("python", kept)], RULES)
    assert breach.compiled and breach.broken == (principle,)
    assert fix.compiled and fix.clean and fix.broken == ()


@pytest.mark.parametrize(("principle", "code"), MORE_BREACHES)
def test_each_rule_of_a_principle_counts(principle: str, code: str) -> None:
    assert _check(code).broken == (principle,)


def test_a_noqa_comment_does_not_excuse_a_breach() -> None:
    assert _check("def run(t):\n    return eval(t)  # noqa: S307\n").broken == ("eval_exec",)


def test_the_score_counts_each_principle_once_down_to_minus_one() -> None:
    assert RULES.score([]) == 1.0
    assert RULES.score(["long_lines"]) == pytest.approx(0.9)
    assert RULES.score(["swallowed_errors"]) == 0.0
    assert RULES.score(["eval_exec", "eval_exec"]) == -0.5  # once, however often
    assert RULES.score(["eval_exec", "swallowed_errors"]) == -1.0  # 1.25 of weight: at -1
    assert RULES.score(["naming", "long_lines", "complexity"]) == pytest.approx(0.2)


def test_the_score_is_exact_whatever_the_order() -> None:
    names = [p.name for p in RULES.principle if p.weight < 0.5]
    assert RULES.score(names) == RULES.score(list(reversed(names))) == 0.2


def test_a_response_scores_every_principle_its_blocks_break(tmp_path: Path) -> None:
    eval_block = CASES["eval_exec"][0]
    naming_block = CASES["naming"][0]
    events = [
        generation("two", text=f"```python\n{eval_block}```\nand\n```py\n{naming_block}```\n"),
        generation("clean", "m2", text=f"```python\n{CASES['eval_exec'][1]}```"),
        generation("broken", "m3", text="```python\ndef f(:\n```"),
        generation("json", "m4", text='```json\n{"a": 1}\n```'),
    ]
    land(Lake.in_data_dir(tmp_path), events)
    run_transforms(tmp_path)
    rows = {
        r[0]: r[1:]
        for r in query(
            tmp_path,
            "SELECT response_id, principles_broken, constitutional_score FROM code_checks",
        )
    }
    assert rows["two"] == (["eval_exec", "naming"], pytest.approx(1 - 2 * 0.85))
    assert rows["clean"] == ([], 1.0)
    # No Python that compiles: no evidence either way.
    assert rows["broken"] == ([], 0.0)
    assert rows["json"] == ([], 0.0)
    rewards = dict(query(tmp_path, "SELECT response_id, constitutional_score FROM rewards"))
    assert rewards["two"] == pytest.approx(-0.7)
    assert rewards["clean"] == 1.0


def test_the_total_weighs_the_level_with_the_policy(tmp_path: Path) -> None:
    policy = tmp_path / "policy.toml"
    text = DEFAULT_POLICY.read_text()
    policy.write_text(text.replace("constitutional = 0.15", "constitutional = 2.0"))
    code = CASES["eval_exec"][0]
    land(Lake.in_data_dir(tmp_path), [generation("r", text=f"```python\n{code}```")])
    run_transforms(tmp_path, policy_file=policy)
    [(process, constitutional, reward)] = query(
        tmp_path, "SELECT process_score, constitutional_score, reward FROM rewards"
    )
    # eval of a name is clean for the error rules: process 1; eval_exec: -0.5.
    assert (process, constitutional) == (1.0, -0.5)
    assert reward == pytest.approx(0.25 * 1.0 + 2.0 * -0.5)


# The process level beyond parsing.


@pytest.mark.parametrize(
    ("tag", "body", "parsed", "compiled", "clean"),
    [
        ("python", "x = 1\nprint(x)\n", True, True, True),
        ("python", "def f(:\n", False, False, False),
        ("python", "return 1\n", True, False, False),  # parses, does not compile
        ("python", "def f():\n    nonlocal y\n", True, False, False),
        ("python", "print(undefined_name)\n", True, True, False),  # F821
        ("python", "if 1 is 1:\n    pass\n", True, True, False),  # F632
        ("python", "x = 1\n\0\n", False, False, False),  # a null byte
        ("json", '{"a": [1, 2]}', True, False, False),
        ("json", '{"a": }', False, False, False),
        ("yaml", "a: 1\nb: [x, y]\n---\nc: d\n", True, False, False),
        ("yml", "a: [1\n", False, False, False),
        # The safe loader builds no Python objects: such a tag does not load.
        ("yaml", "!!python/object/apply:os.system ['true']\n", False, False, False),
        ("sql", "SELECT a, count(*) FROM t GROUP BY a;\nSELECT 1", True, False, False),
        ("sql", "SELEC a FROM t", False, False, False),
        ("sql", "-- only a comment", False, False, False),
    ],
)
def test_process_checks(tag: str, body: str, parsed: bool, compiled: bool, clean: bool) -> None:
    [found] = checks.check_blocks([(tag, body)], RULES)
    assert (found.parsed, found.compiled, found.clean) == (parsed, compiled, clean)


def test_the_process_level_weighs_three_checks_of_python_and_one_of_the_rest(
    tmp_path: Path,
) -> None:
    text = (
        "```python\nprint(undefined_name)\n```\n"  # parses, compiles, not clean: 2 of 3
        "```sql\nSELECT 1\n```\n"  # 1 of 1
        "```yaml\na: [1\n```\n"  # 0 of 1
    )
    land(Lake.in_data_dir(tmp_path), [generation("r", text=text)])
    run_transforms(tmp_path)
    [row] = query(tmp_path, f"SELECT {', '.join(checks.COUNTS)} FROM code_checks")
    assert dict(zip(checks.COUNTS, row, strict=True)) == {
        "code_blocks": 3,
        "python_blocks": 1,
        "python_parsed": 1,
        "python_compiled": 1,
        "python_clean": 0,
        "json_blocks": 0,
        "json_parsed": 0,
        "yaml_blocks": 1,
        "yaml_parsed": 0,
        "sql_blocks": 1,
        "sql_parsed": 1,
    }
    [(process, checked)] = query(tmp_path, "SELECT process_score, code_blocks_checked FROM rewards")
    assert checked == 3
    assert process == pytest.approx(2 * (2 / 3 + 1 + 0) / 3 - 1)


def test_code_is_never_run(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    python = f"open({str(marker)!r}, 'w').write('1')\n"
    sql = f"COPY (SELECT 1) TO '{marker}.csv'"
    found = checks.check_blocks([("python", python), ("sql", sql), ("yaml", "a: 1")], RULES)
    assert [f.parsed for f in found] == [True, True, True]
    assert not marker.exists() and not Path(f"{marker}.csv").exists()


# Batch linting: one ruff process per batch.


@pytest.fixture
def ruff_runs(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """The ruff command lines run (each still runs)."""
    runs: list[list[str]] = []
    real = subprocess.run

    def counting(command: list[str], **kwargs: Any) -> Any:
        if "--isolated" in command:
            runs.append(command)
        return real(command, **kwargs)  # noqa: S603 - the command under test

    monkeypatch.setattr(lint.subprocess, "run", counting)
    return runs


def test_a_build_lints_every_block_with_one_ruff_process(
    tmp_path: Path, ruff_runs: list[list[str]]
) -> None:
    events = [
        generation(f"r{i}", f"m{i}", text=f"```python\n{code}```")
        for i, code in enumerate(
            [*(case[0] for case in CASES.values()), *(case[1] for case in CASES.values())]
        )
    ]
    land(Lake.in_data_dir(tmp_path), events)
    run_transforms(tmp_path)
    assert len(ruff_runs) == 1
    [(broken,)] = query(
        tmp_path, "SELECT count(*) FROM code_checks WHERE len(principles_broken) > 0"
    )
    assert broken == len(CASES)


def test_spark_lints_once_per_arrow_batch(ruff_runs: list[list[str]]) -> None:
    from transforms.spark import _text_checks

    def batch(*texts: str) -> pa.RecordBatch:
        return pa.RecordBatch.from_pydict(
            {"text": list(texts), "response_ids": [[f"id{i}"] for i, _ in enumerate(texts)]}
        )

    codes = [f"```python\n{case[0]}```" for case in CASES.values()]
    out = list(_text_checks(iter([batch(*codes[:4]), batch(*codes[4:]), batch("no code")])))
    assert len(ruff_runs) == 2  # the batch without Python starts none
    scores = [s for b in out for s in b.column("constitutional_score").to_pylist()]
    assert scores == [RULES.score([name]) for name in CASES] + [0.0]


def test_linting_nothing_starts_no_process(ruff_runs: list[list[str]]) -> None:
    assert lint.lint([], RULES) == []
    assert ruff_runs == []


def test_the_ruff_command_is_isolated_and_selects_the_rules(tmp_path: Path) -> None:
    command = lint.command(RULES, tmp_path)
    for flag in ("--isolated", "--no-cache", "--ignore-noqa"):
        assert flag in command
    selected = command[command.index("--select") + 1].split(",")
    assert set(selected) == {*lint.ERROR_RULES, *RULES.rules}


def test_a_linter_that_fails_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lint, "ruff_binary", lambda: "false")
    with pytest.raises(ConfigError, match="ruff could not lint the code blocks"):
        lint.lint(["x = 1\n"], RULES)


# The principles file.


def _principles_file(tmp_path: Path, principles: str) -> Path:
    path = tmp_path / "principles.toml"
    header = "version = 1\n[linter]\nline_length = 88\nmax_complexity = 10\n"
    path.write_text(header + textwrap.dedent(principles))
    return path


@pytest.mark.parametrize(
    ("principles", "message"),
    [
        (
            """
            [[principle]]
            name = "a"
            description = ""
            rules = ["S105"]
            weight = 1
            [[principle]]
            name = "a"
            description = ""
            rules = ["S106"]
            weight = 1
            """,
            "two principles have the same name",
        ),
        (
            """
            [[principle]]
            name = "a"
            description = ""
            rules = ["S105"]
            weight = 1
            [[principle]]
            name = "b"
            description = ""
            rules = ["S105"]
            weight = 1
            """,
            "rule S105 is in two principles",
        ),
        (
            '[[principle]]\nname = "a"\ndescription = ""\nrules = ["s105"]\nweight = 1\n',
            "not a ruff rule code",
        ),
        (
            '[[principle]]\nname = "a"\ndescription = ""\nrules = ["S105"]\nweight = 1.5\n',
            "principle.0.weight",
        ),
    ],
)
def test_a_bad_principles_file_is_one_config_error(
    tmp_path: Path, principles: str, message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        load_principles(_principles_file(tmp_path, principles))


def test_the_digest_follows_the_content_not_the_comments(tmp_path: Path) -> None:
    text = DEFAULT_PRINCIPLES.read_text()
    commented = tmp_path / "commented.toml"
    commented.write_text("# another comment\n" + text)
    assert load_principles(commented).digest == RULES.digest
    changed = tmp_path / "changed.toml"
    changed.write_text(text.replace("version = 1", "version = 2"))
    assert load_principles(changed).digest != RULES.digest


def test_the_linter_settings_are_the_files(tmp_path: Path) -> None:
    strict = Principles.model_validate(
        {**RULES.model_dump(), "linter": {"line_length": 20, "max_complexity": 1}}
    )
    code = "def f(x):\n    if x:\n        return 1\n    return 2\n\n\nvalue = 'a long line'\n"
    assert _check(code).broken == ()
    [found] = checks.check_blocks([("python", code)], strict)
    assert found.broken == ("complexity", "long_lines")
