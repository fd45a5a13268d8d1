"""Colours, value mappings and thresholds, in the exporter's fault severity order.

Chip levels are the ranks of ``mindx_npu_chip_fault_level`` (exporter/sources/common.py
``CHIP_LEVELS``; tests/test_dashboards.py checks the names against it): green for healthy,
yellows for faults a restart fixes, orange for ``PreSeparateNPU``, red for the separated levels,
purple for a level the exporter does not know.
"""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as dash
from grafana_foundation_sdk.models import dashboard as model

# (rank, fault_handling name, colour); -1 first so thresholds ascend.
CHIP_LEVELS: tuple[tuple[int, str, str], ...] = (
    (-1, "Unknown level", "purple"),
    (0, "NormalNPU", "green"),
    (1, "NotHandleFault", "semi-dark-green"),
    (2, "SubHealthFault", "super-light-yellow"),
    (3, "RestartRequest", "light-yellow"),
    (4, "RestartBusiness", "yellow"),
    (5, "FreeRestartNPU", "semi-dark-yellow"),
    (6, "RestartNPU", "light-orange"),
    (7, "PreSeparateNPU", "orange"),
    (8, "SeparateNPU", "red"),
    (9, "ManuallySeparateNPU", "dark-red"),
)
LEVEL_COLOR = {rank: color for rank, _, color in CHIP_LEVELS}
LEVEL_NAME = {rank: name for rank, name, _ in CHIP_LEVELS}

# Node and switch statuses (mindx_node_status, mindx_switch_status) and Volcano's node states.
STATUS_COLORS: dict[str, str] = {
    "Healthy": "green",
    "SubHealthy": "yellow",
    "PreSeparate": "orange",
    "UnHealthy": "red",
    "NodeUnhealthy": "red",
    "CardUnhealthy": "red",
    "CardNetworkUnhealthy": "orange",
}
# Chip lists (mindx_node_npu_chips status label).
LIST_COLORS: dict[str, str] = {
    "available": "green",
    "recovering": "yellow",
    "network_unhealthy": "orange",
    "unhealthy": "red",
    "manually_separated": "dark-red",
}
# DPUs/NICs per state (mindx_node_dpus status label).
DPU_COLORS: dict[str, str] = {"healthy": "green", "faulty": "red"}
# Per-code levels: chip codes (fault_handling names), NodeD device levels, switch levels.
CODE_LEVEL_COLORS: dict[str, str] = {
    **{name: color for rank, name, color in CHIP_LEVELS if rank >= 0},
    "NotHandle": "semi-dark-green",
    "PreSeparateFault": "orange",
    "SeparateFault": "red",
    "PreSeparate": "orange",
    "Separate": "red",
}
# The RDMA device plugin's DPU/NIC fault levels (mindx_dpu_fault_code).
DPU_LEVEL_COLORS: dict[str, str] = {
    "SubHealthFault": CODE_LEVEL_COLORS["SubHealthFault"],
    "SeparateDPU": "red",
}


def level_mappings() -> list[model.ValueMapping]:
    """Value → "rank name" with the level's colour, for every panel that shows a chip level."""
    return [
        model.ValueMap(
            options={
                str(rank): model.ValueMappingResult(text=f"{rank} {name}", color=color, index=i)
                for i, (rank, name, color) in enumerate(CHIP_LEVELS)
            }
        )
    ]


def level_thresholds() -> dash.ThresholdsConfig:
    """Same colours as thresholds (for values between ranks and for colour-by-threshold modes)."""
    steps = [model.Threshold(value=None, color=LEVEL_COLOR[-1])]
    steps += [model.Threshold(value=float(rank), color=color) for rank, _, color in CHIP_LEVELS if rank >= 0]
    return dash.ThresholdsConfig().mode(model.ThresholdsMode.ABSOLUTE).steps(steps)


def text_mappings(colors: dict[str, str]) -> list[model.ValueMapping]:
    """Colour string cells / values by name (statuses, list names, fault levels)."""
    return [
        model.ValueMap(
            options={
                text: model.ValueMappingResult(color=color, index=i)
                for i, (text, color) in enumerate(colors.items())
            }
        )
    ]


def thresholds(base: str, *steps: tuple[float, str]) -> dash.ThresholdsConfig:
    return (
        dash.ThresholdsConfig()
        .mode(model.ThresholdsMode.ABSOLUTE)
        .steps(
            [model.Threshold(value=None, color=base), *(model.Threshold(value=v, color=c) for v, c in steps)]
        )
    )


def fixed_color(color: str) -> dash.FieldColor:
    return dash.FieldColor().mode(model.FieldColorModeId.FIXED).fixed_color(color)


def thresholds_color() -> dash.FieldColor:
    return dash.FieldColor().mode(model.FieldColorModeId.THRESHOLDS)


def override_color(color: str) -> model.DynamicConfigValue:
    return model.DynamicConfigValue(id_val="color", value={"mode": "fixed", "fixedColor": color})


def status_overrides(colors: dict[str, str]) -> list[tuple[str, list[model.DynamicConfigValue]]]:
    """(display-name regex, properties): series whose name ends in a status get its colour."""
    return [(f".*\\b{name}$", [override_color(color)]) for name, color in colors.items()]
