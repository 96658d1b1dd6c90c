"""What ``ae-lab --help`` lists: the groups a user chooses from, each option and each top-level
key with one line that says what it does.

The lines are read from where the options are, so there is no second list to keep: an option's
is the first sentence of the comment its file opens with (``conf/<group>/<option>.yaml``), a
top-level key's the first sentence of the comment above it in ``conf/config.yaml``. Hydra's help
template (``hydra.help.template`` in conf/hydra/default.yaml) calls the ``ae_lab_help`` resolver
for both lists.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

# groups that are not a user's choice: the jobs of experiment=report_* (set by the preset)
HIDDEN = ("report_job",)
# Hydra's own groups a user chooses from (ae_lab's options for them), with Hydra's default
HYDRA_GROUPS = {"hydra/launcher": "basic, one job after another"}
WIDTH = 90  # a description longer than this is cut at a word
KEY = re.compile(r"^([A-Za-z_][\w]*):")
# a sentence ends at a full stop before a space (not in "e.g. "), or at a colon ending a line
# (examples follow it)
SENTENCE_END = re.compile(r"(?<!e\.g)(?<!i\.e)\.(\s|$)|:$")


def first_sentence(lines: list[str]) -> str:
    """The first sentence of some comment lines (``@package`` lines dropped), cut to ``WIDTH``
    characters."""
    sentence = ""
    for line in lines:
        text = line.lstrip("#").strip()
        if text.startswith("@package"):
            continue
        end = SENTENCE_END.search(text)
        sentence = f"{sentence} {text[: end.start()] if end else text}".strip()
        if end or not text:
            break
    if len(sentence) > WIDTH:
        sentence = sentence[: WIDTH - 3].rsplit(" ", 1)[0] + "..."
    return sentence


def opening_comment(path: Path) -> list[str]:
    """The comment lines a file opens with."""
    lines = []
    for line in path.read_text().splitlines():
        if not line.startswith("#"):
            break
        lines.append(line)
    return lines


def _default_choices(config_dir: Path) -> dict[str, str | None]:
    """The groups of conf/config.yaml's defaults list, in its order, with their default."""
    defaults = yaml.safe_load((config_dir / "config.yaml").read_text()).get("defaults", [])
    return {k: v for entry in defaults if isinstance(entry, dict) for k, v in entry.items()}


def groups(config_dir: Path) -> str:
    """``group:`` then one ``  group=option  description`` line per option, default marked."""
    defaults = _default_choices(config_dir)
    names = [g for g in defaults if g not in HIDDEN and g != "hydra"]
    names += [g for g in HYDRA_GROUPS if (config_dir / g).is_dir()]
    blocks = []
    for group in names:
        options = sorted((config_dir / group).glob("*.yaml"))
        if not options:
            continue
        rows = [(f"{group}={p.stem}", first_sentence(opening_comment(p))) for p in options]
        width = max(len(choice) for choice, _ in rows)
        default = defaults.get(group, HYDRA_GROUPS.get(group))
        lines = [f"{group} (default: {default if default is not None else 'none'})"]
        lines += [f"  {choice:<{width}}  {text}".rstrip() for choice, text in rows]
        blocks.append("\n".join(lines))
    return "\n".join(blocks)


def keys(config_dir: Path) -> str:
    """One ``key  description`` line per top-level key of conf/config.yaml."""
    rows, comment = [], []
    for line in (config_dir / "config.yaml").read_text().splitlines():
        if line.startswith("#"):
            comment.append(line)
            continue
        match = KEY.match(line)
        if match and match[1] != "defaults":
            rows.append((match[1], first_sentence(comment)))
        comment = []
    width = max((len(k) for k, _ in rows), default=0)
    return "\n".join(f"  {k:<{width}}  {text}".rstrip() for k, text in rows)


def resolve(what: str) -> str:
    """The ``ae_lab_help`` resolver: ``groups`` or ``keys`` of the configs ae_lab runs with."""
    from ae_lab.config import location

    text = {"groups": groups, "keys": keys}[what](location.config_dir())
    return text.replace("$", "$$")  # Hydra fills the template in with string.Template
