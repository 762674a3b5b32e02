"""The index transformers writes for a sharded save of tests/fixtures/train/model, as the fixture
crates/orpo-model/tests/shard.rs compares our `save_pretrained_sharded` against.

    pip install torch transformers safetensors
    python scripts/make_shard_fixture.py

`save_pretrained(max_shard_size="150KB")` (f32; 150 000 bytes) splits the 427 kB model into 3
shards. The fixture is the index file exactly as transformers wrote it (metadata.total_size,
metadata.total_parameters, weight_map) plus the max_shard_size used and each shard's tensor
names in file order.
"""

import json
import tempfile
from pathlib import Path

import torch
import transformers
from safetensors import safe_open
from transformers import AutoModelForCausalLM

ROOT = Path(__file__).resolve().parent.parent
MODEL = ROOT / "tests/fixtures/train/model"
OUT = ROOT / "tests/fixtures/shard/train_model_150KB.json"
MAX_SHARD_SIZE = "150KB"


def main():
    model = AutoModelForCausalLM.from_pretrained(MODEL, dtype=torch.float32)
    with tempfile.TemporaryDirectory() as tmp:
        model.save_pretrained(tmp, max_shard_size=MAX_SHARD_SIZE)
        index_text = (Path(tmp) / "model.safetensors.index.json").read_text()
        index = json.loads(index_text)
        shards = sorted(set(index["weight_map"].values()))
        assert len(shards) == 3, shards
        shard_tensors = {}
        for shard in shards:
            with safe_open(Path(tmp) / shard, "pt") as f:
                shard_tensors[shard] = sorted(f.keys())
                assert f.metadata() == {"format": "pt"}, f.metadata()
    fixture = {
        "transformers": transformers.__version__,
        "max_shard_size": MAX_SHARD_SIZE,
        "index_text": index_text,
        "shards": shard_tensors,
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(fixture, indent=1) + "\n")
    print(f"wrote {OUT.relative_to(ROOT)}: {len(shards)} shards, total_size {index['metadata']}")


if __name__ == "__main__":
    main()
