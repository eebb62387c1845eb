"""The `assistant eval` command: runs suites through the service and prints the summary."""

from __future__ import annotations

import json
from assistant.settings import PROJECT_ROOT


def add_eval_parser(subparsers) -> None:
    p = subparsers.add_parser("eval", help="run evaluation suites (default: every suite in evals/)")
    p.add_argument("suites", nargs="*", help="suite names or files")
    p.add_argument("--backend", default=None)
    p.set_defaults(func=cmd_eval)


def cmd_eval(args) -> int:
    from assistant.evaluation.runner import run_cases, summarise
    from assistant.evaluation.suites import SuiteError, load_suites, suite_paths
    from assistant.service import AssistantService

    try:
        cases = load_suites(suite_paths(args.suites, PROJECT_ROOT / "evals"))
    except SuiteError as exc:
        print(f"Error: {exc}")
        return 2
    results = run_cases(AssistantService(), cases, backend=args.backend)
    print(json.dumps(summarise(results), indent=1))
    return 0
