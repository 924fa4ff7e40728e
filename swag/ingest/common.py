"""Helpers the importers share: per-frame SMB info read from a RAM snapshot."""

from __future__ import annotations

import numpy as np

# Info keys an imported SMB recording carries per frame; the same names (and values) as the
# gym-super-mario-bros info dict of our own recordings, so progress measures read them alike.
SMB_INFO_KEYS = ("x_pos", "y_pos", "world", "stage", "score", "time", "coins", "life", "status_value",
                 "player_state", "flag_get", "is_dying", "is_dead")

_SMB_READERS = {
    "x_pos": "_x_position", "y_pos": "_y_position", "world": "_world", "stage": "_stage", "score": "_score",
    "time": "_time", "coins": "_coins", "life": "_life", "status_value": "_status_value",
    "player_state": "_player_state", "flag_get": "_flag_get", "is_dying": "_is_dying", "is_dead": "_is_dead",
}


def _smb_ram_view_class():
    # Borrow SuperMarioBrosEnv's own RAM readers rather than copying its addresses, so an
    # imported frame's info is computed exactly as the emulator's info is.
    from gym_super_mario_bros.smb_env import SuperMarioBrosEnv

    names = ["_read_mem", "_read_mem_range", "_x_position", "_y_position", "_y_pixel", "_y_viewport", "_world",
             "_stage", "_score", "_time", "_coins", "_life", "_status_value", "_player_state", "_flag_get",
             "_is_dying", "_is_dead", "_is_world_over", "_is_stage_over"]
    return type("SMBRamView", (), {name: getattr(SuperMarioBrosEnv, name) for name in names})


_VIEW_CLASS = None


def smb_info_from_ram(ram: np.ndarray) -> dict[str, int | bool]:
    """The SMB info dict (SMB_INFO_KEYS) of one 2 KiB RAM snapshot."""
    global _VIEW_CLASS
    if _VIEW_CLASS is None:
        _VIEW_CLASS = _smb_ram_view_class()
    view = _VIEW_CLASS()
    view.ram = np.asarray(ram, dtype=np.uint8)
    info = {}
    for key, reader in _SMB_READERS.items():
        value = getattr(view, reader)
        info[key] = bool(value) if isinstance(value, (bool, np.bool_)) else int(value)
    return info


def sha256_file(path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB blocks."""
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
