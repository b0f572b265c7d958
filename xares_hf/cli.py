"""``xares-hf``: evaluate an encoder, check one against the contract, or list the tasks."""

from __future__ import annotations

import argparse
import sys

from . import api


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="xares-hf", description="The X-ARES audio-encoder benchmark on the Hugging Face stack.")
    sub = parser.add_subparsers(dest="command", required=True)

    ev = sub.add_parser("evaluate", help="evaluate an encoder and print its results table")
    ev.add_argument("model", help="Hub id, model folder, encoder.py[:Class], or a baseline (log-mel)")
    ev.add_argument("--tasks", nargs="+", help="task names, card files or card folders (default: the built-in suite)")
    ev.add_argument("--data-dir", help="folder holding <task>/<split>*.tar (default: the built-in suite's, or $XARES_HF_DATA)")
    ev.add_argument("--output-dir", default="xares_results", help="where <encoder>/results.json is written")
    ev.add_argument("--cache-dir", help="embedding cache folder (default: $XARES_HF_CACHE or ~/.cache/huggingface/xares_hf)")
    ev.add_argument("--layer", type=_layer, help="hidden-state index of a transformers model (default: last), "
                    "'all' (probe every layer: a layer profile) or 'weighted' (a learnt weighted sum of layers)")
    ev.add_argument("--seeds", type=int, default=1, help="train the probes with this many seeds: mean and std of scores")
    ev.add_argument("--revision", help="Hub revision of the model")
    ev.add_argument("--device", help="cpu, cuda, cuda:1, ... (default: cuda if available)")
    ev.add_argument("--seed", type=int, default=42)
    ev.add_argument("--mixed-precision", choices=["no", "bf16", "fp16"], help="autocast while encoding (fp16 needs a GPU)")
    ev.add_argument("--no-knn", action="store_true", help="skip the k-NN probe")
    ev.add_argument("--asr-head", choices=["llm", "ctc"], help="ASR head: adapter into a frozen causal LM (the paper's) or a CTC probe")
    ev.add_argument("--no-whisper-padding", action="store_true", help="encode Whisper models on each clip's length, not 30 s windows (faster)")
    ev.add_argument("--on-bad-sample", choices=["error", "skip"], default="error",
                    help="a corrupt sample or bad label stops the run (default) or is skipped and reported in the results")
    ev.add_argument("--trust-remote-code", action="store_true",
                    help="allow a Hub model's own Python code to run (review it first); off by default")
    ev.add_argument("--decode-workers", type=int, metavar="N",
                    help="processes decoding audio ahead of the encoder (0: none; default: none on CPU, else cores - 1, at most 8)")
    ev.add_argument("--protocol", choices=sorted(api.PROTOCOLS), default=api.DEFAULT_PROTOCOL,
                    help="xares-hf (default: cosine k-NN, padding trimmed, every crop kept) or xares-0.1.3 "
                    "(reproduces xares 0.1.3's computations; its numbers are a different measurement)")
    ev.add_argument("--asr-decoder", help="causal LM of the 'llm' ASR head (Hub id or folder; default Qwen/Qwen2.5-0.5B)")

    ch = sub.add_parser("check", help="check that an encoder meets the X-ARES encoder contract")
    ch.add_argument("model")
    ch.add_argument("--layer", type=int)

    tasks = sub.add_parser("tasks", help="list the shipped task cards, and whether their data is present")
    tasks.add_argument("--data-dir", help="where task data is looked for (default: $XARES_HF_DATA or the cache)")

    download = sub.add_parser("download", help="fetch tasks' data from their Zenodo records")
    download.add_argument("tasks", nargs="+", help="task names or card files")
    download.add_argument("--data-dir", help="destination (default: $XARES_HF_DATA or the cache)")

    push = sub.add_parser("push-data", help="upload tasks' shards to a Hub dataset repo with a config per task")
    push.add_argument("tasks", nargs="+", help="task names or card files")
    push.add_argument("--repo", required=True, help="ORG/NAME of the dataset repo")
    push.add_argument("--data-dir", help="where the shards are (default: $XARES_HF_DATA or the cache)")
    push.add_argument("--private", action="store_true")
    push.add_argument("--dry-run", action="store_true", help="show the files and the dataset card, upload nothing")

    mini = sub.add_parser("mini", help="the built-in xares-mini suite")
    mini_sub = mini.add_subparsers(dest="mini_command", required=True)
    build = mini_sub.add_parser("build", help="build xares-mini (real audio from espeak-ng, fluidsynth, ufoai-sound)")
    build.add_argument("--size", choices=["tiny", "mini"], default="mini")
    build.add_argument("--seed", type=int, default=0)
    build.add_argument("--out", help="output folder (default: the cache folder `xares-hf evaluate` reads)")
    build.add_argument("--tasks", nargs="+", help="only these mini tasks")

    board = sub.add_parser("leaderboard", help="serve the leaderboard app on 127.0.0.1 (or --print a table)")
    board.add_argument("--results", default="xares_results", help="folder of results.json files (default: xares_results)")
    board.add_argument("--host", help="address to listen on (default: $GRADIO_SERVER_NAME, else 127.0.0.1)")
    board.add_argument("--port", type=int, help="port (default: $GRADIO_SERVER_PORT, else 7860)")
    board.add_argument("--print", action="store_true", help="print the runs side by side instead of serving the app")

    card = sub.add_parser("export-card", help="model card (model-index) and .eval_results/ files from a results.json; optionally push them")
    card.add_argument("results", help="a results.json written by `xares-hf evaluate`")
    card.add_argument("--out", help="folder for README.md and .eval_results/ (default: the results file's folder; a README.md there is merged)")
    card.add_argument("--push", metavar="REPO", help="model repo ORG/NAME: commit README.md (merged with its card) and .eval_results/ to it")
    card.add_argument("--dry-run", action="store_true", help="with --push: show the files and the commit, upload nothing")
    card.add_argument("--pr", action="store_true", help="with --push: open a pull request instead of committing to main")
    card.add_argument("--benchmark", default="xares/xares-benchmark", help="benchmark dataset repo the results refer to")
    sub.add_parser(
        "register-metrics", help='make evaluate.load("xares/<name>") work offline by caching the shipped modules'
    )
    return parser


def _layer(text: str) -> int | str:
    """``--layer``: an integer, or 'all' / 'weighted'."""
    if text in ("all", "weighted"):
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a layer index, 'all' or 'weighted', got {text!r}") from None


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "evaluate":
            results = api.evaluate(
                args.model,
                tasks=args.tasks,
                data_dir=args.data_dir,
                output_dir=args.output_dir,
                cache_dir=args.cache_dir,
                layer=args.layer,
                revision=args.revision,
                device=args.device,
                seed=args.seed,
                knn=not args.no_knn,
                asr_head=args.asr_head,
                asr_decoder=args.asr_decoder,
                pad_whisper=not args.no_whisper_padding,
                mixed_precision=args.mixed_precision,
                on_bad_sample=args.on_bad_sample,
                trust_remote_code=args.trust_remote_code,
                seeds=args.seeds,
                protocol=args.protocol,
                decode_workers=args.decode_workers,
            )
            from . import distributed

            if not distributed.is_main():
                return 0
            print(results)
            for task in results.tasks:
                if task.skipped:
                    print(f"{task.name}: {len(task.skipped)} bad samples skipped (listed in results.json), "
                          f"first: {task.skipped[0]['file']} '{task.skipped[0]['key']}': {task.skipped[0]['reason']}")
                if task.left_out:
                    first = task.left_out[0]
                    print(f"{task.name}: {len(task.left_out)} things left out (listed in results.json as left_out), "
                          f"first: {first['file']} '{first['key']}': {first['reason']}")
            if args.output_dir:
                print(f"\nresults written under {args.output_dir}/")
        elif args.command == "check":
            print(api.check_encoder(args.model, layer=args.layer))
        elif args.command == "mini":
            out = api.build_mini(size=args.size, seed=args.seed, out=args.out, tasks=args.tasks)
            print(f"xares-mini ({args.size}) is in {out}: cards in {out / 'cards'}")
        elif args.command == "leaderboard":
            if args.print:
                print(api.leaderboard_table(args.results))
            else:
                api.serve_leaderboard(args.results, host=args.host, port=args.port)
        elif args.command == "export-card":
            if args.dry_run and not args.push:
                raise ValueError("--dry-run applies to --push")
            if args.push:
                print(api.push_card(args.results, args.push, dry_run=args.dry_run, dataset_repo=args.benchmark,
                                    create_pr=args.pr))
            if args.out or not args.push:
                for path in api.export_card(args.results, args.out, dataset_repo=args.benchmark):
                    print(f"wrote {path}")
        elif args.command == "register-metrics":
            for module_id in api.register_metrics():
                print(f"registered {module_id}")
        elif args.command == "download":
            for name, files in api.download_tasks(args.tasks, args.data_dir).items():
                print(f"{name}: {sum(len(f) for f in files.values())} shards in {len(files)} splits")
        elif args.command == "push-data":
            plan = api.plan_data_push(args.tasks, args.data_dir, args.repo)
            print(plan)
            if not args.dry_run:
                print(f"pushed: {api.push_data(plan, private=args.private)}")
        else:
            _print_rows(api.task_overview(args.data_dir))
    except api.INPUT_ERRORS as err:
        print(f"xares-hf: error: {err}", file=sys.stderr)
        return 2
    return 0


def _print_rows(rows: list[dict[str, str]]) -> None:
    """Rows of equal keys as a plain aligned table."""
    if not rows:
        return
    table = [tuple(rows[0]), *(tuple(r.values()) for r in rows)]
    widths = [max(len(r[i]) for r in table) for i in range(len(table[0]))]
    for r in table:
        print("  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip())


if __name__ == "__main__":
    sys.exit(main())
