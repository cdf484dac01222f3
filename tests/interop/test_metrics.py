"""/metrics read by the Prometheus project's own Python client parser
(`prometheus_client.parser.text_string_to_metric_families`): the exposition custody
serves after real traffic parses, every family has the documented type, histograms
are cumulative with `+Inf` equal to `_count`, and docs/metrics.md and the scrape list
the same metric names."""

import json
import pathlib
import re
import urllib.error
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

from conftest import Custody

DOCS = pathlib.Path(__file__).resolve().parents[2] / "docs" / "metrics.md"


def scrape(custody) -> tuple[str, str]:
    with urllib.request.urlopen(f"http://{custody.admin}/metrics", timeout=5) as r:
        return r.headers["content-type"], r.read().decode()


def post(custody, path: str, body: dict) -> int:
    req = urllib.request.Request(f"http://{custody.tcp}{path}", data=json.dumps(body).encode(),
                                 headers={"content-type": "application/json"}, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            r.read()
            return r.status
    except urllib.error.HTTPError as e:
        e.read()
        return e.code


INJECTOR = "## The injector (`custody webhook`)"


def documented(injector: bool = False) -> set[str]:
    """The metric names in the tables of docs/metrics.md (labels and suffixes cut):
    the sidecar's, or with `injector` those of its "The injector" section."""
    doc = DOCS.read_text()
    start = doc.index(INJECTOR)
    end = doc.index("\n## ", start + 1)
    text = doc[start:end] if injector else doc[:start] + doc[end:]
    names = set(re.findall(r"^\| `(custody_[a-z0-9_]+)", text, re.M))
    names.discard("custody_audit_")  # the overview row `custody_audit_*`
    return names


def served(text: str) -> dict[str, str]:
    """Family name (as in `# TYPE`) → type."""
    return dict(re.findall(r"^# TYPE (\S+) (\S+)$", text, re.M))


def test_the_exposition_parses_with_the_prometheus_parser(stub):
    with Custody(stub, routes="  - {name: 'we\"ird', prefix: /weird, upstream: '" + stub + "', kind: http}\n") as custody:
        chat = {"model": "gpt-4o-mini",
                "messages": [{"role": "user", "content": "write to ada.lovelace@example.org"}]}
        assert post(custody, "/openai/v1/chat/completions", chat) == 200
        assert post(custody, "/openai/v1/chat/completions", chat) == 200
        assert post(custody, "/nowhere", {}) == 404
        assert post(custody, "/weird/echo", {"a": 1}) == 200
        content_type, text = scrape(custody)
        custody.stop()

    assert content_type.startswith("text/plain; version=0.0.4")
    families = {f.name: f for f in text_string_to_metric_families(text)}
    # The parser names counters without `_total`.
    requests = families["custody_requests"]
    assert requests.type == "counter"
    counts = {(s.labels["route"], s.labels["decision"], s.labels["code"]): s.value
              for s in requests.samples if s.name == "custody_requests_total"}
    # The route name `we"ird` went through label escaping and back.
    assert counts == {("openai", "allow", "2xx"): 2.0, ("", "none", "4xx"): 1.0, ('we"ird', "allow", "2xx"): 1.0}
    pii = {(s.labels["kind"], s.labels["direction"]): s.value
           for s in families["custody_pii_findings"].samples if s.name == "custody_pii_findings_total"}
    assert pii[("EMAIL", "request")] == 2.0

    for name in ("custody_added_latency_seconds", "custody_request_duration_seconds"):
        family = families[name]
        assert family.type == "histogram"
        series: dict[tuple, list] = {}
        for s in family.samples:
            key = tuple(sorted((k, v) for k, v in s.labels.items() if k != "le"))
            series.setdefault(key, []).append(s)
        assert series, name
        for key, samples in series.items():
            buckets = [(float(s.labels["le"]), s.value) for s in samples if s.name == f"{name}_bucket"]
            assert buckets[-1][0] == float("inf"), key
            assert [le for le, _ in buckets] == sorted(le for le, _ in buckets)
            values = [v for _, v in buckets]
            assert values == sorted(values), f"{name}{key}: cumulative"
            (count,) = [s.value for s in samples if s.name == f"{name}_count"]
            (total,) = [s.value for s in samples if s.name == f"{name}_sum"]
            assert count == values[-1] and total >= 0
    assert {s.value for s in families["custody_added_latency_seconds"].samples
            if s.name == "custody_added_latency_seconds_count"} == {3.0}
    durations = {s.labels["route"]: s.value for s in families["custody_request_duration_seconds"].samples
                 if s.name == "custody_request_duration_seconds_count"}
    assert durations == {"openai": 2.0, "": 1.0, 'we"ird': 1.0}


def test_docs_list_exactly_the_metrics_served(stub):
    with Custody(stub) as custody:
        _, text = scrape(custody)
    types = served(text)
    assert documented() == set(types), "docs/metrics.md and /metrics disagree"
    doc = DOCS.read_text()
    for name, kind in types.items():
        row = re.search(rf"^\| `{name}(\{{[^`]*\}})?` \| (\w+) \|", doc, re.M)
        assert row, name
        assert row.group(2) == kind, f"{name}: documented {row.group(2)}, served {kind}"
