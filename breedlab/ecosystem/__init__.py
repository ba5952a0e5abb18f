"""The living ecosystem: task monitor, specialisation detector, router, lifecycle (Genesis V1 nodes 2, 3, 6)."""
