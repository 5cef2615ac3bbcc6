"""Device profiles: where and how a candidate is measured (threads, pinned cores, a memory cap, the device).

Profiles are YAML files, one per file: the bundled ones (benchmarks/profiles/), then the user's
(`<config dir>/profiles/*.yaml`, e.g. ~/.config/edgeopt/profiles) and any directory passed in; a later
file with the same name replaces an earlier one. `cuda:N` profiles are added for each CUDA GPU present.
Edge boards are *emulated* on this host (thread count, CPU affinity, memory cap) and labelled so everywhere,
or *remote*: measured on the board itself through its device agent (`edgeopt devices add`, `remote:` below).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml
from pydantic import Field, ValidationError

from edgeopt.core.errors import InvalidInput
from edgeopt.core.paths import config_dir
from edgeopt.core.strict import StrictModel

BUNDLED_DIR = Path(__file__).resolve().parent / "profiles"


class RemoteTransport(StrictModel):
    """A board reached through its device agent (`edgeopt agent serve`); written by `edgeopt devices add`."""

    url: str = Field(pattern=r"^https?://", description="the agent's address, e.g. http://pi.local:8765")
    token_env: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
                           description="the environment variable that holds the agent's bearer token")
    ca_file: str | None = Field(None, description="CA certificate to check an https agent against")
    board: dict[str, Any] = Field(default_factory=dict, description="what the agent said when added (CPU, "
                                                                    "runtimes, its own profile)")

    def cannot_run(self, runtime: str) -> str | None:
        """Why the board cannot run `runtime` (from what it said when added), or None."""
        runtimes = self.board.get("runtimes")
        if runtimes is not None and runtime not in runtimes:
            return f"the agent at {self.url} runs {', '.join(runtimes) or 'no runtime'}, not {runtime}"
        return None


class DeviceProfile(StrictModel):
    """One measuring setup. `cores` pins the process to that many usable cores; `memory_mb` caps its peak RSS."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.:-]+$")
    description: str = ""
    device: str = Field("cpu", description="cpu, or cuda:N")
    threads: int | None = Field(None, ge=1, description="intra-op threads; None = the runtime's default")
    cores: int | None = Field(None, ge=1, description="pin to this many usable cores; None = all")
    memory_mb: int | None = Field(None, ge=16, description="peak resident memory allowed; exceeding it is a "
                                                           "measured failure")
    emulated: bool = Field(False, description="an edge device emulated on this host")
    remote: RemoteTransport | None = Field(None, description="measured on a board through its device agent")
    ray_resource: str | None = Field(None, description="the Ray resource a node carries to measure under this "
                                                       "profile (default device:<name>; docs/scale.md)")
    source: str = Field("", description="the file the profile came from (filled in when loading)")

    @property
    def is_cuda(self) -> bool:
        return self.device.startswith("cuda")

    def pinned_cores(self) -> tuple[list[int] | None, list[str]]:
        """The CPU ids to pin to (None = do not pin) and warnings when this host cannot honour the profile."""
        if self.cores is None:
            return None, []
        usable = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
        if not usable:
            return None, [f"profile {self.name}: CPU affinity is not supported on this OS; cores not pinned"]
        chosen = usable[: self.cores]
        warnings = []
        if len(chosen) < self.cores:
            warnings.append(f"profile {self.name} wants {self.cores} cores; this host has {len(usable)} usable, "
                            f"so it ran on {len(chosen)}")
        return chosen, warnings

    def host_warnings(self) -> list[str]:
        """What this host cannot honour: more cores or more memory than it has (the profile measures less)."""
        import psutil

        warnings = self.pinned_cores()[1]
        host_mb = psutil.virtual_memory().total / 2**20
        if self.memory_mb is not None and self.memory_mb > host_mb:
            warnings.append(f"profile {self.name} allows {self.memory_mb} MB; this host has only {host_mb:.0f} MB, "
                            "so the cap never binds")
        return warnings


def load_profile_file(path: Path) -> DeviceProfile:
    """One YAML profile; errors name the file and the field."""
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as error:
        raise InvalidInput(f"{path}: cannot read device profile: {error}") from None
    if not isinstance(data, dict):
        raise InvalidInput(f"{path}: a device profile is a YAML mapping (name, device, threads, cores, memory_mb)")
    data.setdefault("name", path.stem)
    try:
        return DeviceProfile.model_validate({**data, "source": str(path)})
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in error.errors())
        raise InvalidInput(f"{path}: invalid device profile: {problems}") from None


def profile_dirs(extra: list[Path] | None = None) -> list[Path]:
    return [BUNDLED_DIR, config_dir() / "profiles", *(Path(p) for p in extra or [])]


def cuda_profiles() -> list[DeviceProfile]:
    from edgeopt.core.environment import cuda_devices

    return [DeviceProfile(name=f"cuda:{d['index']}", device=f"cuda:{d['index']}", source="detected",
                          description=f"{d['name']} ({d['memory_bytes'] / 2**30:.0f} GiB, "
                                      f"compute {d['capability']})") for d in cuda_devices()]


def list_profiles(extra_dirs: list[Path] | None = None, probe_cuda: bool = True) -> dict[str, DeviceProfile]:
    """Every profile by name: bundled, then user, then extra directories, then detected GPUs."""
    profiles: dict[str, DeviceProfile] = {}
    for directory in profile_dirs(extra_dirs):
        if directory.is_dir():
            for file in sorted([*directory.glob("*.yaml"), *directory.glob("*.yml")]):
                profile = load_profile_file(file)
                profiles[profile.name] = profile
        elif extra_dirs and directory in [Path(p) for p in extra_dirs]:
            raise InvalidInput(f"{directory}: profile directory does not exist")
    if probe_cuda:
        for profile in cuda_profiles():
            profiles.setdefault(profile.name, profile)
    return profiles


def get_profile(name: str, extra_dirs: list[Path] | None = None) -> DeviceProfile:
    """A profile by name; `cuda:N` is only probed (importing torch) when asked for."""
    profiles = list_profiles(extra_dirs, probe_cuda=name.startswith("cuda"))
    if name not in profiles:
        hint = " (no CUDA GPU is visible to torch here)" if name.startswith("cuda") else ""
        raise InvalidInput(f"unknown device profile {name!r}{hint}; known: {', '.join(sorted(profiles))}. "
                           f"Add your own as YAML in {config_dir() / 'profiles'}")
    return profiles[name]
