"""Dump every key TRL's own parser accepts for ORPO into tests/fixtures/config/trl_keys.json.

`trl orpo --config FILE` (TRL's `examples/scripts/orpo.py`) parses its YAML with
`TrlParser((ScriptArguments, ORPOConfig, ModelConfig))`; ORPOConfig extends transformers'
`TrainingArguments`. This script reads the real dataclasses of the installed packages
(`dataclasses.fields`), with each key's default, and merges them into the fixture under the
installed TRL version, so that one fixture holds TRL 1.x and 0.2x side by side:

    python -m venv /tmp/trl1 && /tmp/trl1/bin/pip install trl transformers peft
    /tmp/trl1/bin/python scripts/dump_trl_config_keys.py
    python -m venv /tmp/trl025 && /tmp/trl025/bin/pip install 'trl==0.25.*' 'transformers<5'
    /tmp/trl025/bin/python scripts/dump_trl_config_keys.py

`crates/orpo-train/tests/trl_keys.rs` parses every key of the fixture, with TRL's default as
its value, through `OrpoConfig`.
"""

import dataclasses
import enum
import json
import os
import pathlib

os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")

import transformers  # noqa: E402
import trl  # noqa: E402
from trl import ModelConfig, ScriptArguments  # noqa: E402

try:  # TRL >= 1.0 moved ORPO out of the stable API.
    from trl.experimental.orpo import ORPOConfig  # noqa: E402
except ImportError:
    from trl import ORPOConfig  # noqa: E402

FIXTURE = pathlib.Path(__file__).resolve().parent.parent / "tests/fixtures/config/trl_keys.json"


def as_json(value):
    """A JSON value for a dataclass default, as it would be written in a YAML config."""
    if isinstance(value, enum.Enum):
        return as_json(value.value)
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [as_json(v) for v in value]
    if isinstance(value, dict):
        return {str(k): as_json(v) for k, v in value.items()}
    return str(value)


def keys(cls):
    out = {}
    for field in dataclasses.fields(cls):
        if not field.init:
            continue
        if field.default is not dataclasses.MISSING:
            default = field.default
        elif field.default_factory is not dataclasses.MISSING:
            default = field.default_factory()
        else:
            default = None
        out[field.name] = as_json(default)
    return dict(sorted(out.items()))


def main():
    fixture = json.loads(FIXTURE.read_text()) if FIXTURE.exists() else {}
    fixture[f"trl-{trl.__version__}"] = {
        "trl": trl.__version__,
        "transformers": transformers.__version__,
        "ORPOConfig": keys(ORPOConfig),
        "ModelConfig": keys(ModelConfig),
        "ScriptArguments": keys(ScriptArguments),
    }
    FIXTURE.parent.mkdir(parents=True, exist_ok=True)
    FIXTURE.write_text(json.dumps(dict(sorted(fixture.items())), indent=1, sort_keys=False) + "\n")
    print(f"{FIXTURE}: trl {trl.__version__}, transformers {transformers.__version__}")


if __name__ == "__main__":
    main()
