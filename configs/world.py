"""Simulated e-commerce search world (catalog, queries, users, biased click logs).

Launch:
    python -m experiments.build_world --config=configs/world.py:small --workdir=W

Presets: `tiny` (~3k items, whole world incl. logs in seconds, for tests), `small` (~20k items),
`base` (~1M items, several million exposure rows, streamed). Any field can be overridden, e.g.
`--config=configs/world.py:small --config.num_items=50000`, or in code
`get_config('tiny,num_items=500,seed=3')`. Knob defaults live in onesearch_jax/data/world.py.

Expected (small, measured over seeds 0-2): 13-19% of train clicks land on irrelevant (tier-0)
items, 46-49% for negation and 29-37% for need queries; memorising train clicks puts a fully relevant
item in the top 10 for ~87-100% of head test searches but ~55% of tail ones (precision@10 ~0.5-0.7
vs ~0.13; ~21% of tail test searches have no train history); the legacy lexical engine fills ~60%
of negation result slots with tier-0 items, ~36% with items containing the excluded component.
"""
import ml_collections

from onesearch_jax.world.world import default_config, validate_config  # noqa: F401 (re-export)

PRESETS = ("tiny", "small", "base")


def _apply_preset(c, preset):
    c.preset = preset
    if preset == "tiny":
        pass
    elif preset == "small":
        c.num_items, c.num_queries, c.num_users = 20_000, 10_000, 5_000
        c.num_days, c.events_per_day = 14, 8_000
    elif preset == "base":
        c.num_items, c.num_queries, c.num_users = 1_000_000, 100_000, 200_000
        c.num_days, c.events_per_day = 30, 20_000
        c.max_posting = 2_500
        c.event_chunk = 8192
    return c


def _parse_value(text, like):
    if isinstance(like, bool):
        if text.lower() not in ("true", "false", "1", "0"):
            raise ValueError(f"expected a boolean, got {text!r}")
        return text.lower() in ("true", "1")
    if isinstance(like, int):
        return int(text)
    if isinstance(like, float):
        return float(text)
    return text


def get_config(arg=None) -> ml_collections.ConfigDict:
    """`arg` = preset name, optionally followed by `,key=value` overrides ('tiny,num_items=500')."""
    parts = (arg or "tiny").split(",")
    preset = parts[0].strip()
    if preset not in PRESETS:
        raise ValueError(f"unknown world preset {preset!r}; valid presets: {', '.join(PRESETS)}")
    c = _apply_preset(default_config(), preset)
    for part in parts[1:]:
        if "=" not in part:
            raise ValueError(f"override {part!r} must look like key=value")
        key, value = (s.strip() for s in part.split("=", 1))
        if key not in c or isinstance(c[key], (ml_collections.ConfigDict, tuple)):
            raise ValueError(f"unknown or non-scalar world config key {key!r}; valid keys: "
                             f"{', '.join(sorted(k for k in c if not isinstance(c[k], (ml_collections.ConfigDict, tuple))))}")
        c[key] = _parse_value(value, c[key])
    return c
