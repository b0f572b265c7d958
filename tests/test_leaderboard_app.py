"""The leaderboard Space: results loading, averages with missing tasks, submission checks, and the page in a browser."""

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

SPACE = Path(__file__).resolve().parents[1] / "spaces_app"
sys.path.insert(0, str(SPACE))

import leaderboard_data as ld  # noqa: E402
import submission  # noqa: E402

ARTIFACTS = Path(os.environ.get("XARES_HF_ARTIFACTS", Path(__file__).resolve().parents[1] / "test-artifacts"))


def _result(model: str, scores: dict[str, float], weight: float = 100, protocol: str | None = None) -> dict:
    tasks = []
    for name, score in scores.items():
        info = ld.KNOWN_TASKS[name]
        tasks.append({"name": name, "formal_name": info["formal_name"], "domain": info["domain"], "task_type": info["task_type"],
                      "metric": info["metric"], "mlp": score, "mlp_score": score, "knn": None, "knn_score": None,
                      "eval_weight": weight, "eval_size": 10, "seed": 42})
    return {"schema_version": 1, "xares_hf_version": "0.1.0", "created": "2026-11-27T00:00:00+00:00",
            "encoder": {"id": model}, "run": {"protocol": protocol} if protocol else {}, "averages": {}, "tasks": tasks}


def test_reference_rows_are_the_published_numbers():
    runs = ld.load_runs(SPACE / "reference")
    assert sorted(r.model for r in runs) == [f"xares 0.1.3 README (commit 161f0ef): {m}"
                                             for m in ("dasheng", "data2vec", "wav2vec2", "whisper")]
    assert all(r.protocol == "xares-0.1.3" for r in runs)  # computed by xares 0.1.3's code, k-NN included
    facts = json.loads((Path(__file__).resolve().parents[1] / "scripts" / "xares_tasks.json").read_text())["published_results"]
    dasheng = next(r for r in runs if r.model.endswith("dasheng"))
    assert all(r.reference for r in runs)
    assert dasheng.score("esc50", "mlp") == dict(facts["mlp"]["esc50"])["dasheng"]
    assert dasheng.score("esc50", "knn") == dict(facts["knn"]["esc50"])["dasheng"]
    # the kNN average over the public tasks reproduces the published one (the MLP one does not, see the facts)
    assert round(dasheng.data["averages"]["knn"], 3) == dict(facts["knn_weighted_average"]["public_tasks"])["dasheng"]


def test_missing_tasks_are_blank_and_left_out_of_averages(tmp_path):
    full = _result("full", {"mini_keywords": 0.8, "mini_sounds": 0.4, "mini_instrument": 0.6})
    partial = _result("partial", {"mini_keywords": 0.8})
    for data in (full, partial):
        (tmp_path / f"{data['encoder']['id']}.json").write_text(json.dumps(data))
    frame = ld.table(ld.load_runs(tmp_path)).set_index("Model")
    assert frame.loc["full", "Average"] == pytest.approx(0.6)
    assert frame.loc["partial", "Average"] == pytest.approx(0.8)  # over its own task only
    assert frame.loc["partial", "Tasks"] == "1/3"
    assert frame["Mini sound classes (ufoai-sound)"].isna()["partial"]
    assert frame.loc["full", "Speech avg"] == pytest.approx(0.8) and frame.loc["full", "Sound avg"] == pytest.approx(0.4)
    music_only = ld.table(ld.load_runs(tmp_path), domains=["music"])
    assert list(music_only["Model"]) == ["full"] and "Mini keywords (espeak-ng)" not in music_only.columns


def test_one_protocol_per_table_and_incomplete_runs_never_above_complete_ones(tmp_path):
    runs = [("complete-low", {"mini_keywords": 0.3, "mini_sounds": 0.3}, None),
            ("complete-high", {"mini_keywords": 0.6, "mini_sounds": 0.5}, None),
            ("partial-best", {"mini_keywords": 0.99}, None),
            ("old-protocol", {"mini_keywords": 0.7, "mini_sounds": 0.7}, "xares-0.1.3")]
    for model, scores, protocol in runs:
        (tmp_path / f"{model}.json").write_text(json.dumps(_result(model, scores, protocol=protocol)))
    loaded = ld.load_runs(tmp_path)
    for sort_by in ("Average", "Model", "Speech avg"):
        frame = ld.table(loaded, sort_by=sort_by)
        assert list(frame["Model"])[-1] == "partial-best", sort_by  # 0.99 over one task: listed after complete runs
        assert set(frame["Protocol"]) == {"xares-hf"} and "old-protocol [xares-0.1.3]" not in set(frame["Model"])
    frame = ld.table(loaded).set_index("Model")
    assert list(frame.index) == ["complete-high", "complete-low", "partial-best"]
    assert frame.loc["partial-best", "Type"] == "run (incomplete)" and frame.loc["complete-high", "Type"] == "run"
    old = ld.table(loaded, protocol="xares-0.1.3")
    assert list(old["Model"]) == ["old-protocol [xares-0.1.3]"]


def test_paper_table2_rows_are_averages_only_shown_with_all_x_ares_tasks_in_view():
    paper = ld.paper_runs()
    assert len(paper) == 13 and all(r.reference and r.protocol == "xares-0.1.3" for r in paper)
    averages = {r.model.split(": ")[1]: r.data["averages"] for r in paper}
    assert averages["Dasheng"] == {"mlp": 0.696, "knn": 0.499} and averages["HuBERT"] == {"mlp": 0.602, "knn": 0.207}
    runs = ld.load_runs(SPACE / "reference") + paper
    assert not ld.table(runs).shape[0]  # the default view is xares-hf's protocol: no published row is one
    full = ld.table(runs, protocol="xares-0.1.3").set_index("Model")
    assert full.loc["X-ARES paper, Table 2: CED", "Average"] == 0.496
    assert full.loc["X-ARES paper, Table 2: CED", "Type"] == "reference (X-ARES paper, Table 2)"
    assert ld.table(runs, probe="knn", protocol="xares-0.1.3").set_index("Model").loc["X-ARES paper, Table 2: CED", "Average"] == 0.548
    speech = ld.table(runs, domains=["speech"], protocol="xares-0.1.3")
    assert not any(m.startswith("X-ARES paper") for m in speech["Model"])  # its averages are over all 22 tasks


def test_the_space_knows_the_protocols_the_package_writes():
    from xares_hf import protocols

    assert submission.PROTOCOLS == tuple(protocols.PROTOCOLS) and submission.DEFAULT_PROTOCOL == protocols.DEFAULT


def test_the_space_reads_the_schema_version_the_package_writes():
    from xares_hf.results import SCHEMA_VERSION

    assert submission.SCHEMA_VERSION == SCHEMA_VERSION
    with pytest.raises(submission.SubmissionError, match=f"schema_version {SCHEMA_VERSION}"):
        submission.check({**_result("m", {"mini_keywords": 0.5}), "schema_version": SCHEMA_VERSION + 1})


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda d: d.update(schema_version=7), "schema_version 1"),
        (lambda d: d["encoder"].update(id="<img src=x onerror=alert(1)>"), "encoder.id must be"),
        (lambda d: d["tasks"][0].update(mlp_score=1.7), "not a score between 0 and 1"),
        (lambda d: d["tasks"][0].update(name="made_up"), "unknown task 'made_up'"),
        (lambda d: d["encoder"].update(reference=True), "cannot be marked as reference"),
    ],
)
def test_bad_submissions_are_refused(mutate, message):
    data = _result("ok-model", {"mini_keywords": 0.5})
    mutate(data)
    with pytest.raises(submission.SubmissionError, match=message):
        submission.validate(json.dumps(data).encode())
    with pytest.raises(submission.SubmissionError, match="limit"):
        submission.validate(b" " * (submission.MAX_BYTES + 1))


# ----------------------------------------------------------------------------- in a real browser

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
needs_browser = pytest.mark.skipif(
    not Path(CHROMIUM).exists(),
    reason="BROWSER TESTS NOT RUN: Debian's chromium is not installed (scripts/setup.sh installs it when run as root)",
)


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """The app on 127.0.0.1 over real results from xares_hf.evaluate on xares-mini (the demo's output)."""
    from xares_hf import evaluate
    from xares_hf.suites import build_mini_suite

    root = tmp_path_factory.mktemp("space")
    suite = build_mini_suite(root / "mini", size="tiny", tasks=["mini_keywords", "mini_instrument"])
    evaluate("log-mel", tasks=[suite / "cards"], data_dir=suite, cache_dir=root / "cache", output_dir=root / "results")
    swept = _result("swept-encoder", {"mini_keywords": 0.9})
    swept["encoder"]["layer"] = "all"
    swept["tasks"][0]["layer_profile"] = {str(i): {"mlp": s, "mlp_score": s, "valid": s} for i, s in enumerate([0.2, 0.9, 0.5])}
    swept["tasks"][0]["layer"] = 1  # the layer picked on validation: the profile's entry with the task's score
    (root / "results" / "swept.json").write_text(json.dumps(swept))
    port = _port()
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1", "NO_PROXY": "127.0.0.1,localhost"}
    log = open(root / "app.log", "w")  # a file, not a pipe: an unread pipe fills up and blocks the app's next print
    proc = subprocess.Popen([sys.executable, str(SPACE / "app.py"), "--results", str(root / "results"), "--port", str(port)],
                            env=env, stdout=log, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}/"
    import urllib.request

    for _ in range(120):
        try:
            urllib.request.urlopen(url, timeout=2)
            break
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError((root / "app.log").read_text())
            time.sleep(0.5)
    yield url, root
    proc.terminate()
    proc.wait(timeout=30)
    log.close()


def _rows(page) -> list[list[str]]:
    page.wait_for_selector("#leaderboard [role=row]")
    rows = page.locator("#leaderboard [role=row]")
    return [rows.nth(i).inner_text().split("\n") for i in range(rows.count())]


def _models(page) -> list[str]:
    return [r[0].strip() for r in _rows(page)[1:] if r and r[0].strip()]


@needs_browser
def test_the_page_in_chromium(served, tmp_path):
    from playwright.sync_api import sync_playwright

    url, root = served
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run", "--disable-quic"])
        page = browser.new_page(viewport={"width": 1500, "height": 1000})
        page.goto(url)
        models = _models(page)
        # the default view: xares-hf's protocol only; the one-task layer sweep (0.9) is incomplete and comes last
        assert models == ["xares-hf/log-mel", "swept-encoder (layer all)"], models
        assert "incomplete" in _rows(page)[2][1]
        page.screenshot(path=str(ARTIFACTS / "leaderboard.png"), full_page=True)

        page.locator("#protocol").get_by_text("xares-0.1.3", exact=True).click()
        page.wait_for_function("() => document.querySelector('#leaderboard').innerText.includes('161f0ef')", timeout=30_000)
        page.wait_for_timeout(1000)
        old = _models(page)
        assert "xares-hf/log-mel" not in old and "xares 0.1.3 README (commit 161f0ef): dasheng" in old
        assert old.index("X-ARES paper, Table 2: Dasheng") < old.index("xares 0.1.3 README (commit 161f0ef): wav2vec2")
        page.screenshot(path=str(ARTIFACTS / "leaderboard-xares-0.1.3.png"), full_page=True)
        page.locator("#sort-by input").click()
        page.get_by_role("option", name="Model", exact=True).click()
        page.wait_for_timeout(1500)
        by_name = _models(page)
        assert by_name == sorted(by_name) and by_name != old
        page.locator("#protocol").get_by_text("xares-hf", exact=True).click()
        page.wait_for_timeout(1500)

        header = _rows(page)[0]
        assert any("Mini keywords" in h for h in header) and any("Mini instruments" in h for h in header)
        page.locator("#domains").get_by_text("speech", exact=True).click()
        page.wait_for_timeout(1500)
        header = _rows(page)[0]
        assert not any("Mini keywords" in h for h in header) and any("Mini instruments" in h for h in header)

        good = {**json.loads(next((root / "results").rglob("results.json")).read_text())}
        good["encoder"] = {**good["encoder"], "id": "browser-test-encoder"}
        bad_html = json.loads(json.dumps(good))
        bad_html["encoder"]["id"] = "<b>bold</b>"
        bad_score = json.loads(json.dumps(good))
        bad_score["tasks"][0]["mlp_score"] = 3.0
        for name, data, expected in (("bad_html", bad_html, "Refused: encoder.id"), ("bad_score", bad_score, "not a score between 0 and 1"),
                                     ("bad_schema", {"hello": 1}, "Refused: not an xares-hf results file"),
                                     ("good", good, "Accepted: browser-test-encoder")):
            path = tmp_path / f"{name}.json"
            path.write_text(json.dumps(data))
            page.goto(url)  # a fresh upload box each time
            page.get_by_role("tab", name="Submit").click()
            page.locator("#upload input[type=file]").set_input_files(str(path))
            page.wait_for_function(
                "text => document.querySelector('#submit-status textarea').value.includes(text)", arg=expected, timeout=30_000
            )
        page.screenshot(path=str(ARTIFACTS / "leaderboard-submit.png"), full_page=True)
        page.get_by_role("tab", name="Leaderboard").click()
        page.wait_for_timeout(1000)
        assert "browser-test-encoder" in _models(page)
        assert "<b>bold</b>" not in page.content()
        page.goto(url)
        page.get_by_role("tab", name="Layers").click()
        page.wait_for_function("() => [...document.querySelectorAll('.vega-embed')].some(e => e.innerText.includes('Score per layer') && e.innerText.includes('Mini keywords'))",
                               timeout=30_000)
        page.screenshot(path=str(ARTIFACTS / "leaderboard-layers.png"), full_page=True)
        browser.close()
    assert len(list((root / "results" / "submissions").glob("*.json"))) == 1


def _wait_for(url: str, proc: subprocess.Popen, log: Path) -> str:
    import urllib.request

    for _ in range(120):
        try:
            return urllib.request.urlopen(url, timeout=2).read().decode()
        except OSError:
            assert proc.poll() is None, f"the app exited: {log.read_text()[-2000:]}"
            time.sleep(0.5)
    raise AssertionError(f"{url} never answered")


def _listening(port: int) -> set[str]:
    """The local addresses of TCP sockets listening on ``port`` (from /proc/net/tcp: 0A = LISTEN)."""
    found = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        address, hex_port = local.split(":")
        if state == "0A" and int(hex_port, 16) == port:
            found.add(socket.inet_ntoa(bytes.fromhex(address)[::-1]))
    return found


@pytest.mark.parametrize("host", ["127.0.0.2", "0.0.0.0"])
def test_the_app_listens_where_gradio_s_environment_says_as_on_a_space(tmp_path, host):
    """Started as a Space starts it (``python app.py`` with GRADIO_SERVER_NAME/PORT set), the app listens there."""
    import urllib.error
    import urllib.request

    port = _port()
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1", "NO_PROXY": "127.0.0.0/8,localhost",
           "GRADIO_SERVER_NAME": host, "GRADIO_SERVER_PORT": str(port), "XARES_RESULTS_DIR": str(tmp_path)}
    log = tmp_path / "app.log"
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, str(SPACE / "app.py")], env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        connect = "127.0.0.2" if host == "127.0.0.2" else "127.0.0.1"
        assert "X-ARES" in _wait_for(f"http://{connect}:{port}/config", proc, log)
        assert _listening(port) == {host}
        if host == "127.0.0.2":  # not on 127.0.0.1, where it used to listen whatever it was told
            with pytest.raises(urllib.error.URLError):
                urllib.request.urlopen(f"http://127.0.0.1:{port}/config", timeout=2)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_cli_serves_the_app_and_exports_cards(tmp_path):
    import urllib.request

    results = tmp_path / "results" / "enc"
    results.mkdir(parents=True)
    (results / "results.json").write_text(json.dumps(_result("cli-encoder", {"mini_keywords": 0.7})))
    port = _port()
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "xares_hf", "leaderboard", "--results", str(tmp_path / "results"), "--port", str(port)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(120):
            try:
                page = urllib.request.urlopen(f"http://127.0.0.1:{port}/config", timeout=2).read().decode()
                break
            except OSError:
                assert proc.poll() is None, "the leaderboard app exited"
                time.sleep(0.5)
        assert "cli-encoder" in page  # the table's data is in the app's config
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_seed_spread_and_layer_profiles_are_shown(tmp_path):
    seeded = _result("seeded", {"mini_keywords": 0.8, "mini_sounds": 0.4})
    for task, scores in zip(seeded["tasks"], ([0.7, 0.8, 0.9], [0.4, 0.5, 0.3])):
        task["seed_runs"] = [{"seed": 42 + i, "mlp": s, "mlp_score": s, "knn": None, "knn_score": None} for i, s in enumerate(scores)]
        task["mlp_std"] = float(np.std(scores, ddof=1))
    swept = _result("swept", {"mini_keywords": 0.9})
    swept["encoder"]["layer"] = "all"
    swept["tasks"][0]["layer_profile"] = {str(i): {"mlp": s, "mlp_score": s, "valid": s} for i, s in enumerate([0.2, 0.9, 0.5])}
    swept["tasks"][0]["layer"] = 1  # the layer picked on validation: the profile's entry with the task's score
    weighted = _result("swept", {"mini_keywords": 0.9})
    weighted["encoder"]["layer"] = "weighted"
    weighted["tasks"][0]["layer_weights"] = [0.1, 0.7, 0.2]
    for name, data in (("seeded", seeded), ("swept", swept), ("weighted", weighted)):
        (tmp_path / f"{name}.json").write_text(json.dumps(data))
    runs = ld.load_runs(tmp_path)
    frame = ld.table(runs).set_index("Model")
    per_seed = [np.mean([a, b]) for a, b in zip([0.7, 0.8, 0.9], [0.4, 0.5, 0.3])]  # equal weights
    assert frame.loc["seeded", "± seeds"] == pytest.approx(round(float(np.std(per_seed, ddof=1)), 3))
    assert pd.isna(frame.loc["swept (layer all)", "± seeds"])  # one seed: no spread
    assert "swept (layer weighted)" in frame.index  # each layer mode is its own row
    profile = ld.layer_profile(runs, "swept (layer all)")
    assert list(profile["Layer"]) == [0, 1, 2] and list(profile["Score"]) == [0.2, 0.9, 0.5]
    assert list(ld.layer_weights(runs, "swept (layer weighted)")["Weight"]) == [0.1, 0.7, 0.2]
    details = ld.model_details(runs, "seeded").set_index("Task")
    assert details["± (seeds)"].iloc[0] == pytest.approx(round(float(np.std([0.7, 0.8, 0.9], ddof=1)), 3))
