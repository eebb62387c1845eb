"""The `assistant eval` command: runs suites through the service, reports, compares and gates.

    assistant eval [SUITE ...] [--backend NAME] [--report DIR] [--baseline RUN.json]
                   [--fail-under METRIC=VALUE ...] [--judge BACKEND|none] [--no-progress]
    assistant eval import-feedback [--db FILE] [--out FILE] [--all]

SUITE is a suite name in evals/ (`review`, `notes` …) or a path to a YAML/JSONL suite; none means
every suite in evals/ (not evals/candidates/). `--fail-under` takes `METRIC=VALUE` or
`THEME:METRIC=VALUE` (e.g. `hit@5=0.9 abstention_f1=0.8 ebcd:hit@5=0.8`); put suite names before it.

Exit status: 0 when every gate holds, 1 when a gate fails (each failure names the metric, its value and
the floor), 2 for a usage problem (malformed suite, unknown metric, unreadable baseline, no index),
reported before anything is run.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from assistant.settings import PROJECT_ROOT

IMPORT_FEEDBACK = "import-feedback"
EVALS_DIR = PROJECT_ROOT / "evals"


def add_eval_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "eval",
        help="run evaluation suites (default: every suite in evals/); `eval import-feedback` turns feedback into candidate cases",
        description=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("suites", nargs="*", metavar="SUITE", help=f"suite names or files, or '{IMPORT_FEEDBACK}'")
    p.add_argument("--backend", default=None, help="answer backend (default: the configured one)")
    p.add_argument("--report", type=Path, metavar="DIR", help="write results.json, summary.md, report.html and junit.xml here")
    p.add_argument("--baseline", type=Path, metavar="RUN.json", help="an earlier results.json to compare with")
    p.add_argument(
        "--fail-under",
        nargs="+",
        action="extend",
        default=[],
        metavar="METRIC=VALUE",
        help="exit 1 when a figure is under its floor, e.g. hit@5=0.9 abstention_f1=0.8 ebcd:hit@5=0.8",
    )
    p.add_argument(
        "--judge",
        default=None,
        metavar="BACKEND",
        help="LLM backend that grades groundedness and relevance (default: the answer backend if it is an LLM; 'none' to skip)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--evals-dir", type=Path, default=EVALS_DIR, help=argparse.SUPPRESS)
    g = p.add_argument_group(f"{IMPORT_FEEDBACK} options")
    g.add_argument("--db", type=Path, metavar="FILE", help="feedback database (default: <data_dir>/feedback.sqlite3)")
    g.add_argument("--out", type=Path, metavar="FILE", help="candidate suite to write (default: evals/candidates/feedback-YYYYMMDD.yaml)")
    g.add_argument("--all", action="store_true", help="import every rating, not only thumbs-down")
    p.set_defaults(func=cmd_eval)


def _error(message: str) -> int:
    print(f"Error: {message}", file=sys.stderr)
    return 2


def cmd_eval(args, service=None) -> int:
    """Run the command; ``service`` lets tests and benchmarks pass an already-open AssistantService."""
    if args.suites[:1] == [IMPORT_FEEDBACK]:
        if len(args.suites) > 1:
            return _error(f"`eval {IMPORT_FEEDBACK}` takes no suite names (got {' '.join(args.suites[1:])})")
        return cmd_import_feedback(args, service)
    if IMPORT_FEEDBACK in args.suites:
        return _error(f"`{IMPORT_FEEDBACK}` must come straight after `eval`")
    stray = [flag for flag, value in (("--db", args.db), ("--out", args.out), ("--all", args.all)) if value]
    if stray:
        return _error(f"{', '.join(stray)} only apply to `assistant eval {IMPORT_FEEDBACK}`")
    return run_eval(args, service)


def run_eval(args, service=None) -> int:
    from assistant.evaluation import report
    from assistant.evaluation.answer_checks import RelevanceScorer
    from assistant.evaluation.baseline import BaselineError, GateError, check_gates, compare, load_run, parse_gate
    from assistant.evaluation.judge import judge_for
    from assistant.evaluation.runner import run_cases, summarise_cases
    from assistant.evaluation.suites import SuiteError, load_suites, suite_paths
    from assistant.service import BACKENDS, AssistantService, IndexMissing

    # Everything that can be wrong with the arguments is found before a single question is asked.
    try:
        gates = [parse_gate(text) for text in args.fail_under]
    except GateError as exc:
        return _error(str(exc))
    baseline = None
    if args.baseline is not None:
        try:
            baseline = load_run(args.baseline)
        except BaselineError as exc:
            return _error(str(exc))
    try:
        files = suite_paths(args.suites, args.evals_dir)
        cases = load_suites(files)
    except SuiteError as exc:
        return _error(str(exc))
    if not cases:
        return _error(f"no cases to run in {', '.join(str(f) for f in files) or args.evals_dir}")
    service = service or AssistantService()
    backend = args.backend or service.settings.backend
    if backend not in BACKENDS:
        return _error(f"unknown backend {backend!r}; available: {', '.join(BACKENDS)}")
    try:
        manifest = service.manifest()
        service.ensure_index()  # a missing index is reported before the run, not by every turn
    except IndexMissing as exc:
        return _error(str(exc))
    indexed = set(manifest.get("documents", {}))
    missing = sorted({d for c in cases for t in [c] + list(c.get("followups") or []) for d, _ in _evidence(t)} - indexed)
    for document in missing:
        print(f"Warning: evidence document {document!r} is not in the index; its turns will miss.", file=sys.stderr)

    judge, judge_status = judge_for(service, args.judge if args.judge is not None else backend)
    stamp = report.run_stamp(service, backend, files, cases, judge_status, PROJECT_ROOT)  # the index as the run starts
    started = time.perf_counter()
    relevance = RelevanceScorer(service)
    results = run_cases(service, cases, backend=backend, progress=not args.no_progress, judge=judge, relevance=relevance)
    stamp["duration_s"] = round(time.perf_counter() - started, 1)
    records = [r.to_dict() for r in results]
    summary = summarise_cases(records)
    results_doc = report.results_document(stamp, summary, records, judge_status, None, [], relevance.status)
    if baseline is not None:
        results_doc["comparison"] = compare(results_doc, baseline, str(args.baseline))
    results_doc["gates"] = check_gates(summary, gates)

    print(report.console_summary(results_doc))
    if args.report is not None:
        paths = report.write_reports(args.report, results_doc)
        print(f"\nReports: {', '.join(str(p) for p in paths.values())}")
    failed = [g for g in results_doc["gates"] if not g["passed"]]
    if results_doc["gates"]:
        print("\nGates:")
        for gate in results_doc["gates"]:
            print(f"  {gate['message']}")
    if failed:
        print(
            f"\n{len(failed)} gate(s) failed: "
            + "; ".join(
                f"{g['gate'].split('=')[0]} is {'not measured' if g['value'] is None else format(g['value'], '.4f')} (floor {g['floor']:g})"
                for g in failed
            ),
            file=sys.stderr,
        )
        return 1
    return 0


def _evidence(turn: dict) -> list[tuple[str, str]]:
    return [(e["document"], e["snippet"]) for e in turn.get("evidence") or [] if isinstance(e, dict)]


def cmd_import_feedback(args, service=None) -> int:
    from assistant.evaluation.feedback_import import FeedbackImportError, import_feedback

    if args.db is not None:
        db = args.db
    else:
        from assistant.settings import get_settings

        settings = service.settings if service is not None else get_settings()
        db = Path(settings.data_dir) / "feedback.sqlite3"
    try:
        result = import_feedback(db, args.evals_dir, out=args.out, include_all=args.all)
    except FeedbackImportError as exc:
        return _error(str(exc))
    kind = "ratings" if args.all else "thumbs-down ratings"
    print(f"Read {result.read} {kind} from {db}.")
    if result.skipped_duplicates:
        print(
            f"Skipped {len(result.skipped_duplicates)} whose question is already a case: rows {', '.join(map(str, result.skipped_duplicates))}."
        )
    if result.skipped_empty:
        print(f"Skipped {len(result.skipped_empty)} with no question: rows {', '.join(map(str, result.skipped_empty))}.")
    if result.path is None:
        print("No new candidate cases.")
    else:
        print(f"Wrote {result.written} candidate case(s) to {result.path}. Review them before moving them into a suite in evals/.")
    return 0
