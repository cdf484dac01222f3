"""The docs run as written (docs/development.md, "Code blocks in the docs"): every
fence of README.md and docs/*.md closes and has an info string; every block runs here,
in the test `doc_blocks.COVERED` names, is output (`text`) or is marked
`<!-- not run: REASON -->`. Here: custody config blocks through `custody config
check` (the whole file also started), JSON parsed, and on one trail custody writes
for the test — with the stub as the provider and custody on its default socket —
README's curl and SDK snippets, the shell blocks and every SQL block in DuckDB, from
the directory that holds `custody-audit/`."""

import json
import os
import pathlib
import re
import signal
import subprocess
import sys
import urllib.request

import duckdb
import httpx2
import openai
import yaml

import doc_blocks
from conftest import REPO, Custody, _binary, free_ports, wait_ready

BLOCKS, FENCE_PROBLEMS = doc_blocks.all_blocks()


def of(kind: str) -> list[doc_blocks.Block]:
    return [b for b in BLOCKS if doc_blocks.classify(b) == kind]


def whole_file() -> str:
    """docs/configuration.md's "The whole file, with defaults"."""
    return next(b.body for b in of("config") if b.doc == "docs/configuration.md" and "sessions:" in b.body)


def test_every_fence_closes_and_has_an_info_string():
    assert FENCE_PROBLEMS == [], "\n".join(FENCE_PROBLEMS)
    elsewhere = [p for path in doc_blocks.every_markdown_file() if path not in doc_blocks.DOCS
                 for p in doc_blocks.parse(path)[1]]
    assert elsewhere == [], "\n".join(elsewhere)


def test_the_checker_finds_what_a_renderer_would_swallow():
    # Not a closing fence: the rest of the document is swallowed.
    blocks, problems = doc_blocks.parse("x.md", "```yaml\nlisten: {}\n``` How it works,\n\n## `upstream`\n")
    assert problems == ["x.md:3: a fence line inside the block opened at line 1; a closing fence has nothing after it",
                        "x.md:1: the fence opened here never closes"] and len(blocks) == 1, problems
    # ... or until the next bare fence, past the next block's opening.
    blocks, problems = doc_blocks.parse("x.md", "```yaml\na: 1\n``` How\n\n```yaml\nb: 2\n```\n")
    assert problems == ["x.md:3: a fence line inside the block opened at line 1; a closing fence has nothing after it",
                        "x.md:5: a fence line inside the block opened at line 1; a closing fence has nothing after it"
                        ], problems
    blocks, problems = doc_blocks.parse("x.md", (
        "<!-- not run: needs a cluster -->\n```sh\nkubectl get pods\n```\n"
        "```\nbare\n```\n```promql\nup\n```\n```yaml\nlisten: {tcp: null}\n```\n"
    ))
    assert problems == ["x.md:5: a fence without an info string (`text` for output)"], problems
    assert [doc_blocks.classify(b) for b in blocks] == ["not run", "", "", "config"]
    assert blocks[0].not_run == "needs a cluster"


def test_every_block_runs_or_is_marked():
    unclaimed = [b.where for b in BLOCKS if not doc_blocks.classify(b)]
    assert unclaimed == [], (
        "blocks nothing runs: make them run here, or mark them `<!-- not run: REASON -->` "
        "(docs/development.md, \"Code blocks in the docs\"):\n" + "\n".join(unclaimed))
    for b in BLOCKS:
        kind = doc_blocks.classify(b)
        if kind.startswith("covered: "):
            test = REPO / kind.removeprefix("covered: ")
            assert b.doc.rsplit("/", 1)[-1] in test.read_text(), (b.where, "not read by", test)
    assert len(of("config")) >= 8 and len(of("sql")) >= 5 and len(of("python")) >= 1


# A file a config block names by absolute path, and what stands in for it: `config
# check` reads every file a config names, as `custody run` does at start.
NAMED_FILE = re.compile(r"(?P<key>\w*file):\s*['\"]?(?P<path>/[^\s'\",}]+)")
STARTER_POLICY = yaml.safe_load((REPO / "helm" / "custody" / "values.yaml").read_text())["policy"]["content"]


def stage_named_files(body: str, root: pathlib.Path, custody: str) -> str:
    """`body` with each absolute path it names moved under `root`, where a file of
    the right kind stands in for it (the pod's mounted policy, Secrets and keys)."""
    for m in NAMED_FILE.finditer(body):
        key, path = m.group("key"), m.group("path")
        target = root / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        if key == "signing_key_file":
            target.unlink(missing_ok=True)
            subprocess.run([custody, "keygen", "--out", str(target)], check=True, capture_output=True)
        elif key == "file":
            target.write_text(STARTER_POLICY)
        elif key == "jwks_file":
            target.write_text('{"keys": []}')
        elif key in ("value_file", "key_file", "secret_access_key_file", "session_token_file"):
            target.write_text(os.urandom(32).hex() + "\n")
        else:
            raise AssertionError(f"no stand-in for {key}: {path}")
    return NAMED_FILE.sub(lambda m: m.group(0).replace(m.group("path"), str(root) + m.group("path")), body)


def test_config_blocks_pass_config_check(tmp_path):
    custody = str(_binary("CUSTODY_BIN", "custody"))
    failed = []
    for i, b in enumerate(of("config")):
        path = tmp_path / f"{i}.yaml"
        path.write_text(stage_named_files(b.body, tmp_path / f"{i}-files", custody))
        out = subprocess.run([custody, "config", "check", "--config", str(path)], capture_output=True, text=True)
        if out.returncode != 0:
            failed.append(f"{b.where}: {out.stderr}")
    assert failed == [], "\n".join(failed)


def test_the_whole_config_file_starts(tmp_path):
    """As written, but for the two loopback ports (free ones, so runs do not collide):
    the socket is the default one, under TMPDIR, and the trail goes to ./custody-audit."""
    tcp, admin = free_ports(2)
    config = tmp_path / "custody.yaml"
    config.write_text(whole_file().replace("127.0.0.1:15080", f"127.0.0.1:{tcp}")
                      .replace("127.0.0.1:15090", f"127.0.0.1:{admin}"))
    proc = subprocess.Popen([str(_binary("CUSTODY_BIN", "custody")), "run", "--config", str(config)],
                            cwd=tmp_path, env={**os.environ, "TMPDIR": str(tmp_path)},
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        # stderr is read only once custody has exited (a running one's would block).
        wait_ready(proc, f"127.0.0.1:{admin}", lambda: proc.stderr.read() if proc.poll() is not None else "")
        assert (tmp_path / f"custody-{os.getuid()}" / "custody.sock").is_socket()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_json_blocks_parse():
    for b in of("json"):
        json.loads(b.body)


def test_snippets_shell_and_sql_run_on_a_trail(stub, tmp_path):
    (tmp_path / "custody.yaml").write_text(whole_file())  # what `--config custody.yaml` names
    bin_dir = pathlib.Path(_binary("CUSTODY_BIN", "custody")).parent
    with Custody(
        stub,
        routes=(
            f"  - name: crm\n    prefix: /crm\n    upstream: '{stub}/echo'\n    kind: http\n"
            "    tools: [{method: POST, path: /contacts/search, tool: 'crm:contacts:search'}]\n"
        ),
        audit=f"{{dir: '{tmp_path / 'custody-audit'}', flush_interval: 1h}}",
        default_socket=True,
    ) as custody:
        env = {**os.environ, "TMPDIR": str(custody.dir), "OPENAI_API_KEY": "sk-test",
               "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
        failed = []
        for b in of("sh") + of("python"):
            command = ["bash", "-euo", "pipefail", "-c"] if b.words == ["sh"] else [sys.executable, "-c"]
            out = subprocess.run(command + [b.body], cwd=tmp_path, env=env, capture_output=True, text=True,
                                 timeout=60)
            if out.returncode != 0:
                failed.append(f"{b.where}: {out.stdout}{out.stderr}")
        assert failed == [], "\n".join(failed)
        client = openai.OpenAI(
            api_key="sk-test",
            base_url="http://localhost/openai/v1",
            http_client=httpx2.Client(transport=httpx2.HTTPTransport(uds=custody.socket)),
            max_retries=0,
        )
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
        request = urllib.request.Request(
            f"http://{custody.tcp}/crm/contacts/search",
            data=json.dumps({"query": "pipeline status this quarter"}).encode(),
            headers={"content-type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 200
        custody.stop()

    # The SQL, as written, from the directory that holds custody-audit/; `custody_audit`
    # is the view `custody lake ddl --engine duckdb custody-audit` prints (lakehouse.md).
    os.chdir(tmp_path)
    try:
        ddl = subprocess.run([str(_binary("CUSTODY_BIN", "custody")), "lake", "ddl", "--engine", "duckdb",
                              "custody-audit"], capture_output=True, text=True, check=True).stdout
        results = {}
        for b in of("sql"):
            con = duckdb.connect()
            con.execute(ddl)
            for statement in duckdb.extract_statements(b.body):
                results.setdefault(b.where, []).append(con.execute(statement).fetchall())
    finally:
        os.chdir(REPO)
    flat = repr(results)
    assert "crm:contacts:search" in flat and '{"query":"pipeline status this quarter"}' in flat, flat
    spend = results[next(w for w in results if w.startswith("docs/audit-schema.md"))][0]
    # Spend: one row per user and model (the SDK snippets' and this test's calls: 3),
    # under the requested name, with a cost that is not rounded to 0.
    assert [(model, calls) for _, model, calls, *_ in spend] == [("gpt-4o-mini", 3)], spend
    assert spend[0][-1] > 0, spend
