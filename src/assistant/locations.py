"""Where the shipped files (corpus/, prompts/, evals/) and the default data folder are, for a source checkout or an installed wheel."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

DATA_DIR_ENV = "ASSISTANT_DATA_DIR"
APP_NAME = "co-production-assistant"  # the per-user data folder's name (a bare "assistant" would collide)
SHIPPED_PACKAGE = "_shipped"  # a wheel carries corpus/, prompts/ and evals/ here (see pyproject.toml)
# The shipped literature review's source id (its path under corpus/): the library credits it, the planner asks it.
REVIEW_SOURCE = "review/co-production-and-quality-improvement-2020.md"

# src/assistant/locations.py -> the checkout's root, when this file is in one.
_CHECKOUT = Path(__file__).resolve().parents[2]


def is_checkout(root: Path) -> bool:
    """A source checkout (editable install or app.py), not site-packages: the top-level folders are the truth."""
    return (root / "pyproject.toml").is_file() and (root / "corpus").is_dir()


def _installed_root() -> Path:
    root = files("assistant") / SHIPPED_PACKAGE
    # Wheels install unpacked, so this is a real folder; ingest needs one to walk.
    if not isinstance(root, Path) or not root.is_dir():
        raise RuntimeError(f"the package's corpus, prompts and evals are missing (looked in {root}); reinstall with `pip install .`")
    return root


IS_CHECKOUT = is_checkout(_CHECKOUT)
# The folder holding corpus/, prompts/ and evals/: the checkout's root, or their copy inside the installed package.
PROJECT_ROOT = _CHECKOUT if IS_CHECKOUT else _installed_root()


def default_data_dir() -> Path:
    """The checkout's own data/, or a per-user folder for an installed package: never the working directory."""
    if IS_CHECKOUT:
        return PROJECT_ROOT / "data"
    import platformdirs

    return Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))


def no_index_message(folder: Path) -> str:
    """What every "no index" message says: the folder looked in and the setting that points elsewhere."""
    return (
        f"no documents are indexed yet in {Path(folder).absolute()}; run `assistant ingest` to build the index there, "
        f"or set {DATA_DIR_ENV} to the data folder that holds one"
    )
