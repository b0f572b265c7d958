"""Runs the original xares 0.1.3 on tasks of X-ARES-layout data; executed by ``compare_with_xares.py`` with the
python of a venv holding ``xares==0.1.3`` (never imported by xares-hf or its tests).

    python xares_driver.py ENCODER_PY ENV_ROOT OUT_JSON SEEDS TASK_MODULE:CONFIG_FUNCTION ...

Each task is encoded once by xares (its ``make_encoded_tar``), its MLP trained and scored once per seed (the
checkpoint folder emptied between seeds), and its k-NN scored once. Written to OUT_JSON: per task the MLP score
of each seed, the k-NN score, and how many samples xares reads back from its encoded shards per split.
"""

import importlib
import json
import shutil
import sys
import time
from pathlib import Path

import webdataset as wds
from xares.audiowebdataset import fast_warn_and_continue
from xares.task import XaresTask
from xares.utils import attr_from_py_path


def _read_back(urls: list[str]) -> int:
    """Samples that webdataset yields from xares' encoded shards (a repeated key is dropped, as xares' reader does)."""
    count = 0
    # xares' own handler: webdataset's warn_and_continue sleeps half a second per dropped member
    for _ in wds.WebDataset(urls, shardshuffle=False, handler=fast_warn_and_continue, empty_check=False):
        count += 1
    return count


def run_task(encoder_py: str, env_root: Path, spec: str, seeds: list[int]) -> dict:
    module, function = spec.split(":")
    make_config = getattr(importlib.import_module(module), function)
    result: dict = {"mlp": [], "knn": None, "read_back": {}, "seconds": {}}
    for run, seed in enumerate(seeds):
        encoder = attr_from_py_path(encoder_py, endswith="Encoder")()
        config = make_config(encoder)
        config.env_root, config.seed = str(env_root), seed
        task = XaresTask(config=config)
        (task.env_dir / config.xares_settings.audio_ready_filename).touch()  # the data is there: no download
        if run == 0:
            started = time.perf_counter()
            task.make_encoded_tar()
            result["seconds"]["encode"] = time.perf_counter() - started
            for split, path in task.encoded_tar_path_of_split.items():
                urls = sorted(str(p) for p in path.parent.glob(path.name))
                result["read_back"][str(split)] = _read_back(urls)
        shutil.rmtree(task.ckpt_dir, ignore_errors=True)
        task.ckpt_dir.mkdir(parents=True, exist_ok=True)
        task.ckpt_path = task.ckpt_dir / task.config.ckpt_name
        started = time.perf_counter()
        score, _ = task.run_mlp()
        result["seconds"].setdefault("mlp", []).append(time.perf_counter() - started)
        result["mlp"].append(float(score))
        if run == 0 and config.do_knn:
            started = time.perf_counter()
            result["knn"] = float(task.run_knn()[0])
            result["seconds"]["knn"] = time.perf_counter() - started
        result["name"] = config.name
    return result


def main(argv: list[str]) -> None:
    encoder_py, env_root, out, seeds, *specs = argv
    sys.path.insert(0, str(Path(encoder_py).resolve().parent))  # xares imports the encoder file as a module name
    encoder_py = Path(encoder_py).name
    results = {}
    for spec in specs:
        results[spec] = run_task(encoder_py, Path(env_root), spec, [int(s) for s in seeds.split(",")])
        Path(out).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main(sys.argv[1:])
