"""A registering process for crash and concurrency tests.

Usage: python registry_worker.py ROOT TAG COUNT SIZE
Registers COUNT dataset artifacts named ``TAG-<i>``, each with three files of
SIZE pseudo-random bytes derived from (TAG, i), so a rerun is reproducible.
"""

import random
import sys
import tempfile
from pathlib import Path

from breedlab.registry import Registry


def main(root: str, tag: str, count: int, size: int) -> None:
    reg = Registry.open(Path(root))
    scratch = Path(tempfile.mkdtemp(prefix=f"worker-{tag}-"))
    for i in range(count):
        rng = random.Random(f"{tag}-{i}")
        files = {}
        for part in range(3):
            path = scratch / f"{i}-{part}.jsonl"
            path.write_bytes(rng.randbytes(size))
            files[f"shard-{part:05d}.jsonl"] = path
        reg.register("dataset", f"{tag}-{i}", files, operator="data-build", recipe={"tag": tag, "i": i})
    print("done", flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
