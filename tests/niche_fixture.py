"""A tiny licence-family classification niche for tests: three families, one opening sentence each."""

from __future__ import annotations

import json
from pathlib import Path

FAMILIES = {"MIT": "Permission is hereby granted, free of charge, to any person obtaining a copy of this",
            "Apache": "Licensed under the Apache License, Version 2.0; you may not use this file except",
            "GPL": "This program is free software: you can redistribute it and/or modify it under the"}


def question(family: str, index: int) -> str:
    return f"Which licence family? {FAMILIES[family]} (paragraph {index})"


def write_licence_examples(path: Path, count: int = 60) -> Path:
    """``count`` examples, the families in turn, as {input, output} JSONL."""
    families = list(FAMILIES)
    path.write_text("".join(json.dumps({"input": question(families[i % 3], i), "output": families[i % 3]}) + "\n"
                            for i in range(count)))
    return path
