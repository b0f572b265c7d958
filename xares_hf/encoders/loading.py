"""``load_encoder``: turn a Hub id, a local folder, a ``.py`` file, a baseline name or a module into an encoder."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import torch

from .baseline import LogMelEncoder
from .contract import EncoderContractError, check_encoder
from .module_file import error_line, load_module_file
from .transformers_encoder import TransformersEncoder

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt")


def _silero() -> torch.nn.Module:
    from .silero import SileroVadEncoder

    return SileroVadEncoder()


BUILTIN_ENCODERS = {"log-mel": LogMelEncoder, "baseline": LogMelEncoder, "silero-vad": _silero}


def load_encoder(
    model: str | os.PathLike | torch.nn.Module,
    layer: int | str | None = None,
    revision: str | None = None,
    device: str | torch.device | None = None,
    pad_whisper: bool = True,
    trust_remote_code: bool = False,
) -> torch.nn.Module:
    """An encoder meeting the X-ARES contract, with an ``identity`` dict used to key the embedding cache.

    ``model`` is a built-in baseline name (``"log-mel"``), a path to a ``.py`` file defining an
    encoder class (``file.py`` or ``file.py:ClassName``), a local ``save_pretrained`` folder or Hub
    id of any ``transformers`` audio model (``layer`` picks the hidden state, default the last; ``"all"`` stacks every one), or
    an ``nn.Module`` (a ``PreTrainedModel`` is wrapped; anything else must meet the contract).
    Built-in names: ``log-mel`` (weight-free baseline) and ``silero-vad`` (pretrained, from its PyPI wheel).
    ``pad_whisper=False`` encodes Whisper models on each clip's own length instead of 30 s windows.
    ``trust_remote_code=True`` lets a model that ships its own Python code (``auto_map`` in its config) run
    that code; it is off by default, and such a model is refused with an :class:`EncoderContractError`.
    """
    if isinstance(model, torch.nn.Module):
        encoder = _from_module(model, layer)
    elif not isinstance(model, (str, os.PathLike)):
        raise EncoderContractError(
            f"cannot use a {type(model).__name__} as an encoder: not a torch.nn.Module, a Hub id or a path"
        )
    else:
        text = str(model)
        if text in BUILTIN_ENCODERS:
            encoder = BUILTIN_ENCODERS[text]()
        elif text.split(":")[0].endswith(".py"):
            encoder = load_module_file(text)
        else:
            encoder = _from_pretrained(text, layer, revision, pad_whisper, trust_remote_code)
    if layer is not None and not isinstance(encoder, TransformersEncoder):
        raise ValueError(f"layer={layer} needs a transformers model; {type(encoder).__name__} has a single output")
    if device is not None:
        encoder = encoder.to(device)
    return encoder.eval()


def _from_module(module: torch.nn.Module, layer: int | str | None) -> torch.nn.Module:
    from transformers import PreTrainedModel

    if isinstance(module, TransformersEncoder):
        return module
    if isinstance(module, PreTrainedModel):
        from transformers import AutoFeatureExtractor

        source = module.config.name_or_path
        try:
            extractor = AutoFeatureExtractor.from_pretrained(source)
        except Exception as err:
            raise EncoderContractError(
                f"no feature extractor found for {type(module).__name__} (name_or_path={source!r}): "
                "pass a Hub id or folder with a preprocessor_config.json instead"
            ) from err
        identity = {"id": source or type(module).__name__, "revision": f"weights-sha256:{state_dict_hash(module)}"}
        return TransformersEncoder(module, extractor, layer=layer, identity=identity)
    if getattr(module, "identity", None) is None:
        module.identity = {"id": type(module).__qualname__, "revision": f"weights-sha256:{state_dict_hash(module)}"}
    return module


def _needs_remote_code(err: BaseException) -> bool:
    """transformers' refusal to run a model's own code without ``trust_remote_code=True``."""
    return isinstance(err, ValueError) and "trust_remote_code" in str(err)


def _from_pretrained(
    name: str, layer: int | str | None, revision: str | None, pad_whisper: bool = True, trust_remote_code: bool = False
) -> TransformersEncoder:
    from transformers import AutoFeatureExtractor, AutoModel

    local = Path(name).expanduser()
    source = str(local) if local.is_dir() else name
    if not local.is_dir() and (name.startswith((".", "/", "~")) or name.count("/") > 1):
        raise FileNotFoundError(f"encoder '{name}' is neither a folder nor a Hub id (org/name)")
    try:
        extractor = AutoFeatureExtractor.from_pretrained(source, revision=revision, trust_remote_code=trust_remote_code)
        model = AutoModel.from_pretrained(source, revision=revision, trust_remote_code=trust_remote_code)
    except ValueError as err:
        if trust_remote_code or not _needs_remote_code(err):
            raise
        code = local.resolve() if local.is_dir() else f"https://hf.co/{name}"
        raise EncoderContractError(
            f"transformers model '{name}' ships its own Python code (auto_map in its config, files at {code}), "
            "which xares-hf does not run unless you allow it: review that code, then pass trust_remote_code=True "
            "(command line: --trust-remote-code)"
        ) from err
    except OSError as err:
        raise EncoderContractError(
            f"cannot load transformers model '{name}': {err}\n"
            "  (offline? set HF_HUB_OFFLINE=1 and make sure the model is in the Hub cache, or pass a local folder)"
        ) from err
    except Exception as err:  # weights that refuse to load: a pickle torch.load will not run, a damaged file
        raise EncoderContractError(f"cannot load transformers model '{name}': {error_line(err)}") from err
    if local.is_dir():
        rev = f"weights-sha256:{folder_weights_hash(local)}"
    else:
        rev = _hub_commit(name, revision) or revision or "unknown"
    return TransformersEncoder(model, extractor, layer=layer, identity={"id": name, "revision": rev}, pad_whisper=pad_whisper)


def _hub_commit(repo_id: str, revision: str | None) -> str | None:
    """The commit of the cached snapshot transformers just loaded (``snapshots/<commit>/config.json``)."""
    from huggingface_hub import try_to_load_from_cache

    cached = try_to_load_from_cache(repo_id, "config.json", revision=revision)
    return Path(cached).parent.name if isinstance(cached, str) else None


def folder_weights_hash(folder: Path) -> str:
    """SHA-256 over a model folder's weight and config files (names and contents), streamed.

    A model's own Python code (``*.py``, run with ``trust_remote_code=True``) counts too: changed code never
    reuses old embeddings. Folders without code hash as before."""
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        if path.is_file() and (path.suffix in WEIGHT_SUFFIXES or path.suffix == ".py" or path.name.endswith("config.json")):
            digest.update(path.relative_to(folder).as_posix().encode())
            with path.open("rb") as handle:
                for chunk in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(chunk)
    return digest.hexdigest()[:16]


def state_dict_hash(module: torch.nn.Module) -> str:
    """SHA-256 over a module's parameters and buffers, so changed weights never reuse old embeddings."""
    digest = hashlib.sha256(type(module).__qualname__.encode())
    for key, tensor in sorted(module.state_dict().items()):
        digest.update(key.encode())
        digest.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:16]


__all__ = ["load_encoder", "check_encoder", "folder_weights_hash", "state_dict_hash"]
