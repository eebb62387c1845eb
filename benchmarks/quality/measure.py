"""Answer-quality figures: retrieval (whole corpus and review only), notes probes, abstention, answers.

Usage (build an index of your own first; never point this at the app's data directory):

    ASSISTANT_DATA_DIR=/tmp/tune-data .venv/bin/assistant ingest
    ASSISTANT_DATA_DIR=/tmp/tune-data .venv/bin/python benchmarks/quality/measure.py [--set NAME=VALUE ...]
        [--show] [--json out.json]
    ... measure.py --sweep primary_boost=1.0,1.2,1.3,1.4   # one row per value, one process
    ... measure.py --calibrate                               # the min_relevance that maximises abstention F1

--set overrides a setting (`--set primary_boost=1.2 --set "fusion_weights=[0.5,1,1]"`). The review is primary
evidence only when its front matter says `evidence: primary`; to measure that without changing corpus/, copy
the corpus, add the line and point ASSISTANT_CORPUS_DIR at the copy before ingesting.

What is measured (deterministic for a given index and suite files):
* whole / review_only: hit@1, hit@3, hit@5 and MRR of the evidence over the top_k passages, for every
  answerable turn of evals/review.yaml and evals/adversarial.yaml (follow-ups asked with their history, as the
  evaluation runner does), over the whole corpus and with the review as a document filter;
* notes_probes: toolkit questions the review does not cover, passed when the right note is in the top 3;
* notes_suite: the same retrieval figures for evals/notes.yaml, whose evidence is in the notes (a check that
  preferring the review does not crowd the notes out);
* abstention: precision, recall and F1 of declining ("should decline" positive) over review, adversarial and
  out_of_scope; a question the service refuses (too long) counts as declined, as in the runner;
* keypoint_coverage (0 for an abstention on an answerable turn, as in the runner), and whether some cited
  sentence / the lead sentence holds an evidence snippet (answer_quotes_evidence / lead_quotes_evidence).
"""

from __future__ import annotations

import argparse
import json
import sys
from functools import lru_cache
from pathlib import Path

import assistant  # noqa: F401  (offline variables first)
from assistant.answering.extractive import Answer
from assistant.retrieval.conversation import standalone_query
from assistant.evaluation import metrics
from assistant.evaluation.suites import load_suites, turns_of
from assistant.service import AssistantService, QuestionError
from assistant.settings import PROJECT_ROOT, Settings

REVIEW = "review/co-production-and-quality-improvement-2020.md"
SUITES = ("review", "adversarial", "out_of_scope")
NOTES_SUITE = "notes"

# Toolkit questions the review does not cover, each with the notes one of which must be in the top 3:
# the same probes tests/test_retrieve.py holds the retriever to.
sys.path.insert(0, str(PROJECT_ROOT / "tests"))
from test_retrieve import NOTES_PROBES  # noqa: E402


def parse_value(value: str):
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        return value


def parse_overrides(pairs: list[str]) -> dict:
    return {name: parse_value(value) for name, _, value in (pair.partition("=") for pair in pairs)}


def cache_query_embeddings(service: AssistantService) -> None:
    """Configurations repeat the same questions: embed each once per process."""
    embedder = service.embedder
    if getattr(embedder, "_measure_cache", False):
        return
    embed = lru_cache(maxsize=8192)(embedder.embed_query)
    embedder.embed_query = lambda text: embed(text).copy()
    embedder._measure_cache = True


def suite_turns(suites) -> list:
    """(turn, earlier questions of its case) for every turn of the named suites that exist."""
    paths = [PROJECT_ROOT / "evals" / f"{name}.yaml" for name in suites]
    turns = []
    for case in load_suites([p for p in paths if p.exists()]):
        history: list[str] = []
        for turn in turns_of(case, case["_suite"]):
            turns.append((turn, list(history)))
            history.append(turn.question)
    return turns


def ask(service: AssistantService, question: str, history: list[str], document: str | None = None) -> Answer:
    """As the evaluation runner does: a refused question counts as an abstention with nothing retrieved."""
    try:
        return service.ask(question, history=history, document=document)
    except QuestionError as exc:
        return Answer(question=question, text=str(exc), abstained=True)


def first_hit(turn, answer: Answer) -> int | None:
    return metrics.first_hit_rank(turn.evidence, [(p.chunk.source, p.chunk.text) for p in answer.passages])


def quotes_evidence(answer: Answer, turn) -> tuple[bool, bool]:
    """(some cited sentence holds an evidence snippet, the lead sentence does)."""
    hits = [
        any(c.source == document and metrics.evidence_matches(snippet, c.quote) for document, snippet in turn.evidence)
        for c in answer.citations
    ]
    return any(hits), bool(hits and hits[0])


def rank_table(ranks: list[int | None]) -> dict:
    return {
        "hit@1": round(metrics.mean(r == 1 for r in ranks), 3),
        "hit@3": round(metrics.mean(r is not None and r <= 3 for r in ranks), 3),
        "hit@5": round(metrics.mean(r is not None and r <= 5 for r in ranks), 3),
        "mrr": round(metrics.mean(1 / r if r else 0.0 for r in ranks), 3),
        "turns": len(ranks),
    }


def answer_table(answered: list[tuple[Answer, object]]) -> dict:
    coverage = [0.0 if a.abstained else metrics.keypoint_coverage(a.text, t.key_points) for a, t in answered]
    quoted = [quotes_evidence(a, t) for a, t in answered]
    return {
        "keypoint_coverage": round(metrics.mean(coverage), 3),
        "answer_quotes_evidence": round(metrics.mean(q[0] for q in quoted), 3),
        "lead_quotes_evidence": round(metrics.mean(q[1] for q in quoted), 3),
    }


def measure(service: AssistantService, show: bool = False) -> dict:
    cache_query_embeddings(service)
    whole, review_only, decisions, answered = [], [], [], []
    for turn, history in suite_turns(SUITES):
        answer = ask(service, turn.question, history)
        decisions.append((turn.answerable, answer.abstained))
        if show and answer.abstained == turn.answerable:
            print(f"  {'declined' if answer.abstained else 'answered'} {turn.id}: {turn.question[:90]}")
        if not (turn.answerable and turn.evidence):
            continue
        answered.append((answer, turn))
        whole.append(first_hit(turn, answer))
        review_only.append(first_hit(turn, ask(service, turn.question, history, REVIEW)))
        if show and whole[-1] != 1:
            print(f"  rank {whole[-1]} (review only {review_only[-1]}) {turn.id}: {turn.question[:90]}")

    notes_ranks, notes_answered = [], []
    for turn, history in suite_turns((NOTES_SUITE,)):
        if turn.answerable and turn.evidence:
            answer = ask(service, turn.question, history)
            notes_ranks.append(first_hit(turn, answer))
            notes_answered.append((answer, turn))
            if show and (notes_ranks[-1] is None or notes_ranks[-1] > 3):
                print(f"  notes suite rank {notes_ranks[-1]} {turn.id}: {turn.question[:90]}")

    probes = 0
    for question, wanted in NOTES_PROBES:
        top = [p.chunk.source for p in service.ask(question).passages[:3]]
        probes += bool(wanted & set(top))
        if show and not wanted & set(top):
            print(f"  probe lost: {question} -> {top}")

    return {
        "whole": rank_table(whole),
        "review_only": rank_table(review_only),
        "notes_probes": f"{probes}/{len(NOTES_PROBES)}",
        "notes_suite": {**rank_table(notes_ranks), **answer_table(notes_answered)} if notes_ranks else None,
        "abstention": {k: round(v, 3) for k, v in metrics.abstention_scores(decisions).items()},
        **answer_table(answered),
    }


def calibrate_min_relevance(service: AssistantService, suites=SUITES + (NOTES_SUITE,)) -> dict:
    """The min_relevance that maximises abstention F1 ("should decline" is the positive class).

    Every turn is retrieved as the service would (follow-ups with their history) and declines when its
    relevance is below the threshold. F1 only changes at observed relevances, so the candidates are the
    midpoints between consecutive ones; the answer is the middle of the widest interval of thresholds that
    reach the best F1. Questions the service refuses outright (too long) never reach retrieval: left out.
    """
    cache_query_embeddings(service)
    retriever = service.retriever(service.index)
    observed = []
    for turn, history in suite_turns(suites):
        try:
            service.check_question(turn.question)
        except QuestionError:
            continue
        retrieval = retriever.retrieve(standalone_query(turn.question, history), top_k=service.settings.top_k)
        observed.append((turn.answerable, retrieval.relevance, turn.id))

    def scores(threshold: float) -> dict:
        return metrics.abstention_scores([(answerable, relevance < threshold) for answerable, relevance, _ in observed])

    values = sorted({relevance for _, relevance, _ in observed})
    f1 = [scores((a + b) / 2)["f1"] for a, b in zip(values, values[1:])]
    best = max(f1)
    # runs of consecutive intervals that reach the best F1: (first, last) interval index
    runs, start = [], None
    for i, value in enumerate(f1 + [None]):
        if value == best and start is None:
            start = i
        elif value != best and start is not None:
            runs.append((start, i - 1))
            start = None
    first, last = max(runs, key=lambda run: values[run[1] + 1] - values[run[0]])
    lower, upper = values[first], values[last + 1]
    threshold = (lower + upper) / 2
    rounded = round(threshold, 2)
    return {
        "turns": len(observed),
        "best_f1": round(best, 3),
        "f1_maximising_interval": [round(lower, 4), round(upper, 4)],
        "threshold": round(threshold, 4),
        "rounded": rounded,
        "at_rounded": {k: round(v, 3) for k, v in scores(rounded).items()},
        "at_current": {"min_relevance": service.settings.min_relevance, **{k: round(v, 3) for k, v in scores(service.settings.min_relevance).items()}},
        "wrong_at_rounded": sorted(i for answerable, relevance, i in observed if (relevance < rounded) == answerable),
    }


def summary_row(label: str, result: dict) -> str:
    whole, review, notes, abst = result["whole"], result["review_only"], result["notes_suite"] or {}, result["abstention"]
    return (
        f"{label:<28} whole {whole['hit@1']:.3f}/{whole['hit@5']:.3f}/{whole['mrr']:.3f}"
        f"  review-only {review['hit@1']:.3f}/{review['hit@5']:.3f}/{review['mrr']:.3f}"
        f"  probes {result['notes_probes']}  notes {notes.get('hit@1', 0):.2f}/{notes.get('hit@3', 0):.2f}"
        f"  abstain P/R/F1 {abst['precision']:.2f}/{abst['recall']:.2f}/{abst['f1']:.2f}"
        f"  keypoints {result['keypoint_coverage']:.3f}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", help="override a setting")
    parser.add_argument("--sweep", metavar="NAME=V1,V2,...", help="one summary row per value of one scalar setting")
    parser.add_argument("--calibrate", action="store_true", help="find the min_relevance that maximises abstention F1")
    parser.add_argument("--show", action="store_true", help="list misses, lost probes and wrong abstentions")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    overrides = parse_overrides(args.set)
    if args.calibrate:
        print(json.dumps(calibrate_min_relevance(AssistantService(Settings(**overrides))), indent=1))
        return 0
    if args.sweep:
        name, _, values = args.sweep.partition("=")
        results = {}
        for raw in values.split(","):
            results[raw] = measure(AssistantService(Settings(**{**overrides, name: parse_value(raw)})))
            print(summary_row(f"{name}={raw}", results[raw]), flush=True)
        if args.json:
            args.json.write_text(json.dumps(results, indent=1))
        return 0
    result = measure(AssistantService(Settings(**overrides)), show=args.show)
    print(json.dumps(result, indent=1))
    print(summary_row("result", result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
