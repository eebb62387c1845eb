"""Versioned prompt templates: the files in prompts/, named NAME.vN.txt, with a system and a user section."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from string import Template

from assistant.settings import PROJECT_ROOT

PROMPTS_DIR = PROJECT_ROOT / "prompts"
_FILE = re.compile(r"^(?P<name>[\w-]+)\.v(?P<version>\d+)\.txt$")
_SECTION = re.compile(r"^=== (system|user) ===\s*$", re.MULTILINE)


class PromptError(RuntimeError):
    """A prompt file that is missing or malformed."""


@dataclass(frozen=True)
class Prompt:
    name: str
    version: int
    system: str
    user: str

    @property
    def label(self) -> str:
        return f"{self.name}.v{self.version}"

    def render(self, **values: object) -> tuple[str, str]:
        """(system, user) with $placeholders filled; a missing value is an error, not a silent blank."""
        try:
            return Template(self.system).substitute(values), Template(self.user).substitute(values)
        except KeyError as exc:
            raise PromptError(f"prompt {self.label} needs a value for ${exc.args[0]}") from None


def parse_prompt(name: str, version: int, text: str) -> Prompt:
    parts = _SECTION.split(text)
    # parts: [comments, "system", body, "user", body]
    sections = {parts[i]: parts[i + 1].strip("\n") for i in range(1, len(parts) - 1, 2)}
    if set(sections) != {"system", "user"}:
        raise PromptError(f"prompt {name}.v{version} needs one '=== system ===' and one '=== user ===' section")
    return Prompt(name, version, sections["system"].strip(), sections["user"].strip())


@lru_cache(maxsize=16)
def load_prompt(name: str, version: int | None = None, folder: Path = PROMPTS_DIR) -> Prompt:
    """The named prompt at `version`, or its highest version in the folder."""
    versions = {int(m["version"]): path for path in folder.glob(f"{name}.v*.txt") if (m := _FILE.match(path.name)) and m["name"] == name}
    if not versions:
        raise PromptError(f"no prompt named {name!r} in {folder}")
    chosen = version if version is not None else max(versions)
    if chosen not in versions:
        raise PromptError(f"prompt {name!r} has no version {chosen}; found {sorted(versions)}")
    return parse_prompt(name, chosen, versions[chosen].read_text(encoding="utf-8"))
