"""Simulated e-commerce search world (catalog, queries, users, biased click logs).

Launch:
    python -m experiments.build_world --config=configs/world.py:small --workdir=W

Presets: `tiny` (~3k items, whole world incl. logs in seconds, for tests), `small` (~20k items),
`base` (~1M items, several million exposure rows, streamed). Any field can be overridden, e.g.
`--config=configs/world.py:small --config.num_items=50000 --config.keywords.bias_rate=0.3`, or
in code `get_config('tiny,num_items=500,keywords.bias_rate=0.3')`. Knob defaults live in
onesearch_jax/world/world.py (the keyword writer's in world/keyword_llm.py).

Expected (small, seed 0, world v2; docs/world.md has the tables): ~20% of clicks land on
irrelevant (tier-0) items, ~46% for negation queries; the keyword writer's precision against the
ground truth is ~0.89; 0 test queries have training keywords; ~12% of test searches issue a query
absent from the training logs; BM25 / memorisation / legacy engine reach rel_hr@10 ~0.69 / 0.79 /
0.91, and memorisation ~0.07 on unseen queries; the relevance oracle's A/B lift over the legacy
engine is ~+29% CTR.
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
        *path, leaf = key.split(".")
        node = c
        for name in path:  # dotted keys reach into sections: keywords.bias_rate
            node = node.get(name) if isinstance(node, ml_collections.ConfigDict) else None
        if (not isinstance(node, ml_collections.ConfigDict) or leaf not in node
                or isinstance(node[leaf], (ml_collections.ConfigDict, tuple))):
            raise ValueError(f"unknown or non-scalar world config key {key!r}; valid keys: "
                             f"{', '.join(sorted(_scalar_keys(c)))}")
        node[leaf] = _parse_value(value, node[leaf])
    return c


def _scalar_keys(c, prefix=""):
    for k in c:
        if isinstance(c[k], ml_collections.ConfigDict):
            yield from _scalar_keys(c[k], f"{prefix}{k}.")
        elif not isinstance(c[k], tuple):
            yield prefix + k
