"""TiRex-2 checkpoints: a folder holding ``config.json`` and ``model.safetensors``.

Loading reads JSON and safetensors only (no pickle). A name that is not a folder is
looked up among the checkpoints shipped in the package, then, where the optional
``huggingface_hub`` is installed, on the Hugging Face hub (e.g. ``NX-AI/TiRex-2``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from ..._io import _umask, atomic_directory
from .config import TiRex2Config
from .network import TiRex2Network

CONFIG = "config.json"
WEIGHTS = "model.safetensors"
SHIPPED = Path(__file__).resolve().parents[2] / "weights"  # xlstm_ts/weights/<name>/


def _download_hint(name: str) -> str:
    return (f"On a machine with internet access run `huggingface-cli download {name} "
            f"{CONFIG} {WEIGHTS} --local-dir DIR` (or download those two files from "
            f"https://huggingface.co/{name}), copy DIR here and pass its path instead "
            f"of {name!r}.")


def resolve(name_or_path: str | os.PathLike) -> Path:
    """The checkpoint folder of a path, a shipped checkpoint's name or a hub name."""
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return path
    name = str(name_or_path)
    if (SHIPPED / name).is_dir():
        return SHIPPED / name
    if path.exists() or name.count("/") != 1 or name.startswith((".", "/", "~")):
        raise ValueError(f"pretrained={name!r} is neither a checkpoint folder (with {CONFIG} "
                         f"and {WEIGHTS}) nor a shipped checkpoint "
                         f"({', '.join(shipped_names()) or 'none'}) nor a hub name "
                         f"like 'NX-AI/TiRex-2'.")
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        raise ImportError(f"pretrained={name!r} names a Hugging Face checkpoint; downloading "
                          f"it needs huggingface_hub: pip install 'xlstm-ts[pretrained]'. "
                          f"{_download_hint(name)}") from None
    try:
        return Path(snapshot_download(repo_id=name, allow_patterns=[CONFIG, WEIGHTS]))
    except Exception as error:  # offline, unknown repo, no access: one clear message
        raise OSError(f"Could not download the checkpoint {name!r} ({type(error).__name__}: "
                      f"{error}). {_download_hint(name)}") from None


def shipped_names() -> list[str]:
    """Names of the checkpoints in the package."""
    return sorted(p.name for p in SHIPPED.iterdir() if (p / CONFIG).is_file()) \
        if SHIPPED.is_dir() else []


def _canonical(key: str) -> str:
    """The name our network gives a checkpoint tensor: the reverse cell is the forward
    cell (shared weights) and ``recurrent_kernel`` an alias of ``_recurrent_kernel_``."""
    key = key.replace(".rev_cell.", ".fwd_cell.")
    if key.endswith(".recurrent_kernel"):
        key = key[: -len("recurrent_kernel")] + "_recurrent_kernel_"
    return key


def match_state(net: TiRex2Network, tensors: dict[str, torch.Tensor], source: str) -> dict:
    """``tensors`` (checkpoint names, aliases allowed) as ``net``'s state dict; a
    ValueError names any tensor that is missing, unknown, ambiguous or misshapen."""
    state = net.state_dict()
    matched: dict[str, tuple[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        name = _canonical(key)
        if name not in state:
            raise ValueError(f"{source}: tensor {key!r} has no place in the network that "
                             f"config.json describes (unknown name).")
        if name in matched and not torch.equal(matched[name][1], value):
            raise ValueError(f"{source}: {matched[name][0]!r} and {key!r} should hold the "
                             f"same (shared) weights but differ.")
        matched[name] = (key, value)
    missing = sorted(set(state) - set(matched))
    if missing:
        raise ValueError(f"{source}: {len(missing)} tensor(s) of the network are not in the "
                         f"checkpoint, e.g. {missing[:3]}.")
    for name, (key, value) in matched.items():
        if tuple(value.shape) != tuple(state[name].shape):
            raise ValueError(f"{source}: tensor {key!r} has shape {tuple(value.shape)}; the "
                             f"network that config.json describes needs "
                             f"{tuple(state[name].shape)} (embedding_dim "
                             f"{net.config.embedding_dim}, patch {net.config.patch_size}, "
                             f"{len(net.config.quantiles)} quantiles).")
        if not value.dtype.is_floating_point:
            raise ValueError(f"{source}: tensor {key!r} is {value.dtype}, not floating point.")
    return {name: value.float() for name, (_, value) in matched.items()}


def load_checkpoint(name_or_path: str | os.PathLike) -> TiRex2Network:
    """The network of a checkpoint (folder, shipped name or hub name), in eval mode."""
    from safetensors.torch import load_file

    folder = resolve(name_or_path)
    for file in (CONFIG, WEIGHTS):
        if not (folder / file).is_file():
            raise ValueError(f"{folder} is not a TiRex-2 checkpoint: {file} is missing.")
    try:
        config = TiRex2Config.from_dict(json.loads((folder / CONFIG).read_text()))
    except json.JSONDecodeError as error:
        raise ValueError(f"{folder / CONFIG} is not valid JSON: {error}") from None
    net = TiRex2Network(config)
    try:
        tensors = load_file(folder / WEIGHTS, device="cpu")
    except Exception as error:  # safetensors raises its own types on damaged files
        raise ValueError(f"{folder / WEIGHTS} is not a readable safetensors file: "
                         f"{error}") from None
    net.load_state_dict(match_state(net, tensors, str(folder / WEIGHTS)))
    return net.eval()


def save_checkpoint(net: TiRex2Network, folder: str | os.PathLike) -> Path:
    """Write ``net`` as ``config.json`` + ``model.safetensors`` (float32) into
    ``folder``, atomically: a failed save leaves any previous checkpoint whole. Files
    get the permissions the umask gives ordinary files."""
    from safetensors.torch import save_file

    def write(staging: Path) -> None:
        (staging / CONFIG).write_text(json.dumps(net.config.to_dict(), indent=2))
        save_file({k: v.detach().float().contiguous() for k, v in net.state_dict().items()},
                  staging / WEIGHTS)
        for file in (CONFIG, WEIGHTS):
            os.chmod(staging / file, 0o666 & ~_umask())

    atomic_directory(folder, write)
    return Path(folder)
