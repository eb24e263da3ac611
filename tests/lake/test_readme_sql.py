"""Every `lakemail sql` example in README.md's shell blocks runs as written (STYLE.md: keep docs true, or
test them), on a small lake: its flags through the CLI's own parser, its output through the same renderer."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from orchestration.cli import _parser
from orchestration.settings import Settings
from orchestration.sql import SqlError, parse_as_of, render, run_query
from resources.lake import LakeResource
from resources.landing import LandingResource
from stores.ingest import ingest
from tests.conftest import land
from tests.events_data import track

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_sql_examples() -> list[list[str]]:
    """The words after `lakemail sql` of each command in README.md's sh blocks (a quote left open goes on
    to the next line, as in the shell)."""
    commands: list[list[str]] = []
    for block in re.findall(r"```sh\n(.*?)```", README.read_text(), flags=re.S):
        pending = ""
        for line in block.splitlines():
            pending = f"{pending}\n{line}" if pending else line
            try:
                words = shlex.split(pending, comments=True)
            except ValueError:  # no closing quotation yet
                continue
            pending = ""
            if words[:2] == [".venv/bin/lakemail", "sql"]:
                commands.append(words[2:])
    return commands


def test_every_sql_example_of_the_readme_runs(
    settings: Settings, lake: LakeResource, landing: LandingResource
) -> None:
    for batch in range(4):  # `--as-of 3`: events at version 3
        land(settings, f"{batch}.ndjson", [track(f"m-{batch}", query="shoes"), b"{bad"])
        ingest(lake, landing)
    examples = readme_sql_examples()
    assert len(examples) >= 12  # the parse found them all (README has 12 today)
    failed, answers = [], {}
    for words in examples:
        args = _parser().parse_args(["sql", *words])
        try:
            frame = run_query(settings.lake_uri, args.query, parse_as_of(args.as_of))
            render(frame, args.format)
        except SqlError as error:
            failed.append(f"{args.query!r}: {error}")
        else:
            answers[args.query] = frame
    assert failed == []
    (shoes,) = [frame for query, frame in answers.items() if "shoes" in query]
    assert shoes.item() == 4  # the JSON text example matches what it says it does
