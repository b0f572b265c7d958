"""The X-ARES leaderboard: compare audio encoders across speech, sound and music tasks.

Runs as a Hugging Face Space as it is, or locally: ``xares-hf leaderboard --results DIR`` or
``python spaces_app/app.py --results DIR``. Results come from ``$XARES_RESULTS_REPO`` (a Hub dataset of
results files) when reachable, else from a local folder; the published X-ARES numbers are reference rows.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import gradio as gr  # noqa: E402
import pandas as pd  # noqa: E402

import leaderboard_data as ld  # noqa: E402
import submission  # noqa: E402

TASK_TYPES = sorted({t["task_type"] for t in ld.KNOWN_TASKS.values()})  # the task list says which types there are
SORT_KEYS = ["Average", "Speech avg", "Sound avg", "Music avg", "Model"]
SUITES = {"All tasks": None, "X-ARES (22 tasks)": "x-ares", "xares-mini": "xares-mini"}
ABOUT = """
## Two protocols, never ranked together
**xares-hf** (the default view) scores as X-ARES documents it: cosine k-NN, each clip's encoder output trimmed to its own
length (batches of similar length, padding masked), every crop of a long clip kept. **xares-0.1.3** reproduces what
xares 0.1.3's code computes, where it differs from its documentation: its k-NN normalises each feature dimension over
the training set instead of each embedding (xares/trainer.py, class `KNN`), so a few loud clips become everyone's
neighbours; it encodes consecutive clips in zero-padded batches and averages the padded frames too; only the first crop
of a clip in each encoding batch survives (duplicate keys); its retrieval loss uses raw dot products. The two give
different numbers for the same encoder (k-NN most of all), so the table shows one protocol at a time: pick it above
the table. The published X-ARES numbers are xares-0.1.3 rows. xares-hf's README lists every difference with the
upstream file and line.

**Incomplete runs** (missing some of the tasks in view) are marked so in *Type* and listed after every complete run,
whatever the sort: an average over fewer tasks is not comparable.

## Method (X-ARES)
Each encoder is frozen. Every clip is encoded once; a linear probe (LayerNorm + Linear, Adam, cosine learning rate,
best epoch on the validation split) is trained on mean-pooled frames (clip tasks) or on every frame (sound events,
notes), audio and text towers are trained contrastively for captions retrieval, and an adapter into a frozen language
model (or a CTC probe) transcribes speech. k-NN (10 cosine neighbours, softmax(similarity / 0.07) votes) needs no
training (xares-hf protocol; see above for xares 0.1.3's). Each task's metric (accuracy, mAP, segment F1, Recall@1, inverted WER) lies in 0-1; the benchmark score is
their average weighted by each task's evaluation size, for the MLP and kNN probes separately.

**± seeds** is the standard deviation over seeds of a run's average (runs made with `seeds=N`); the *Model*
tab shows it per task. **Layers** shows a model's score per layer and its learnt layer weights.

**Missing tasks** show as blank cells. A run's averages cover only the tasks it has (and that the filters keep),
so compare averages between runs with the same tasks (the *Tasks* column says how many).

**Reference rows** are published numbers, protocol xares-0.1.3: *xares 0.1.3 README (commit 161f0ef)* rows are the
per-task tables of the X-ARES README, converted into xares-hf's results format (their averages are recomputed here over
the tasks in view); *X-ARES paper, Table 2* rows are the paper's weighted averages over all 22 tasks for 13 encoders
(averages only, so they appear only when the view is all X-ARES tasks).

## Submit
Run `xares_hf.evaluate("org/your-encoder")` (or `xares-hf evaluate ...`), then upload the `results.json` it writes
in the *Submit* tab. It is checked (schema version, every field's type, known tasks with their metric and weight,
finite scores between 0 and 1, size and nesting, plain-text names) and every derived number in it (normalised scores,
means and spreads over seeds, averages) is recomputed and must agree; then it is stored. Nothing in it is executed or
rendered as HTML. Stored files are checked the same way when the app reads them: one that does not pass is skipped
and listed below, never shown.
"""


def build(results_dir: str | Path | None = None, submissions_dir: str | Path | None = None) -> gr.Blocks:
    results_dir = Path(results_dir) if results_dir else ld.results_folder()
    submissions_dir = Path(submissions_dir) if submissions_dir else results_dir / "submissions"

    def runs() -> list[ld.Run]:
        return ld.load_runs(ld.HERE / "reference", results_dir) + ld.paper_runs()

    def skipped() -> list[str]:
        return ld.scan(ld.HERE / "reference", results_dir)[1]

    def skipped_note(lines: list[str]) -> str:  # a count only: the names and reasons go into a plain-text box
        return f"**{len(lines)} stored results file{'s' if len(lines) != 1 else ''} skipped** (they do not pass the checks; see *About*)."

    def board(suite, probe, domains, types, search, sort_by, protocol=ld.DEFAULT_PROTOCOL):
        frame = ld.table(runs(), "knn" if probe == "kNN" else "mlp", domains or None, types or None, search or "", sort_by,
                         SUITES.get(suite), protocol)
        return frame.astype(object).where(frame.notna(), "")

    def plots(models, probe):
        key = "knn" if probe == "kNN" else "mlp"
        chosen = [r for r in runs() if r.model in (models or [])]
        per_task = pd.DataFrame(
            [{"Task": t.get("formal_name", t["name"]), "Score": t.get(f"{key}_score"), "Model": r.model}
             for r in chosen for t in r.data["tasks"] if t.get(f"{key}_score") is not None],
            columns=["Task", "Score", "Model"],
        )
        frame = ld.table(chosen, key, protocol=None) if chosen else pd.DataFrame()
        profile = pd.DataFrame(
            [{"Domain": d.title(), "Average": row[f"{d.title()} avg"], "Model": row["Model"]}
             for _, row in frame.iterrows() for d in ld.DOMAINS if pd.notna(row.get(f"{d.title()} avg"))],
            columns=["Domain", "Average", "Model"],
        )
        return per_task, profile

    def submit(raw):
        if raw is None:
            return "No file.", *refresh()
        try:
            data = submission.validate(raw if isinstance(raw, bytes) else Path(raw).read_bytes())
        except submission.SubmissionError as err:
            return f"Refused: {err}", *refresh()
        path = submission.store(data, submissions_dir)
        return f"Accepted: {data['encoder']['id']} ({len(data['tasks'])} tasks), stored as {path.name}.", *refresh()

    def refresh():
        names = [r.model for r in runs()]
        return board("All tasks", "MLP", list(ld.DOMAINS), TASK_TYPES, "", "Average"), gr.update(choices=names), gr.update(choices=names)

    names = [r.model for r in runs()]
    with gr.Blocks(title="X-ARES leaderboard") as demo:
        gr.Markdown("# X-ARES audio encoder leaderboard\nNormalised scores (0-1, higher is better) of frozen audio encoders "
                    "on speech, environmental sound and music tasks, evaluated with [xares-hf](https://github.com/jimbozhang/xares).")
        at_start = skipped()
        banner = gr.Markdown(skipped_note(at_start), visible=bool(at_start), elem_id="skipped-banner")
        with gr.Tabs():
            with gr.Tab("Leaderboard"):
                with gr.Row():
                    suite = gr.Radio(list(SUITES), value="All tasks", label="Suite")
                    probe = gr.Radio(["MLP", "kNN"], value="MLP", label="Probe")
                    domains = gr.CheckboxGroup(list(ld.DOMAINS), value=list(ld.DOMAINS), label="Domains", elem_id="domains")
                    types = gr.CheckboxGroup(TASK_TYPES, value=TASK_TYPES, label="Task types")
                with gr.Row():
                    protocol = gr.Radio(list(ld.PROTOCOLS), value=ld.DEFAULT_PROTOCOL, label="Protocol (see About)",
                                        elem_id="protocol")
                    search = gr.Textbox(label="Search model", placeholder="e.g. whisper", elem_id="search")
                    sort_by = gr.Dropdown(SORT_KEYS, value="Average", label="Sort by", elem_id="sort-by")
                table = gr.Dataframe(board("All tasks", "MLP", list(ld.DOMAINS), TASK_TYPES, "", "Average"), interactive=False,
                                     elem_id="leaderboard", wrap=True)
                gr.Markdown("Blank cells are tasks a run does not have; its averages leave them out (see *About*).")
                controls = [suite, probe, domains, types, search, sort_by, protocol]
                for control in controls:
                    control.change(board, controls, table)
            with gr.Tab("Plots"):
                plot_models = gr.CheckboxGroup(names, value=names[:3], label="Models")
                plot_probe = gr.Radio(["MLP", "kNN"], value="MLP", label="Probe")
                per_task = gr.BarPlot(x="Task", y="Score", color="Model", title="Per-task scores", x_label_angle=-45, height=420)
                profile = gr.BarPlot(x="Domain", y="Average", color="Model", title="Per-domain profile", height=320)
                for control in (plot_models, plot_probe):
                    control.change(plots, [plot_models, plot_probe], [per_task, profile])
                demo.load(plots, [plot_models, plot_probe], [per_task, profile])
            with gr.Tab("Layers"):
                gr.Markdown("Runs with `layer='all'` probe every layer of a model (the profile below); runs with "
                            "`layer='weighted'` learn a softmax weight per layer (the bars).")
                layered = [r.model for r in runs() if any(t.get("layer_profile") or t.get("layer_weights") for t in r.data["tasks"])]
                layer_model = gr.Dropdown(layered, value=layered[0] if layered else None, label="Model", elem_id="layer-model")
                profile_plot = gr.LinePlot(x="Layer", y="Score", color="Task", title="Score per layer", height=360)
                weights_plot = gr.BarPlot(x="Layer", y="Weight", color="Task", title="Learnt layer weights", height=300)

                def layers_of(m):
                    return ld.layer_profile(runs(), m), ld.layer_weights(runs(), m)

                layer_model.change(layers_of, layer_model, [profile_plot, weights_plot])
                demo.load(layers_of, layer_model, [profile_plot, weights_plot])
            with gr.Tab("Model"):
                model = gr.Dropdown(names, label="Model", value=names[0] if names else None)
                details = gr.Dataframe(interactive=False)
                model.change(lambda m: ld.model_details(runs(), m), model, details)
                demo.load(lambda m: ld.model_details(runs(), m), model, details)
            with gr.Tab("Submit"):
                upload = gr.File(label="results.json", file_types=[".json"], type="binary", elem_id="upload")
                status = gr.Textbox(label="Result", interactive=False, elem_id="submit-status")
                upload.upload(submit, upload, [status, table, plot_models, model])
            with gr.Tab("About"):
                gr.Markdown(ABOUT)
                skipped_box = gr.Textbox("\n".join(at_start), label="Stored files skipped (name: why)", interactive=False,
                                         visible=bool(at_start), lines=min(max(len(at_start), 1), 12), elem_id="skipped-files")

        def skipped_now():
            lines = skipped()
            return gr.update(value=skipped_note(lines), visible=bool(lines)), gr.update(value="\n".join(lines), visible=bool(lines))

        demo.load(skipped_now, None, [banner, skipped_box])
    return demo


def serve(results_dir: str | Path | None = None, submissions_dir: str | Path | None = None, host: str | None = None,
          port: int | None = None) -> None:
    """Build the app and serve it. Where it listens is Gradio's own choice unless ``host``/``port`` are given:
    ``GRADIO_SERVER_NAME`` and ``GRADIO_SERVER_PORT`` (how a Hugging Face Space says 0.0.0.0:7860), else
    127.0.0.1:7860."""
    where = {k: v for k, v in (("server_name", host), ("server_port", port)) if v is not None}
    build(results_dir, submissions_dir).launch(show_error=True, **where)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Serve the X-ARES leaderboard.")
    parser.add_argument("--results", help="folder of results.json files (default: $XARES_RESULTS_DIR or spaces_app/results)")
    parser.add_argument("--submissions", help="where accepted submissions go (default: <results>/submissions)")
    parser.add_argument("--host", help="address to listen on (default: $GRADIO_SERVER_NAME, else 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port (default: $GRADIO_SERVER_PORT, else 7860)")
    args = parser.parse_args(argv)
    serve(args.results, args.submissions, args.host, args.port)


if __name__ == "__main__":
    main()
