"""`lima-data judge` against a mock OpenAI-compatible server on 127.0.0.1 (no network)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from click.testing import CliRunner

from lima_data import judge as J
from lima_data.cli import main
from lima_data.errors import InputError, LimaDataError


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_POST(self):
        server = self.server
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        server.requests.append({"path": self.path, "auth": self.headers.get("Authorization"), "body": body})
        if server.status != 200:
            self.send_response(server.status)
            self.end_headers()
            self.wfile.write(b'{"error": "nope"}')
            return
        text = body["messages"][-1]["content"]
        reply = server.answer(text)
        payload = json.dumps({"choices": [{"message": {"role": "assistant", "content": reply}}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


def _section(text, name):
    return re.search(rf"\[{name}\]\n(.*?)\n\[End of {name.lower()}\]", text, re.S | re.I).group(1)


def fair(text: str) -> str:
    """A deterministic judge: quality = how many times a response says "good"."""
    if "[Response A]" in text:
        a, b = text.count("good", text.index("[Response A]"), text.index("[Response B]")), \
            text.count("good", text.index("[Response B]"))
        return f"A is {'better' if a > b else 'worse'}.\nPreference: {'A' if a > b else 'B' if b > a else 'tie'}"
    return f"Reasoned.\nRating: {min(6, 1 + _section(text, 'Response').count('good'))}"


@pytest.fixture
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.requests, httpd.status, httpd.answer = [], 200, fair
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    httpd.url = f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def _write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


PROMPTS = [f"question {i}?" for i in range(5)]


@pytest.fixture
def systems(tmp_path):
    # A is better on prompts 0-2, equal on 3, worse on 4 (the layout `lima-data generate` writes)
    a = [{"id": f"p{i}", "prompt": p, "generation": "good " * n}
         for i, (p, n) in enumerate(zip(PROMPTS, [3, 2, 5, 1, 0]))]
    b = [{"id": f"p{i}", "prompt": p, "generation": "good " * n + "meh"}
         for i, (p, n) in enumerate(zip(PROMPTS, [1, 0, 2, 1, 4]))]
    return _write(tmp_path / "a.jsonl", a), _write(tmp_path / "b.jsonl", b)


def test_likert_ratings_summary_and_key(server, systems, tmp_path, monkeypatch):
    monkeypatch.setenv("JUDGE_KEY", "sk-test")
    out = tmp_path / "judged"
    result = CliRunner().invoke(main, ["judge", str(systems[0]), "--base-url", server.url, "--model", "mock",
                                       "--api-key-env", "JUDGE_KEY", "-o", str(out), "--workers", "2"])
    assert result.exit_code == 0, result.output
    judgments = [json.loads(line) for line in (out / "judgments.jsonl").open()]
    assert [j["rating"] for j in judgments] == [4, 3, 6, 2, 1]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["mean"] == pytest.approx(3.2) and summary["counts"]["6"] == 1 and summary["unparsed"] == 0
    assert summary["ci95"][0] < 3.2 < summary["ci95"][1] and summary["ci95"][0] >= 1 and summary["ci95"][1] <= 6
    assert len(server.requests) == 5
    request = server.requests[0]
    assert request["path"] == "/v1/chat/completions" and request["auth"] == "Bearer sk-test"
    assert request["body"]["model"] == "mock" and request["body"]["temperature"] == 0


def test_pairwise_swaps_positions(server, systems, tmp_path):
    out = tmp_path / "ab"
    result = CliRunner().invoke(main, ["judge", *map(str, systems), "--base-url", server.url, "--model", "mock",
                                       "-o", str(out), "--workers", "1"])
    assert result.exit_code == 0, result.output
    assert "win" in result.output
    judgments = [json.loads(line) for line in (out / "judgments.jsonl").open()]
    assert [j["outcome"] for j in judgments] == ["win", "win", "win", "tie", "loss"]
    assert [(j["verdict_ab"], j["verdict_ba"]) for j in judgments][0] == ("A", "B")
    # each pair asked twice, A's text first then second
    asked = [r["body"]["messages"][-1]["content"] for r in server.requests]
    assert len(asked) == 10
    first, second = asked[0], asked[1]
    assert _section(first, "Response A") == "good good good " and _section(second, "Response B") == "good good good "
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["win"]["count"], summary["tie"]["count"], summary["loss"]["count"]) == (3, 1, 1)
    assert summary["win_or_tie"]["count"] == 4 and summary["position_consistent"] == 5
    low, high = summary["win"]["ci95"]
    assert low < 0.6 < high


def test_a_judge_biased_to_the_first_position_gives_only_ties(server, systems, tmp_path):
    server.answer = lambda text: "Preference: A" if "[Response A]" in text else "Rating: 3"
    out = tmp_path / "biased"
    result = CliRunner().invoke(main, ["judge", *map(str, systems), "--base-url", server.url, "--model", "m",
                                       "-o", str(out), "-q"])
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["tie"]["count"] == 5 and summary["win"]["count"] == summary["loss"]["count"] == 0
    assert summary["position_consistent"] == 0


def test_endpoint_errors_are_clear(server, systems):
    server.status = 401
    result = CliRunner().invoke(main, ["judge", str(systems[0]), "--base-url", server.url, "--model", "m", "-q"])
    assert result.exit_code == 1 and "HTTP 401" in result.output and "/v1/chat/completions" in result.output
    server.status = 503
    server.requests.clear()
    endpoint = J.Endpoint(server.url, "m", retries=1)
    with pytest.raises(LimaDataError, match="failed after 2 attempts: HTTP 503"):
        endpoint.chat("s", "u")
    assert len(server.requests) == 2  # retried once
    with pytest.raises(LimaDataError, match="failed after 1 attempts"):
        J.Endpoint("http://127.0.0.1:9/v1", "m", retries=0, timeout=2).chat("s", "u")


def test_bad_generation_file_names_file_and_line(tmp_path):
    path = tmp_path / "g.jsonl"
    path.write_text('{"id": 1, "prompt": "p", "generation": "g"}\n{"id": 2, "prompt": "p"}\n')
    with pytest.raises(InputError, match=r"g.jsonl:2: expected"):
        J.read_generations(path)


def test_pairs_match_by_id_and_check_prompts():
    a = [{"id": 1, "prompt": "x", "generation": "a1"}, {"id": 2, "prompt": "y", "generation": "a2"}]
    b = [{"id": 2, "prompt": "y", "generation": "b2"}, {"id": 3, "prompt": "z", "generation": "b3"}]
    assert [(x["generation"], y["generation"]) for x, y in J.pair_rows(a, b)] == [("a2", "b2")]
    with pytest.raises(LimaDataError, match="different prompts"):
        J.pair_rows(a, [{"id": 1, "prompt": "other", "generation": "b"}])


def test_parsing_and_intervals():
    assert J.parse_rating("Because.\nRating: 5") == 5 and J.parse_rating("**Rating:** 2") == 2
    assert J.parse_rating("no number") is None and J.parse_rating("Rating: 9") is None
    assert J.parse_preference("Preference: Response B") == "B" and J.parse_preference("preference: TIE") == "tie"
    assert J.combine("A", "B") == "win" and J.combine("A", "A") == "tie" and J.combine("tie", "B") == "tie"
    low, high = J.wilson(5, 10)
    assert (round(low, 4), round(high, 4)) == (0.2366, 0.7634)  # the textbook Wilson interval
    assert J.wilson(0, 10)[0] == 0 and round(J.wilson(0, 10)[1], 4) == 0.2775
    mean, low, high = J.bootstrap_mean([[1.0], [6.0]] * 20, resamples=2000)
    assert mean == 3.5 and 2.5 < low < 3.5 < high < 4.5


def test_judge_module_stays_outside_train_and_filters():
    code = ("import sys, lima_data.judge; bad = [m for m in sys.modules if m.startswith(('lima_data.train', "
            "'lima_data.filters', 'torch'))]; print(bad); sys.exit(bool(bad))")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
