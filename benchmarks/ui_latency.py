"""Time to first streamed token and to the full answer through the chat UI (gradio_client streaming), p50/p95.

Usage:
  python benchmarks/ui_latency.py                 # serves the app in-process over the default data/ index
  python benchmarks/ui_latency.py --url http://127.0.0.1:7860/ [--auth user:pass]
  python benchmarks/ui_latency.py --users 16      # 16 simultaneous chat users, each with its own gradio_client
"""

from __future__ import annotations

import argparse
import json
import threading
import socket
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import assistant  # noqa: E402,F401  (offline variables before gradio and the hub client load)


def percentile(values: list[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    ordered = sorted(values)
    if not ordered:
        return 0.0
    position = (len(ordered) - 1) * q
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def questions(n: int) -> list[str]:
    import yaml

    cases = yaml.safe_load((ROOT / "evals" / "review.yaml").read_text(encoding="utf-8"))
    asked = [c["question"] for c in cases if c.get("answerable", True)][: max(0, n - 2)]
    out_of_scope = yaml.safe_load((ROOT / "evals" / "out_of_scope.yaml").read_text(encoding="utf-8"))
    return asked + [c["question"] for c in out_of_scope[: n - len(asked)]]


def _text(message: dict) -> str:
    content = message.get("content")
    if isinstance(content, list):
        return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return content or ""


def has_answer_text(chat: list[dict]) -> bool:
    """The last message is the assistant's answer (not the 'searching' placeholder) with some text."""
    if not chat:
        return False
    last = chat[-1]
    return last.get("role") == "assistant" and not (last.get("metadata") or {}).get("title") and bool(_text(last).strip())


def measure(url: str, items: list[str], auth=None) -> list[dict]:
    from gradio_client import Client

    client = Client(url, auth=auth, verbose=False)
    rows = []
    for question in items:
        client.predict(api_name="/clear")  # each question starts a new conversation
        started = time.perf_counter()
        first = None
        updates = 0
        job = client.submit(question, "", "", api_name="/ask")
        for output in job:
            updates += 1
            if first is None and has_answer_text(output[1]):
                first = time.perf_counter() - started
        job.result()
        total = time.perf_counter() - started
        rows.append({"question": question, "first_token_s": first if first is not None else total, "total_s": total, "updates": updates})
    return rows


def measure_users(url: str, items: list[str], users: int, auth=None) -> tuple[list[dict], list[str]]:
    """`users` clients start together (a barrier) and each asks its share of `items` in turn; rows and errors."""
    rows: list[dict] = []
    errors: list[str] = []
    lock = threading.Lock()
    barrier = threading.Barrier(users)

    def user(n: int) -> None:
        mine = [q for i, q in enumerate(items) if i % users == n] or items[n % len(items) : n % len(items) + 1]
        try:
            from gradio_client import Client

            Client(url, auth=auth, verbose=False)  # connect before the clock starts
            barrier.wait()
            got = measure(url, mine, auth)
            with lock:
                rows.extend(dict(r, user=n) for r in got)
        except Exception as exc:  # counted and printed: the benchmark reports errors rather than hiding them
            with lock:
                errors.append(f"user {n}: {type(exc).__name__}: {exc}")

    threads = [threading.Thread(target=user, args=(n,)) for n in range(users)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return rows, errors


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="a running UI; default: start one in-process")
    parser.add_argument("--auth", help="user:password for a UI that requires a login")
    parser.add_argument("-n", "--questions", type=int, default=20)
    parser.add_argument("--json", action="store_true", help="print per-question rows as JSON lines too")
    parser.add_argument("--users", type=int, default=1, help="simultaneous chat users (each asks its share of the questions)")
    args = parser.parse_args(argv)

    app = None
    url = args.url
    if not url:
        from assistant.service import AssistantService
        from assistant.faces.ui import build_app, serve, warm_up

        service = AssistantService()
        warm_up(service)
        app = build_app(service)
        _, url, _ = serve(app, "127.0.0.1", free_port(), prevent_thread_lock=True, quiet=True)
    auth = tuple(args.auth.split(":", 1)) if args.auth else None
    items = questions(args.questions)
    measure(url, items[:1], auth)  # one untimed warm-up round trip
    errors: list[str] = []
    if args.users > 1:
        rows, errors = measure_users(url, items, args.users, auth)
    else:
        rows = measure(url, items, auth)
    if app is not None:
        app.close()

    if args.json:
        for row in rows:
            print(json.dumps(row, ensure_ascii=False))
    first = [r["first_token_s"] * 1000 for r in rows]
    total = [r["total_s"] * 1000 for r in rows]
    print(f"UI latency over {len(rows)} questions, {args.users} simultaneous user(s) (gradio_client streaming via /ask, {url})")
    for error in errors:
        print(f"  ERROR {error}")
    if not rows:
        return 1
    print(f"  time to first streamed token: p50 {percentile(first, 0.5):7.0f} ms   p95 {percentile(first, 0.95):7.0f} ms   max {max(first):7.0f} ms")
    print(f"  full answer:                  p50 {percentile(total, 0.5):7.0f} ms   p95 {percentile(total, 0.95):7.0f} ms   max {max(total):7.0f} ms")
    print(f"  streamed updates per answer:  median {statistics.median(r['updates'] for r in rows):.0f}")
    print(f"  errors: {len(errors)}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
