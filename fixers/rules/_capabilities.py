"""Capability lists shared by the capability fixers."""

from __future__ import annotations

from typing import Any

# Kubescape's default settings.postureControlInputs.insecureCapabilities.
INSECURE = frozenset(
    {
        "SETPCAP",
        "NET_ADMIN",
        "NET_RAW",
        "SYS_MODULE",
        "SYS_RAWIO",
        "SYS_PTRACE",
        "SYS_ADMIN",
        "SYS_BOOT",
        "MAC_OVERRIDE",
        "MAC_ADMIN",
        "PERFMON",
        "ALL",
        "BPF",
    }
)


def normalise(capability: Any) -> str:
    """``cap_sys_admin`` and ``SYS_ADMIN`` name the same capability."""
    text = str(capability).strip().upper()
    return text.removeprefix("CAP_")
