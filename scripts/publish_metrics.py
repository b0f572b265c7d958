"""Publish each metric module under metrics/ as the Hugging Face Space ``<namespace>/<name>``.

    python scripts/publish_metrics.py --dry-run          # list exactly what would be uploaded, touch nothing
    python scripts/publish_metrics.py [--only iwer ...]  # needs a token with write access to the namespace

Each folder is one Space (gradio SDK, app.py + README.md metric card), the layout ``evaluate.load``
expects for ``evaluate.load("<namespace>/<name>")``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
METRICS = ROOT / "metrics"
SKIP = {"__pycache__", ".ipynb_checkpoints"}


def module_files(folder: Path) -> list[Path]:
    """The files of one module folder that belong in its Space."""
    return sorted(p for p in folder.rglob("*") if p.is_file() and not SKIP & set(p.relative_to(folder).parts) and p.suffix != ".pyc")


def plan(namespace: str, only: list[str] | None) -> list[tuple[str, Path, list[Path]]]:
    folders = sorted(p for p in METRICS.iterdir() if (p / f"{p.name}.py").is_file())
    if only:
        unknown = set(only) - {p.name for p in folders}
        if unknown:
            raise SystemExit(f"unknown module(s): {', '.join(sorted(unknown))}")
        folders = [p for p in folders if p.name in only]
    return [(f"{namespace}/{p.name}", p, module_files(p)) for p in folders]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--namespace", default="xares")
    parser.add_argument("--only", nargs="+", help="module names to publish (default: all)")
    parser.add_argument("--dry-run", action="store_true", help="print what would be uploaded and exit")
    parser.add_argument("--private", action="store_true")
    args = parser.parse_args(argv)
    spaces = plan(args.namespace, args.only)
    for repo_id, folder, files in spaces:
        print(f"space {repo_id} (sdk gradio) <- {folder.relative_to(ROOT)}/")
        for f in files:
            print(f"  {f.relative_to(folder).as_posix()}  ({f.stat().st_size} bytes)")
    if args.dry_run:
        print(f"dry run: {len(spaces)} spaces, {sum(len(f) for _, _, f in spaces)} files; nothing uploaded")
        return 0
    from huggingface_hub import HfApi

    api = HfApi()
    for repo_id, folder, files in spaces:
        api.create_repo(repo_id, repo_type="space", space_sdk="gradio", exist_ok=True, private=args.private)
        api.upload_folder(
            repo_id=repo_id,
            repo_type="space",
            folder_path=folder,
            allow_patterns=[f.relative_to(folder).as_posix() for f in files],
            commit_message=f"Publish {repo_id} from xares-hf",
        )
        print(f"published https://huggingface.co/spaces/{repo_id}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
